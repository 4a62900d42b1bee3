// geoetcd-bench's own client for unary gRPC calls (--transport h2): HTTP/2 (RFC 9113) over
// plain TCP, written so that the client costs the machine it shares with the server under
// test as little as possible. gRPC C++'s async client spends about 26 µs of CPU per unary
// call; this one keeps no per-call heap allocation once warm (request, response and header
// buffers are reused call after call), parses frames straight out of one read buffer per
// thread, and writes everything one wakeup produced with one send() per connection.
//
// Threads: one H2Loop (epoll) per worker thread owns its H2Channels, their connections and
// calls; nothing is shared between loops, so nothing is locked.
//
// HTTP/2 spoken: the preface; SETTINGS both ways, honouring the server's
// MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE (changes mid-connection included) and
// MAX_FRAME_SIZE; flow control at both levels in both directions; PING (answered);
// RST_STREAM (mapped to a gRPC code as gRPC does); GOAWAY (streams above the last id fail
// UNAVAILABLE and the channel moves to a new connection, as it does when stream ids run out);
// HEADERS with CONTINUATION and padding; DATA with padding. HPACK is gateway/h2/hpack.h. No
// TLS, no compression, no retries.
#ifndef GEOETCD_BENCH_H2_CLIENT_H_
#define GEOETCD_BENCH_H2_CLIENT_H_

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/engine.h"
#include "bench/options.h"
#include "gateway/h2/hpack.h"
#include "google/protobuf/message_lite.h"

namespace geoetcd::bench {

class H2Channel;
class H2Connection;
class H2Loop;

// gRPC status codes the transport produces itself.
inline constexpr int kGrpcOk = 0;
inline constexpr int kGrpcCancelled = 1;
inline constexpr int kGrpcUnknown = 2;
inline constexpr int kGrpcDeadlineExceeded = 4;
inline constexpr int kGrpcResourceExhausted = 8;
inline constexpr int kGrpcInternal = 13;
inline constexpr int kGrpcUnavailable = 14;

// A TCP connection ConnectH2 opened, and where it goes (for reconnecting).
struct H2Socket {
  int fd = -1;           // connected, non-blocking, TCP_NODELAY
  std::string endpoint;  // host:port as given; also the :authority
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
};

// Connects `count` TCP connections round-robin over options.endpoints, all at once, waiting
// up to options.connect_timeout_ns. Fails (closing what it opened) with the gRPC engine's
// words: "cannot connect to HOST:PORT (connection i of N failed; is the server running?)",
// or "... within Ns" when the time ran out.
absl::StatusOr<std::vector<H2Socket>> ConnectH2(const BenchOptions& options, int count);

// What every call of a channel sends besides its message; must outlive the loop.
struct H2ChannelOptions {
  std::vector<std::string> paths;  // gRPC method paths; H2Call::SetRequest takes an index
  std::vector<std::pair<std::string, std::string>> metadata;
  int64_t timeout_ns = 0;  // grpc-timeout, and the call fails DEADLINE_EXCEEDED here; 0 = none
  int64_t connect_timeout_ns = 5'000'000'000;  // reconnects
  // The highest stream id a connection uses before the channel replaces it (odd; tests
  // lower it to reach the replacement quickly).
  uint32_t last_stream_id = (1u << 31) - 1;
};

// Counters per channel, for tests and curiosity.
struct H2Stats {
  uint64_t connections = 0;        // TCP connections used, the first included
  uint64_t streams = 0;            // streams started
  uint64_t window_waits = 0;       // times a request's DATA stopped for lack of window
  uint64_t settings = 0;           // SETTINGS frames received (not ACKs)
  uint64_t pings_answered = 0;
  uint64_t goaways = 0;
  uint32_t max_active_streams = 0;  // most streams open at once on one connection
};

// Fires once at or after the time it was added for (H2Loop::AddTimer).
class H2Timer {
 public:
  virtual void OnTimer() = 0;

 protected:
  ~H2Timer() = default;
};

// One unary call at a time, reused call after call by its owner (a benchmark client).
class H2Call {
 public:
  // The next call's method (an index into H2ChannelOptions::paths) and request message,
  // serialized behind gRPC's 5-byte prefix into a buffer the call keeps.
  void SetRequest(int method, const google::protobuf::MessageLite& message);
  void SetRequest(int method, std::string_view message);
  // In OnDone with code 0: the response message (empty when the server sent none, which
  // gRPC's async client also accepts as an empty message).
  std::string_view response() const {
    return std::string_view(response_).substr(message_offset_, message_size_);
  }

 protected:
  ~H2Call() = default;
  // The call ended with gRPC status `code` (0 = OK) and its grpc-message, percent-decoded.
  // Runs on the loop's thread, never from inside H2Channel::Start.
  virtual void OnDone(int code, std::string_view message) = 0;

 private:
  friend class H2Channel;
  friend class H2Connection;
  friend class H2Loop;
  friend class H2CallList;
  enum class Where : uint8_t { kIdle, kPending, kActive, kDone };

