// One gRPC call on geoetcd's HTTP/2 transport, as a method sees it: what it was started with
// (CallStart), the listener a streaming method returns (CallHandler), and the Call it answers
// through. The connection that carries it is gateway/h2/connection.h.
#ifndef GEOETCD_GATEWAY_H2_CALL_H_
#define GEOETCD_GATEWAY_H2_CALL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/h2/header_field.h"
#include "gateway/h2/request_headers.h"

struct nghttp2_rcbuf;

namespace geoetcd::h2 {

class Call;
class Connection;

// What a call was started with. metadata() holds every header but the pseudo-headers, in
// lower case as HTTP/2 requires and well-formed by RFC 9113 (gateway/h2/request_headers.h),
// which is looser than gRPC's rule for metadata: check IsGrpcMetadata before relaying one. The list
// is built on first use (KV methods never ask). `path` and metadata() are valid only during
// the method call that receives them (the transport frees a call's request headers once its
// method has started): copy what is kept.
struct CallStart {
  std::string_view path;
  int64_t deadline_ns = 0;  // CLOCK_MONOTONIC nanoseconds from grpc-timeout; 0 when none
  Call* call = nullptr;
  const std::vector<HeaderField>& metadata() const;
};

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
  // Response bytes queued but not yet taken by the HTTP/2 session, which takes them only as
  // the peer's flow-control windows allow.
  size_t blocked_bytes() const;
  // `fn` runs on the I/O thread whenever blocked_bytes() falls below `low_watermark` after
  // having been at or above it (backpressure for streaming responses). Set it before Write.
  void SetOnWritable(size_t low_watermark, std::function<void()> fn);
  // The peer reset the stream or the connection went away.
  bool cancelled() const;
  uint32_t stream_id() const { return id_; }

 private:
  friend class Connection;
  friend struct CallStart;
  // A request header as nghttp2 decoded it, referenced rather than copied.
  struct RawField {
    nghttp2_rcbuf* name;
    nghttp2_rcbuf* value;
  };
  Call(std::shared_ptr<Connection> conn, std::shared_ptr<std::atomic<int64_t>> live,
       uint32_t id)
      : conn_(std::move(conn)), live_(std::move(live)), id_(id) {
    live_->fetch_add(1, std::memory_order_relaxed);
  }

  const std::shared_ptr<Connection> conn_;
  const std::shared_ptr<std::atomic<int64_t>> live_;  // the server's count of live calls
  const uint32_t id_;
  // Output side: guarded by the connection's mutex.
  bool response_submitted_ = false;  // the response HEADERS went to the session
  bool data_deferred_ = false;  // the session waits for bytes: resume it on the next Write
  bool finished_ = false;       // Finish() was called
  bool ended_ = false;          // END_STREAM went out (or the stream is gone)
  bool cancelled_ = false;
  std::string out_;  // gRPC-framed bytes the session has not taken yet, from out_pos_
  size_t out_pos_ = 0;
  int trailer_code_ = 0;
  std::string trailer_message_;
  size_t low_watermark_ = 0;
  bool above_watermark_ = false;
  std::function<void()> on_writable_;
  // Input side: the I/O thread's.
  bool input_closed_ = false;   // the client's END_STREAM arrived
  bool discard_input_ = false;  // the request was refused; what follows is dropped
  HeaderBlockCheck check_;          // the header block being received, so far
  bool headers_truncated_ = false;  // the list went over max_header_list_bytes
  bool grpc_content_ = false;       // content-type is gRPC's
  bool refused_ = false;            // reset before its method started
  size_t header_list_bytes_ = 0;    // RFC 9113 §6.5.2 size of the request's list so far
  size_t kept_header_bytes_ = 0;    // of it, what path_ and metadata_ keep
  std::string in_buf_;  // a request message split across DATA frames
  std::string path_;
  bool post_ = false;  // :method is POST
  std::vector<RawField> raw_metadata_;
  std::vector<HeaderField> metadata_;  // raw_metadata_ copied, once CallStart asks
  size_t header_bytes_ = 0;  // path_ and metadata_ as counted against the connection's bound
  int64_t deadline_ns_ = 0;
  const UnaryMethod* unary_method_ = nullptr;  // set until the request is dispatched
  std::shared_ptr<CallHandler> handler_;
};

// gRPC's grpc-message encoding: bytes outside printable ASCII, and '%', as %XX.
std::string PercentEncode(std::string_view text);
// grpc-timeout ("<1-8 digits><H|M|S|m|u|n>") in nanoseconds; -1 when malformed.
int64_t ParseGrpcTimeout(std::string_view value);

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_CALL_H_
