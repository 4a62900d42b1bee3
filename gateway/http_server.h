// A small HTTP/1.1 server for the metrics listener (--listen-metrics-urls), on cpp-httplib
// (Debian libcpp-httplib-dev). Every request goes to one HttpHandler: a function from
// method, path and query to status, content type and body, so the same handler can later be
// mounted on the client port (gateway/metrics_endpoint.h).
//
// Bounded: request line and headers by cpp-httplib's 8 KiB limits, the body by
// request_bytes_max (413 beyond), each connection by read/write timeouts, a request count per
// keep-alive connection and the keep-alive timeout (also the wait for a first request), and
// connections by a fixed pool of worker threads with a
// bounded queue: when both are full the accepting thread serves the connection itself and
// stops accepting meanwhile, so further clients wait in the kernel's listen backlog.
#ifndef GEOETCD_GATEWAY_HTTP_SERVER_H_
#define GEOETCD_GATEWAY_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace geoetcd {

struct HttpRequest {
  std::string method;                             // "GET", "HEAD", ...
  std::string path;                               // without the query
  std::multimap<std::string, std::string> query;  // decoded parameters
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

// Called on a worker thread, concurrently with itself.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  int worker_threads = 4;
  int queued_connections_max = 64;
  int64_t request_bytes_max = 64 << 10;
  int64_t read_timeout_ms = 5000;
  int64_t write_timeout_ms = 5000;
  int keep_alive_requests_max = 100;
  int64_t keep_alive_timeout_ms = 5000;
};

class HttpServer {
 public:
  // Listens on every "host:port" address (brackets around IPv6 literals; port 0 binds an
  // ephemeral port, see bound_ports()). Unavailable ("cannot listen on ...") when one cannot
  // be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::vector<std::string>& addresses, HttpHandler handler,
      const HttpServerOptions& options);
  ~HttpServer();  // Shutdown()

  // Stops accepting, ends every connection and joins every thread. Idempotent.
  void Shutdown();
  const std::vector<int>& bound_ports() const { return ports_; }

 private:
  HttpServer() = default;
  std::vector<std::unique_ptr<httplib::Server>> servers_;
  std::vector<std::thread> threads_;
  std::vector<int> ports_;
  bool shut_down_ = false;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_HTTP_SERVER_H_
