// One HTTP/2 connection of geoetcd's gRPC transport: a libnghttp2 server session over a
// ByteStream (io_loop.h), and the gRPC calls on its streams (call.h).
//
// nghttp2 owns the protocol: framing, HPACK, SETTINGS, flow control in both directions, stream
// states. This class owns what nghttp2 does not decide for geoetcd: which header blocks are
// well-formed (HeaderBlockCheck, request_headers.h: nghttp2's HTTP checks would refuse
// etcdctl's :authority), gRPC's message framing and status trailers, which method a stream
// starts, and the bounds one connection may cost (ServerOptions): its output queued for the
// socket, answers waiting for a window, request headers kept for calls not started,
// handshake and idle deadlines, ping strikes.
//
// Threads: every nghttp2 call happens under mu_. Input is fed to the session on the I/O
// thread; the session's callbacks only record what arrived (Event) and the I/O thread hands
// it to methods after releasing mu_, so a method may write to its call at once. Calls write
// from any thread (under mu_); the output is sent by the I/O loop or by a thread that defers
// its flushes (FlushDeferred, server.h).
#ifndef GEOETCD_GATEWAY_H2_CONNECTION_H_
#define GEOETCD_GATEWAY_H2_CONNECTION_H_

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gateway/h2/call.h"
#include "gateway/h2/idle_reset_filter.h"
#include "gateway/h2/io_loop.h"
#include "gateway/h2/server.h"

