#include "gateway/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `request` on a new connection and returns everything the server sends until it
// closes the connection.
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may refuse before reading everything
    sent += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

HttpResponse Echo(const HttpRequest& r) {
  HttpResponse out;
  out.status = r.path == "/missing" ? 404 : 200;
  out.body = r.method + " " + r.path;
  for (const auto& [k, v] : r.query) out.body += " " + k + "=" + v;
  out.headers.push_back({"X-Test", "1"});
  return out;
}

std::unique_ptr<HttpServer> StartEcho(HttpServerOptions options = {}) {
  auto server = HttpServer::Start({"127.0.0.1:0"}, Echo, options);
  EXPECT_TRUE(server.ok()) << server.status();
  return std::move(*server);
}

TEST(HttpServerTest, EveryMethodAndPathReachesTheHandler) {
  auto server = StartEcho();
  const int port = server->bound_ports().at(0);
  std::string r = Exchange(port,
                           "GET /metrics?verbose&exclude=a%2Cb HTTP/1.1\r\nHost: x\r\n"
                           "Connection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("X-Test: 1\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\n\r\nGET /metrics exclude=a,b verbose="), std::string::npos) << r;
  r = Exchange(port, "DELETE /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("DELETE /missing"), std::string::npos) << r;
}

TEST(HttpServerTest, BodyOverTheLimitIsRefused) {
  HttpServerOptions options;
  options.request_bytes_max = 1024;
  auto server = StartEcho(options);
  const int port = server->bound_ports().at(0);
  const std::string at_limit(1024, 'x');
  std::string r = Exchange(port,
                           "POST /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           "Content-Length: 1024\r\n\r\n" +
                               at_limit);
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  r = Exchange(port,
               "POST /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Content-Length: 1025\r\n\r\n" +
                   at_limit + "x");
  EXPECT_EQ(r.rfind("HTTP/1.1 413 ", 0), 0u) << r;
}

TEST(HttpServerTest, MoreClientsThanWorkersAreAllAnswered) {
  HttpServerOptions options;
  options.worker_threads = 1;
  options.queued_connections_max = 1;
  auto server = StartEcho(options);
  const int port = server->bound_ports().at(0);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&] {
      const std::string r =
          Exchange(port, "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      if (r.rfind("HTTP/1.1 200 OK\r\n", 0) == 0) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 16);
}

// A connection that sends nothing is closed once the keep-alive timeout (which cpp-httplib
// also waits for a first request) runs out.
TEST(HttpServerTest, SilentClientIsDroppedAfterTheKeepAliveTimeout) {
  HttpServerOptions options;
  options.keep_alive_timeout_ms = 1000;
  auto server = StartEcho(options);
  const int fd = Connect(server->bound_ports().at(0));
  const auto start = std::chrono::steady_clock::now();
  char c;
  EXPECT_LE(recv(fd, &c, 1, 0), 0);  // closed by the server, nothing sent
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, std::chrono::seconds(3));
  close(fd);
}

TEST(HttpServerTest, ShutdownReturnsWithAnIdleKeepAliveConnectionOpen) {
  auto server = StartEcho();
  const int fd = Connect(server->bound_ports().at(0));
  const std::string req = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[512];
  ASSERT_GT(recv(fd, buf, sizeof buf, 0), 0);
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  close(fd);
}

TEST(HttpServerTest, AnAddressInUseIsUnavailable) {
  auto first = StartEcho();
  const std::string taken = "127.0.0.1:" + std::to_string(first->bound_ports().at(0));
  auto second = HttpServer::Start({taken}, Echo, HttpServerOptions());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("cannot listen on " + taken), std::string::npos);
}

}  // namespace
}  // namespace geoetcd