  std::string request_;   // prefix + message
  std::string response_;  // the response's DATA payloads, gRPC-framed
  size_t message_offset_ = 0;
  size_t message_size_ = 0;
  std::string status_message_;
  int method_ = 0;
  int code_ = 0;
  // The transport's state of the call in flight.
  Where where_ = Where::kIdle;
  bool blocked_ = false;      // active, its DATA waiting for flow-control window
  bool got_headers_ = false;  // the response's first HEADERS arrived
  H2Connection* conn_ = nullptr;
  uint32_t stream_id_ = 0;
  size_t sent_ = 0;  // request bytes sent
  int64_t send_window_ = 0;
  uint32_t recv_unacked_ = 0;
  int64_t deadline_ns_ = INT64_MAX;
  // Links of whichever list holds the call: a connection's pending or blocked list, or the
  // loop's completed list.
  H2Call* prev_ = nullptr;
  H2Call* next_ = nullptr;
};

// An intrusive FIFO of calls through their prev_/next_ links: no allocation.
class H2CallList {
 public:
  bool empty() const { return head_ == nullptr; }
  H2Call* front() const { return head_; }
  static H2Call* next(const H2Call* c) { return c->next_; }
  void PushBack(H2Call* c);
  void Remove(H2Call* c);
  H2Call* PopFront();
  // Moves every call of *this to the front of an empty `to`.
  void MoveTo(H2CallList* to);

 private:
  H2Call* head_ = nullptr;
  H2Call* tail_ = nullptr;
};

// A logical connection to one endpoint: one TCP connection at a time, replaced after a
// GOAWAY, when stream ids run out, or (on the next call) when it failed. While a reconnect
// keeps failing, calls fail UNAVAILABLE at once until the backoff (1 s, x1.6, at most 120 s,
// like gRPC's) expires.
class H2Channel {
 public:
  ~H2Channel();
  // Starts `call` (idle, with its request set). Never completes it synchronously.
  void Start(H2Call* call);
  const H2Stats& stats() const { return stats_; }
  const std::string& endpoint() const { return socket_.endpoint; }

 private:
  friend class H2Connection;
  friend class H2Loop;
  H2Channel(H2Loop* loop, const H2ChannelOptions* options, H2Socket socket);

  // Hands a call to the current connection, opening one if there is none.
  void Route(H2Call* call);
  // `conn` takes no more calls (draining or closed): the next call opens a new connection.
  void Detach(H2Connection* conn);
  void OnConnectFailed(H2Connection* conn);
  void OnReady();
  const std::string& header_block(int method) const { return header_blocks_[method]; }

  H2Loop* const loop_;
  const H2ChannelOptions* const options_;
  H2Socket socket_;  // fd is handed to the first connection
  std::vector<std::string> header_blocks_;  // per method: the request's whole header block
  H2Connection* current_ = nullptr;
  int64_t retry_at_ns_ = 0;
  int64_t backoff_ns_;
  H2Stats stats_;
};

// One thread's epoll loop: channels, connections, timers and completed calls.
class H2Loop final : public WorkerLoop {
 public:
  H2Loop();
  ~H2Loop() override;
  H2Loop(const H2Loop&) = delete;
  H2Loop& operator=(const H2Loop&) = delete;

  // A channel over `socket` (from ConnectH2), owned by the loop.
  H2Channel* AddChannel(const H2ChannelOptions* options, H2Socket socket);
  // Calls timer->OnTimer() on the loop thread at or after `at_ns` (NowNs() clock).
  void AddTimer(int64_t at_ns, H2Timer* timer);

  // Runs until Stop(); a Stop() before Run() makes it return at once.
  void Run() override;
  void Stop() override { stopped_ = true; }

 private:
  friend class H2Channel;
  friend class H2Connection;

  struct TimerEntry {
    int64_t at_ns;
    H2Timer* timer;
    bool operator>(const TimerEntry& o) const { return at_ns > o.at_ns; }
  };

  // Queues `call`'s OnDone for the loop to deliver (never synchronously).
  void Complete(H2Call* call, int code);
  void Complete(H2Call* call, int code, std::string_view message);
  void MarkDirty(H2Connection* conn);
  H2Connection* AddConnection(H2Channel* channel, int fd, bool connected);
  void DeliverCompletions();
  void FlushDirty();
  void Sweep(int64_t now_ns);
  void Reap();
  int WaitMs(int64_t now_ns) const;

  int epoll_fd_ = -1;
  bool stopped_ = false;
  std::vector<std::unique_ptr<H2Channel>> channels_;
  std::vector<std::unique_ptr<H2Connection>> conns_;
  std::vector<H2Connection*> dirty_;
  H2CallList done_;
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<TimerEntry>> timers_;
  int64_t sweep_interval_ns_;
  int64_t next_sweep_ns_ = 0;
  bool reap_ = false;
  // Scratch reused by every connection of the loop.
  std::vector<uint8_t> read_buf_;
  std::vector<h2::HeaderField> fields_;
  std::vector<H2Call*> expired_;
};

// Helpers, exposed for tests.

// grpc-message's percent-encoding undone; a '%' not followed by two hex digits stays as is.
std::string PercentDecode(std::string_view text);
// grpc-timeout for `ns` (> 0): at most 8 digits and a unit, rounded up, as gRPC sends it.
std::string GrpcTimeoutValue(int64_t ns);
// The gRPC code for an HTTP status without grpc-status (gRPC's http-grpc-status-mapping).
int GrpcCodeForHttpStatus(int http_status);
// The gRPC code for RST_STREAM's HTTP/2 error code; CANCEL past the deadline is
// DEADLINE_EXCEEDED.
int GrpcCodeForHttp2Error(uint32_t error_code, bool deadline_passed);

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_H2_CLIENT_H_
