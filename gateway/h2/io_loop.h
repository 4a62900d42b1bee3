// The I/O side of geoetcd's HTTP/2 transport: the bytes under a connection (ByteStream), the
// event loops that read and write them (IoLoop: epoll, one thread each), and the thread-local
// deferred flush the Node's executor uses. What the bytes mean is connection.h's business.
#ifndef GEOETCD_GATEWAY_H2_IO_LOOP_H_
#define GEOETCD_GATEWAY_H2_IO_LOOP_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace geoetcd::h2 {

class Connection;
class Server;

// The byte stream one HTTP/2 session runs over: a socket today; a TLS stream on the same
// socket (the security issue) is another implementation, the session above stays as it is.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Up to `n` bytes: how many (> 0), 0 at the end of the stream, or -1 with errno set
  // (EAGAIN or EWOULDBLOCK: nothing now, the loop reports readiness).
  virtual ssize_t Read(char* buf, size_t n) = 0;
  virtual ssize_t Write(const char* buf, size_t n) = 0;
  // Ends both directions; the descriptor stays open until destruction.
  virtual void Shutdown() = 0;
  // The descriptor the loop polls for readiness.
  virtual int fd() const = 0;
};

// A connected, non-blocking socket (TCP or Unix); owns and closes the descriptor.
class SocketStream final : public ByteStream {
 public:
  explicit SocketStream(int fd) : fd_(fd) {}
  ~SocketStream() override;
  ssize_t Read(char* buf, size_t n) override;
  ssize_t Write(const char* buf, size_t n) override;
  void Shutdown() override;
  int fd() const override { return fd_; }

 private:
  const int fd_;
};

int64_t MonotonicNowNs();

// One event loop thread and the connections it owns.
class IoLoop {
 public:
  // Bytes a connection reads at a time, into the loop's scratch buffer.
  static constexpr size_t kReadChunk = 64 * 1024;

  explicit IoLoop(Server* server);
  ~IoLoop();  // Stop(), then closes what it polls

  void Start();
  void Stop();

  void WatchListener(int fd);
  // Loop thread: stops watching `fd`, also when it is resting (the caller closes it).
  void UnwatchListener(int fd);

  // Runs `fn` on this loop's thread; nullptr stops the loop.
  void Post(std::function<void()> fn);
  // Takes a new connection's socket (any thread).
  void Adopt(int fd);
  // Asks for `conn`'s output to be written: by this loop (soon, coalesced), or, on a thread
  // that called FlushDeferred() and unless `may_defer` is false, by that thread's next
  // FlushDeferred().
  void ScheduleFlush(std::shared_ptr<Connection> conn, bool may_defer = true);
  // What `conn`'s descriptor is polled for; any thread, under the connection's lock.
  void SetInterest(Connection* conn, int fd, bool read, bool write);
  // GOAWAY on every connection (any thread).
  void GoAwayAll();
  // A read buffer of kReadChunk bytes shared by the loop's connections (each handles what it
  // read before the next read).
  char* scratch() { return scratch_.get(); }

 private:
  // Runs `add` under mu_ and wakes the loop unless a wakeup is already on its way.
  template <typename Add>
  void EnqueueAndWake(Add add);
  void Wake();
  void Run();
  void RunTasks();
  void OnConnectionEvent(Connection* conn, uint32_t events);
  void FlushAll();
  void ReapClosed();
  void CloseAll();
  // Accepts on `fd`; out of descriptors, stops watching it for kAcceptBackoffMs.
  void AcceptOn(int fd);
  // Every kTimerTickMs: connection deadlines, and listeners whose rest is over.
  void OnTimer(int64_t now_ns);
  // epoll_wait's timeout: 0 with flushes pending, the next tick with anything timed, or -1.
  int WaitTimeoutMs(int64_t now_ns) const;

  Server* const server_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  bool wake_pending_ = false;                              // guarded by mu_
  std::vector<std::function<void()>> tasks_;               // guarded by mu_
  std::vector<std::shared_ptr<Connection>> remote_flush_;  // guarded by mu_
  // The loop thread's own.
  std::vector<std::shared_ptr<Connection>> local_flush_;
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::unique_ptr<char[]> scratch_{new char[kReadChunk]};
  bool stopped_ = false;
  std::vector<std::pair<int, int64_t>> resting_listeners_;  // fd, when to watch it again
  int64_t next_tick_ns_ = 0;
};

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_IO_LOOP_H_
