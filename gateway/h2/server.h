// geoetcd's gRPC server transport on the client port: HTTP/2 (RFC 9113) from libnghttp2 over
// plain TCP or Unix sockets, written for geoetcd's hot path. gRPC C++'s own server costs more
// CPU per unary call than the whole durable put behind it (docs/performance.md); this
// transport hands each request message to its method straight from the connection's read
// buffer and coalesces every response a wakeup produces into one write per connection.
//
// Rooms: io_loop.h (the event loops, sockets and listeners: bytes in and out), connection.h
// (one HTTP/2 session over a byte stream: nghttp2 owns the protocol, geoetcd its bounds),
// call.h (one gRPC call as a method sees it). This file: the server those make up.
//
// Threads: `io_threads` event loops (epoll), each owning a share of the connections. Request
// callbacks (a unary method, a CallHandler's On* methods) run on the connection's I/O thread
// and may block briefly (a mutex), never for long. A Call may be written to and finished from
// any thread; its bytes are queued under the connection's lock and written by the I/O thread.
//
// No TLS yet (connection.h reads and writes through a ByteStream so that TLS fits under it),
// no server push, no h2c upgrade from HTTP/1.1 (gRPC clients never use it).
//
// A client may be hostile: what one connection can cost is bounded (ServerOptions, and the
// README's limits table): its turn on the I/O thread, its queued output, its answers waiting
// for a window, the request headers it makes the server keep, its handshake, idle time and
// pings. Out of descriptors, accept rests instead of spinning.
#ifndef GEOETCD_GATEWAY_H2_SERVER_H_
#define GEOETCD_GATEWAY_H2_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "gateway/h2/call.h"

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

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_SERVER_H_
