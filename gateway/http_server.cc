#include "gateway/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace geoetcd {
namespace {

// cpp-httplib's connection queue, with a bound (its own ThreadPool queues without one).
class BoundedTaskQueue final : public httplib::TaskQueue {
 public:
  BoundedTaskQueue(int threads, size_t queued_max) : queued_max_(queued_max) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~BoundedTaskQueue() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && queue_.size() < queued_max_) {
        queue_.push_back(std::move(fn));
        cv_.notify_one();
        return;
      }
    }
    // Saturated: serve it here. The listener accepts nothing meanwhile (back-pressure into
    // the listen backlog), and the connection is still answered and closed, never leaked.
    fn();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && workers_.empty()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and every queued connection served
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  const size_t queued_max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// "host:port" / "[v6]:port" -> host, port.
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 && *port <= 65535;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::vector<std::string>& addresses, HttpHandler handler,
    const HttpServerOptions& options) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  auto shared_handler = std::make_shared<HttpHandler>(std::move(handler));
  for (const std::string& address : addresses) {
    std::string host;
    int port = 0;
    if (!SplitAddress(address, &host, &port)) {
      return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
    }
    auto http = std::make_unique<httplib::Server>();
    http->new_task_queue = [options] {
      return new BoundedTaskQueue(options.worker_threads,
                                  static_cast<size_t>(options.queued_connections_max));
    };
    http->set_payload_max_length(static_cast<size_t>(options.request_bytes_max));
    http->set_read_timeout(std::chrono::milliseconds(options.read_timeout_ms));
    http->set_write_timeout(std::chrono::milliseconds(options.write_timeout_ms));
    http->set_keep_alive_max_count(static_cast<size_t>(options.keep_alive_requests_max));
    http->set_keep_alive_timeout(std::max<int64_t>(1, options.keep_alive_timeout_ms / 1000));
    // Not cpp-httplib's default SO_REUSEPORT: a second process on the same port must fail
    // to bind, not share it.
    http->set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    // Every path of every method goes to the handler, which owns 404 and 405. Routed
    // handlers rather than a pre-routing hook, so cpp-httplib reads (and bounds) a request
    // body before the answer and the connection stays in step.
    const auto route = [shared_handler](const httplib::Request& req, httplib::Response& res) {
      HttpRequest request;
      request.method = req.method;
      request.path = req.path;
      for (const auto& [k, v] : req.params) request.query.emplace(k, v);
      HttpResponse response = (*shared_handler)(request);
      res.status = response.status;
      for (const auto& [k, v] : response.headers) res.set_header(k, v);
      res.set_content(std::move(response.body), response.content_type);
    };
    const std::string any = ".*";
    http->Get(any, route);  // and HEAD
    http->Post(any, route);
    http->Put(any, route);
    http->Patch(any, route);
    http->Delete(any, route);
    http->Options(any, route);
    int bound = port;
    if (port == 0) {
      bound = http->bind_to_any_port(host);
      if (bound <= 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
    } else if (!http->bind_to_port(host, port)) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
    }
    server->ports_.push_back(bound);
    httplib::Server* raw = http.get();
    server->servers_.push_back(std::move(http));
    server->threads_.emplace_back([raw] { raw->listen_after_bind(); });
  }
  return server;
}

void HttpServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& http : servers_) {
    // stop() does nothing before the listening thread has started its loop.
    for (int i = 0; i < 2000 && !http->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    http->stop();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  servers_.clear();
}

HttpServer::~HttpServer() { Shutdown(); }

}  // namespace geoetcd
