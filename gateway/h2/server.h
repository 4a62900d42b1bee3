// A lean gRPC server transport: HTTP/2 (RFC 9113) over plain TCP or Unix sockets, written for
// geoetcd's hot path. gRPC C++'s own server costs more CPU per unary call than the whole
// durable put behind it (docs/performance.md); this transport parses frames straight out of
// one read buffer per connection, hands each request message to its method in place, and
// coalesces every response a wakeup produces into one write per connection.
//
// Threads: `io_threads` event loops (epoll), each owning a share of the connections. Request
// callbacks (a unary method, a CallHandler's On* methods) run on the connection's I/O thread
// and may block briefly (a mutex), never for long. A Call may be written to and finished from
// any thread; its bytes are queued under the connection's lock and written by the I/O thread.
//
// What it implements of HTTP/2: the preface, SETTINGS (acknowledged and honoured), PING,
// GOAWAY both ways, RST_STREAM, PRIORITY (ignored), HEADERS with CONTINUATION and padding,
// DATA with padding, and flow control in both directions at both levels. HPACK is in
// gateway/h2/hpack.h. No TLS, no server push, no h2c upgrade from HTTP/1.1 (gRPC clients
// never use it).
//
// A client may be hostile: what one connection can cost is bounded (ServerOptions, and the
// README's limits table): its turn on the I/O thread, its queued output, its answers waiting
// for a window, the request headers it makes the server keep, its handshake, idle time and
// pings. Out of descriptors, accept rests instead of spinning.
#ifndef GEOETCD_GATEWAY_H2_SERVER_H_
#define GEOETCD_GATEWAY_H2_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "gateway/h2/hpack.h"

namespace geoetcd::h2 {

class Connection;
class IoLoop;

struct ServerOptions {
  int io_threads = 2;
  // Streams one connection may have open at once; a HEADERS beyond it is refused with
  // RST_STREAM(REFUSED_STREAM), which gRPC clients retry.
  uint32_t max_concurrent_streams = 100000;
  // Decoded request header list (RFC 9113 §6.5.2 accounting). Over it: RESOURCE_EXHAUSTED.
  uint32_t max_header_list_bytes = 64 * 1024;
  // One request message. Over it: RESOURCE_EXHAUSTED, worded as gRPC C++ words it.
  uint32_t max_receive_message_bytes = 4 * 1024 * 1024;
  // Receive windows advertised to clients; replenished as data arrives. DATA beyond the
  // stream's window resets the stream, beyond the connection's it closes the connection
  // (FLOW_CONTROL_ERROR both).
  uint32_t stream_window = 1 << 20;
  uint32_t connection_window = 16 << 20;
  // Decoded request headers (RFC 9113 §6.5.2 accounting, path included) one connection may
  // hold for calls whose method has not started yet: a unary call keeps its headers until
  // its message arrives. A HEADERS that would take more is refused with
  // RST_STREAM(REFUSED_STREAM). HPACK lets a client buy a whole max_header_list_bytes with
  // a few bytes per stream (references to one large table entry), so without this bound
  // max_concurrent_streams parked calls could hold gigabytes.
  uint32_t max_connection_header_bytes = 16 << 20;
  // Frames queued for the socket (not response bytes still waiting for the peer's window).
  // At or above it the connection's input is not read until the queue drains to half: a
  // client that sends and never reads stops being read, not the server's memory.
  uint32_t max_pending_output_bytes = 4 << 20;
  // Response bytes one connection has waiting for the client's flow-control windows. While
  // at or above it new streams are refused with RST_STREAM(REFUSED_STREAM): a client that
  // asks and never grants a window cannot make the server hold every answer. (Reading goes
  // on, or the WINDOW_UPDATE that drains them could never arrive.)
  uint32_t max_blocked_output_bytes = 16 << 20;
  // A connection whose client preface and first SETTINGS frame have not both arrived
  // within this is closed.
  int64_t handshake_timeout_ms = 10'000;
  // A connection with no open stream for this long gets GOAWAY(NO_ERROR) and is closed
  // (gRPC clients reconnect when they next need it). 0: never.
  int64_t idle_timeout_ms = 300'000;
  // A PING that arrives sooner than this after the previous one, with no HEADERS or DATA
  // sent by the server in between, is a strike; the strike after ping_strikes_max closes
  // the connection with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"). These are gRPC's
  // server keepalive enforcement with etcd's default --grpc-keepalive-min-time (5 s).
  int64_t ping_interval_min_ms = 5'000;
  int ping_strikes_max = 2;
};

// What a call was started with. `metadata` holds every header but the pseudo-headers, in
// lower case as HTTP/2 requires and well-formed by RFC 9113 (gateway/h2/request_headers.h),
// which is looser than gRPC's rule for metadata: check IsGrpcMetadata before relaying one.
// `path` and `metadata` are valid only during the method call that receives them (the
// transport frees a call's request headers once its method has started): copy what is kept.
struct CallStart {
  std::string_view path;
  const std::vector<HeaderField>* metadata = nullptr;
  int64_t deadline_ns = 0;  // CLOCK_MONOTONIC nanoseconds from grpc-timeout; 0 when none
};

class Call;
using CallPtr = std::shared_ptr<Call>;

// A streaming method's per-call listener. Callbacks run on the I/O thread, in order.
class CallHandler {
 public:
  virtual ~CallHandler() = default;
  virtual void OnMessage(std::string_view message) = 0;
  virtual void OnHalfClose() = 0;
  // The client reset the stream or disconnected; Write/Finish are now no-ops.
  virtual void OnCancel() = 0;
};

// A unary method: `request` is the one request message, valid only during the call.
using UnaryMethod =
    std::function<void(const CallPtr& call, std::string_view request, const CallStart& start)>;
// A streaming method (or the fallback for paths with no method): returns the call's handler.
using StreamMethod =
    std::function<std::shared_ptr<CallHandler>(const CallPtr& call, const CallStart& start)>;

// One gRPC call (an HTTP/2 stream), shared between the transport and its handler.
class Call : public std::enable_shared_from_this<Call> {
 public:
  ~Call();
  // Queues one response message (serialized protobuf, without gRPC's 5-byte prefix).
  // Returns false when the call is already finished or cancelled; the bytes are dropped.
  bool Write(std::string_view message);
  // Ends the call with a gRPC status code and message (etcd's exact text for errors).
  void Finish(int code, std::string_view message);
  // Write(message) then Finish(OK) in one step: a unary call's answer.
  void Reply(std::string_view message);
  // Response bytes queued but not yet allowed out by the peer's flow-control window.
  size_t blocked_bytes() const;
  // `fn` runs on the I/O thread whenever blocked_bytes() falls below `low_watermark` after
  // having been at or above it (backpressure for streaming responses). Set it before Write.
  void SetOnWritable(size_t low_watermark, std::function<void()> fn);
  // The peer reset the stream or the connection went away.
  bool cancelled() const;
  uint32_t stream_id() const { return id_; }

