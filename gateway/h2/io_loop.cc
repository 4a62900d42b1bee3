#include "gateway/h2/io_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "gateway/h2/connection.h"
#include "gateway/h2/server.h"

namespace geoetcd::h2 {
namespace {

constexpr uint64_t kTagFd = 1ull << 63;  // epoll data: a listener or the wakeup eventfd
// How long the listeners rest after accept failed for want of descriptors or memory. The
// connection it could not take keeps the listener readable; retrying at once spins a core.
constexpr int64_t kAcceptBackoffMs = 100;
// How often an I/O loop checks its connections' handshake and idle deadlines and wakes
// rested listeners (only while it has any).
constexpr int64_t kTimerTickMs = 50;

thread_local IoLoop* current_loop = nullptr;
// FlushDeferred() was called on this thread: its writes wait for the next call to it.
thread_local bool defer_flushes = false;
thread_local std::vector<std::shared_ptr<Connection>> deferred_flushes;

}  // namespace

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ---- SocketStream ----------------------------------------------------------------------------

SocketStream::~SocketStream() { close(fd_); }

ssize_t SocketStream::Read(char* buf, size_t n) { return read(fd_, buf, n); }

ssize_t SocketStream::Write(const char* buf, size_t n) {
  return send(fd_, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void SocketStream::Shutdown() { shutdown(fd_, SHUT_RDWR); }

// ---- IoLoop ----------------------------------------------------------------------------------

IoLoop::IoLoop(Server* server) : server_(server) {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagFd | static_cast<uint64_t>(wakefd_);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
}

IoLoop::~IoLoop() {
  Stop();
  close(wakefd_);
  close(epfd_);
}

void IoLoop::Start() { thread_ = std::thread([this] { Run(); }); }

void IoLoop::Stop() {
  if (!thread_.joinable()) return;
  Post(nullptr);  // the stop marker
  thread_.join();
}

void IoLoop::WatchListener(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagFd | static_cast<uint64_t>(fd);
  epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
}

void IoLoop::UnwatchListener(int fd) {
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  resting_listeners_.erase(std::remove_if(resting_listeners_.begin(), resting_listeners_.end(),
                                          [fd](const auto& r) { return r.first == fd; }),
                           resting_listeners_.end());
}

template <typename Add>
void IoLoop::EnqueueAndWake(Add add) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    add();
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  if (wake) Wake();
}

void IoLoop::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wakefd_, &one, sizeof(one));
}

void IoLoop::Post(std::function<void()> fn) {
  EnqueueAndWake([&] { tasks_.push_back(std::move(fn)); });
}

void IoLoop::ScheduleFlush(std::shared_ptr<Connection> conn, bool may_defer) {
  if (current_loop == this) {
    local_flush_.push_back(std::move(conn));
  } else if (may_defer && defer_flushes && current_loop == nullptr) {
    deferred_flushes.push_back(std::move(conn));
  } else {
    EnqueueAndWake([&] { remote_flush_.push_back(std::move(conn)); });
  }
}

void IoLoop::Adopt(int fd) {
  Post([this, fd] {
    auto conn = std::make_shared<Connection>(server_, this, std::make_unique<SocketStream>(fd));
    if (stopped_) return;  // the connection's destructor closes fd
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = conn.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return;
    conns_.emplace(conn.get(), conn);
    conn->Open();
  });
}

void IoLoop::SetInterest(Connection* conn, int fd, bool read, bool write) {
  epoll_event ev{};
  ev.events = (read ? static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP) : 0u) |
              (write ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.ptr = conn;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
}

void IoLoop::GoAwayAll() {
  Post([this] {
    for (auto& [raw, conn] : conns_) conn->GoAway();
  });
}

void IoLoop::AcceptOn(int fd) {
  if (server_->Accept(fd)) return;
  epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  resting_listeners_.emplace_back(fd, MonotonicNowNs() + kAcceptBackoffMs * 1'000'000);
}

