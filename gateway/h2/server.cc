#include "gateway/h2/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/h2/connection.h"
#include "gateway/h2/io_loop.h"

namespace geoetcd::h2 {

Server::Server(ServerOptions options) : options_(options) {}

Server::~Server() { Shutdown(0); }

void Server::AddUnary(std::string path, UnaryMethod method) {
  unary_.emplace(std::move(path), std::move(method));
}
void Server::AddStreaming(std::string path, StreamMethod method) {
  streaming_.emplace(std::move(path), std::move(method));
}
void Server::SetFallback(StreamMethod method) { fallback_ = std::move(method); }

namespace {

absl::Status ListenOnUnix(const std::string& address, std::vector<int>* fds) {
  const std::string path = address.substr(5);
  sockaddr_un sun{};
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("bad unix socket path ", address));
  }
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.data(), path.size());
  unlink(path.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0 ||
      listen(fd, 1024) != 0) {
    const int err = errno;
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", std::strerror(err)));
  }
  fds->push_back(fd);
  return absl::OkStatus();
}

// "host:port" or "[v6]:port".
absl::Status SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  if (!address.empty() && address[0] == '[') {
    const size_t close_bracket = address.find(']');
    if (close_bracket == std::string::npos || close_bracket + 1 >= address.size() ||
        address[close_bracket + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
    }
    *host = address.substr(1, close_bracket - 1);
    *port = address.substr(close_bracket + 2);
    return absl::OkStatus();
  }
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
  }
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  return absl::OkStatus();
}

// A listening socket on `ai`, on `port` unless it is 0; -1 with *error set when it fails.
int ListenOnAddress(const addrinfo* ai, int port, std::string* error) {
  const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::strerror(errno);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  sockaddr_storage addr{};
  std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  if (port != 0 && ai->ai_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(static_cast<uint16_t>(port));
  } else if (port != 0 && ai->ai_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(static_cast<uint16_t>(port));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), ai->ai_addrlen) != 0 ||
      listen(fd, 4096) != 0) {
    *error = std::strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
  return local.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                                    : ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
}

absl::Status ListenOn(const std::string& address, std::vector<int>* fds, std::vector<int>* ports) {
  if (address.rfind("unix:", 0) == 0) return ListenOnUnix(address, fds);
  std::string host, port;
  if (absl::Status s = SplitHostPort(address, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", gai_strerror(rc)));
  }
  int bound_port = 0;
  std::string last_error;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    // Port 0 on a name with several addresses: every socket takes the first one's port.
    const int fd = ListenOnAddress(ai, bound_port, &last_error);
    if (fd < 0) continue;
    if (bound_port == 0) bound_port = BoundPort(fd);
    fds->push_back(fd);
  }
  freeaddrinfo(res);
  if (bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", last_error));
  }
  ports->push_back(bound_port);
  return absl::OkStatus();
}

}  // namespace

absl::Status Server::Start(const std::vector<std::string>& addresses) {
  for (const std::string& address : addresses) {
    absl::Status s = ListenOn(address, &listen_fds_, &bound_ports_);
    if (!s.ok()) {
      for (int fd : listen_fds_) close(fd);
      listen_fds_.clear();
      return s;
    }
  }
  const int n = std::max(1, options_.io_threads);
  for (int i = 0; i < n; ++i) loops_.push_back(std::make_unique<IoLoop>(this));
  for (int fd : listen_fds_) loops_[0]->WatchListener(fd);
  for (auto& loop : loops_) loop->Start();
  started_ = true;
  return absl::OkStatus();
}

bool Server::Accept(int listen_fd) {
  while (true) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM;
    }
    if (stopping_.load()) {
      close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on unix
    const uint32_t i = next_loop_.fetch_add(1) % static_cast<uint32_t>(loops_.size());
    loops_[i]->Adopt(fd);
  }
}

void Server::Shutdown(int64_t grace_ms) {
  if (shut_down_) return;
  shut_down_ = true;
  if (!started_) return;
  stopping_.store(true);
  // Close the listeners now, not after the grace period: until then the kernel would
  // complete handshakes nobody accepts, and reconnecting clients would hang instead of
  // failing over. On loop 0, which accepts, so no accept races the close.
  for (int fd : listen_fds_) {
    loops_[0]->Post([loop = loops_[0].get(), fd] {
      loop->UnwatchListener(fd);
      close(fd);
    });
  }
  listen_fds_.clear();
  for (auto& loop : loops_) loop->GoAwayAll();
  if (grace_ms > 0) {
    // Calls already accepted get the grace period to finish.
    const int64_t until = MonotonicNowNs() + grace_ms * 1'000'000;
    while (live_calls_->load() > 0 && MonotonicNowNs() < until) {
      usleep(10'000);
    }
  }
  for (auto& loop : loops_) loop->Stop();
  loops_.clear();
}

}  // namespace geoetcd::h2