 private:
  friend class Connection;
  Call(std::shared_ptr<Connection> conn, std::shared_ptr<std::atomic<int64_t>> live,
       uint32_t id)
      : conn_(std::move(conn)), live_(std::move(live)), id_(id) {
    live_->fetch_add(1, std::memory_order_relaxed);
  }

  const std::shared_ptr<Connection> conn_;
  const std::shared_ptr<std::atomic<int64_t>> live_;  // the server's count of live calls
  const uint32_t id_;
  // Output side: guarded by the connection's mutex.
  int64_t send_window_ = 0;
  bool headers_sent_ = false;
  bool finished_ = false;       // Finish() was called
  bool trailers_sent_ = false;  // END_STREAM went out (or the stream was reset)
  bool cancelled_ = false;
  bool queued_blocked_ = false;
  size_t blocked_index_ = 0;  // in the connection's blocked_calls_ while queued_blocked_
  std::string blocked_;  // gRPC-framed bytes waiting for window, from blocked_pos_
  size_t blocked_pos_ = 0;
  std::string trailers_;  // encoded trailer block waiting behind blocked_
  size_t low_watermark_ = 0;
  bool above_watermark_ = false;
  std::function<void()> on_writable_;
  // Input side: the I/O thread's.
  bool input_closed_ = false;   // the client's END_STREAM arrived
  bool discard_input_ = false;  // the request was refused; what follows is dropped
  uint32_t recv_unacked_ = 0;
  std::string in_buf_;  // a request message split across DATA frames
  std::string path_;
  std::vector<HeaderField> metadata_;
  size_t header_bytes_ = 0;  // path_ and metadata_ as counted against the connection's bound
  int64_t deadline_ns_ = 0;
  const UnaryMethod* unary_method_ = nullptr;  // set until the request is dispatched
  std::shared_ptr<CallHandler> handler_;
};


class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Shutdown()

  // Registration happens before Start().
  void AddUnary(std::string path, UnaryMethod method);
  void AddStreaming(std::string path, StreamMethod method);
  // Serves every path with no registered method; without it such calls get UNIMPLEMENTED.
  void SetFallback(StreamMethod method);

  // Binds every address ("host:port", "[v6]:port", "unix:/path"; "localhost" binds the
  // loopback addresses it resolves to) and starts the I/O threads. Errors name the address.
  absl::Status Start(const std::vector<std::string>& addresses);
  // Ports actually bound, in order of the TCP addresses (useful with port 0).
  const std::vector<int>& bound_ports() const { return bound_ports_; }

  // Stops accepting, sends GOAWAY, lets calls in flight finish for up to `grace_ms`, then
  // closes every connection (cancelling what is left) and joins the I/O threads.
  void Shutdown(int64_t grace_ms);

 private:
  friend class Connection;
  friend class IoLoop;
  // Accepts every pending connection. False when the process is out of file descriptors
  // (EMFILE, ENFILE) or kernel memory: the caller stops watching the listener for a while.
  bool Accept(int listen_fd);

  const ServerOptions options_;
  absl::flat_hash_map<std::string, UnaryMethod> unary_;
  absl::flat_hash_map<std::string, StreamMethod> streaming_;
  StreamMethod fallback_;
  std::vector<int> listen_fds_;
  std::vector<int> bound_ports_;
  std::vector<std::unique_ptr<IoLoop>> loops_;
  std::atomic<uint32_t> next_loop_{0};
  std::atomic<bool> stopping_{false};
  std::shared_ptr<std::atomic<int64_t>> live_calls_ = std::make_shared<std::atomic<int64_t>>(0);
  bool started_ = false;
  bool shut_down_ = false;
};

// For a thread that is not an I/O loop and writes many responses in bursts (the Node's
// executor): from its first call on, writes made on this thread are not handed to the
// connections' I/O loops but wait until the next FlushDeferred() on this thread, which sends
// them itself, one write per connection. This saves a wakeup per burst and the replies leave
// without a thread hop. Call it after every burst (task) on that thread.
void FlushDeferred();
// FlushDeferred() now if at least `connections` connections wait for it: a long task (a
// watch fan-out) starts sending while it still produces. Call without any h2 lock held.
void FlushDeferredIfMany(size_t connections);

// gRPC's grpc-message encoding: bytes outside printable ASCII, and '%', as %XX.
std::string PercentEncode(std::string_view text);
// grpc-timeout ("<1-8 digits><H|M|S|m|u|n>") in nanoseconds; -1 when malformed.
int64_t ParseGrpcTimeout(std::string_view value);

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_SERVER_H_