void IoLoop::OnTimer(int64_t now_ns) {
  next_tick_ns_ = now_ns + kTimerTickMs * 1'000'000;
  for (auto& [raw, conn] : conns_) {
    if (!conn->closed()) conn->CheckDeadlines(now_ns);
  }
  std::vector<int> rested;
  for (auto it = resting_listeners_.begin(); it != resting_listeners_.end();) {
    if (it->second <= now_ns) {
      rested.push_back(it->first);
      it = resting_listeners_.erase(it);
    } else {
      ++it;
    }
  }
  for (int fd : rested) {
    WatchListener(fd);
    AcceptOn(fd);
  }
}

int IoLoop::WaitTimeoutMs(int64_t now_ns) const {
  if (!local_flush_.empty()) return 0;
  if (conns_.empty() && resting_listeners_.empty()) return -1;
  if (next_tick_ns_ <= now_ns) return 0;
  return static_cast<int>((next_tick_ns_ - now_ns + 999'999) / 1'000'000);
}

void IoLoop::FlushAll() {
  // Flushing can queue more flushes (a handler woken by on_writable writes again).
  for (int round = 0; round < 4; ++round) {
    std::vector<std::shared_ptr<Connection>> batch;
    batch.swap(local_flush_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& c : remote_flush_) batch.push_back(std::move(c));
      remote_flush_.clear();
    }
    if (batch.empty()) return;
    for (auto& conn : batch) {
      if (!conn->closed()) conn->Flush();
    }
  }
}

void IoLoop::RunTasks() {
  uint64_t v;
  [[maybe_unused]] ssize_t r = read(wakefd_, &v, sizeof(v));
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks.swap(tasks_);
    wake_pending_ = false;
  }
  for (auto& task : tasks) {
    if (!task) {
      stopped_ = true;
    } else {
      task();
    }
  }
}

void IoLoop::OnConnectionEvent(Connection* conn, uint32_t events) {
  if (conn->closed()) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
    conn->OnReadable((events & (EPOLLHUP | EPOLLERR)) != 0);
  }
  if (!conn->closed() && (events & EPOLLOUT)) conn->OnWritable();
}

void IoLoop::ReapClosed() {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second->closed()) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second->fd(), nullptr);
      conns_.erase(it++);
    } else {
      ++it;
    }
  }
}

void IoLoop::Run() {
  current_loop = this;
  std::vector<epoll_event> events(256);
  next_tick_ns_ = MonotonicNowNs() + kTimerTickMs * 1'000'000;
  while (true) {
    const int timeout = WaitTimeoutMs(MonotonicNowNs());
    const int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag & kTagFd) {
        const int fd = static_cast<int>(tag & ~kTagFd);
        if (fd == wakefd_) {
          RunTasks();
        } else {
          AcceptOn(fd);
        }
        continue;
      }
      OnConnectionEvent(static_cast<Connection*>(events[i].data.ptr), events[i].events);
    }
    if (const int64_t now = MonotonicNowNs(); now >= next_tick_ns_) OnTimer(now);
    FlushAll();
    ReapClosed();
    if (stopped_) break;
  }
  CloseAll();
  current_loop = nullptr;
}

void IoLoop::CloseAll() {
  for (auto& [raw, conn] : conns_) conn->CloseNow();
  conns_.clear();
  local_flush_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  remote_flush_.clear();
}

// ---- the deferred flush ------------------------------------------------------------------------

void FlushDeferredIfMany(size_t connections) {
  if (defer_flushes && deferred_flushes.size() >= connections) FlushDeferred();
}

void FlushDeferred() {
  defer_flushes = true;
  while (!deferred_flushes.empty()) {
    std::vector<std::shared_ptr<Connection>> batch;
    batch.swap(deferred_flushes);
    for (const auto& conn : batch) conn->FlushFromThisThread();
  }
}

}  // namespace geoetcd::h2