namespace geoetcd::h2 {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server* server, IoLoop* loop, std::unique_ptr<ByteStream> stream);
  ~Connection();

  int fd() const { return stream_->fd(); }
  bool closed() const { return closed_; }

  // Loop thread: queues the server's SETTINGS and its connection window.
  void Open();
  // Loop thread: reads up to kReadBytesPerTurnMax from the stream and handles it; on
  // `hangup` with input paused, closes.
  void OnReadable(bool hangup);
  // Loop thread: the stream can take more output.
  void OnWritable();
  // Loop thread: writes what is queued, then hands what the session reported while sending
  // (streams that closed, calls that drained) to their handlers.
  void Flush();
  // Another thread (FlushDeferred's): writes what its calls queued, coalesced; what needs the
  // loop thread is left to the loop, which releases the streams this closed on its next pass
  // over the connection, within kTimerTickMs.
  void FlushFromThisThread();
  // Loop thread, every kTimerTickMs: the handshake and idle deadlines, and the release of
  // streams another thread's flush closed.
  void CheckDeadlines(int64_t now_ns);
  // Loop thread: GOAWAY(NO_ERROR) naming the last stream that will be served.
  void GoAway();
  // Loop thread: closes the stream and cancels every open call.
  void CloseNow();

  // For Call, from any thread.
  bool WriteMessage(Call* call, std::string_view message, bool finish);
  void FinishCall(Call* call, int code, std::string_view message);
  size_t BlockedBytes(const Call* call);
  void SetOnWritable(Call* call, size_t low_watermark, std::function<void()> fn);
  bool Cancelled(const Call* call);

 private:
  // What the session reported, handed to methods once mu_ is released.
  struct Event {
    enum Kind { kStart, kData, kHalfClose, kClosed } kind;
    CallPtr call;
    std::string_view data;   // kData: bytes in the buffer given to the session
    bool cancelled = false;  // kClosed: the stream ended without our END_STREAM
  };

  // ---- input, on the loop thread ----
  // Feeds `data` to the session in slices, pumping output between them; stops early, keeping
  // the rest in unread_, once output is full. False when the connection closed.
  bool Receive(const char* data, size_t len);
  // Gives one slice to the session (through reset_filter_). False when it cannot go on.
  bool FeedLocked(const char* data, size_t len);
  bool RefuseIfBacklogged(Call* call);
  void Dispatch(std::vector<Event>* events);
  void StartCall(const CallPtr& call);
  void DeliverData(const CallPtr& call, std::string_view payload);
  void DeliverMessage(const CallPtr& call, std::string_view message);
  void HalfClose(const CallPtr& call);
  void RejectInput(const CallPtr& call, int code, std::string_view message);
  void Closed(const CallPtr& call, bool cancelled);
  void ReleaseRequestHeaders(Call* call);
  // Loop thread, mu_ held: what a request's HEADERS decide once complete.
  void OnRequestHeadersLocked(Call* call, bool end_stream);
  void OnPingLocked(const uint8_t* opaque);

  // ---- output, mu_ held ----
  void SubmitResponseLocked(Call* call, bool with_data);
  void SubmitTrailersOnlyLocked(Call* call, int code, std::string_view message);
  void SubmitTrailersLocked(Call* call);
  ssize_t ReadDataLocked(Call* call, uint8_t* buf, size_t length, uint32_t* data_flags);
  void UpdateWatermarkLocked(Call* call);
  void ReleaseOutputLocked(Call* call);
  void GoAwayLocked(uint32_t error_code, std::string_view why);
  void ScheduleFlushLocked();
  // Moves frames the session has ready into sending_, up to max_pending_output_bytes.
  bool PumpOutputLocked();
  // Writes sending_ (pumping more as it drains) until done or the stream is full.
  // False on an error: the caller closes the connection on the loop thread.
  bool WriteOutLocked();
  size_t PendingOutputLocked() const { return sending_.size() - sending_pos_; }
  void ResumeReadingIfDrainedLocked();
  void UpdateInterestLocked();
  bool ShouldCloseLocked() const;

  // ---- nghttp2 callbacks (user_data is the Connection) ----
  static const nghttp2_session_callbacks* Callbacks();
  static int OnBeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user);
  static int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, nghttp2_rcbuf* name,
                      nghttp2_rcbuf* value, uint8_t flags, void* user);
  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int OnDataChunk(nghttp2_session* session, uint8_t flags, int32_t stream_id,
                         const uint8_t* data, size_t len, void* user);
  static int OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user);
  static int OnStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* user);
  static ssize_t DataFrameLength(nghttp2_session* session, uint8_t frame_type,
                                 int32_t stream_id, int32_t session_window,
                                 int32_t stream_window, uint32_t max_frame, void* user);
  static ssize_t ReadData(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                          size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                          void* user);
  Call* CallOf(int32_t stream_id);
  Call* RecentCall(int32_t stream_id);
  // Adds one request header field to `call` (RFC 9113 §6.5.2 accounting, truncation); keeps a
  // reference to nghttp2's buffers, not a copy.
  void AddRequestHeader(Call* call, nghttp2_rcbuf* name, nghttp2_rcbuf* value);
  static void ReleaseRawMetadata(Call* call);
  void ResetMalformedLocked(nghttp2_session* session, Call* call);

  Server* const server_;
  IoLoop* const loop_;
  const std::unique_ptr<ByteStream> stream_;
  const ServerOptions& opts_;

  // The loop thread's.
  std::vector<Event> received_;  // what Receive took from events_, being dispatched
  std::string unread_;  // input not yet given to the session (output was full)
  const int64_t opened_ns_;
  int64_t idle_since_ns_;  // since when no stream was open; -1 while one is
  bool stream_opened_since_check_ = false;
  size_t header_bytes_held_ = 0;  // Call::header_bytes_ of the open streams
  size_t header_block_bytes_ = 0;  // wire bytes of the header block being received

  // Guarded by mu_.
  std::mutex mu_;
  nghttp2_session* session_ = nullptr;
  IdleResetFilter reset_filter_;
  std::vector<std::string_view> pieces_;  // FeedLocked's, kept for its capacity
  Call* recent_call_ = nullptr;  // the stream opened last (OnBeginHeaders), until it closes
  std::vector<int32_t> refuse_after_goaway_;  // new streams nghttp2 ignored after our GOAWAY
  absl::flat_hash_map<int32_t, CallPtr> streams_;
  std::vector<Event> events_;
  std::vector<CallPtr> writable_notify_;
  std::string sending_;  // being written to the stream, from sending_pos_
  size_t sending_pos_ = 0;
  size_t blocked_bytes_ = 0;  // Call::out_ bytes the session has not taken, all calls
  bool handshake_done_ = false;  // the preface and the client's first SETTINGS arrived
  bool want_write_ = false;      // sending_ waits for the stream to take more
  bool read_paused_ = false;     // input waits for the output queue to drain
  bool reading_stopped_ = false;  // the session reads no more (after a connection error)
  bool interest_read_ = true, interest_write_ = false;  // as last told to the loop
  // Too-many-pings enforcement (ServerOptions::ping_interval_min_ms).
  int64_t last_ping_ns_ = -1;
  int ping_strikes_ = 0;
  bool stream_output_since_ping_ = false;  // HEADERS or DATA went out since the last PING
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool goaway_sent_ = false;
  bool close_after_flush_ = false;
};

}  // namespace geoetcd::h2

#endif  // GEOETCD_GATEWAY_H2_CONNECTION_H_
