#include "gateway/h2/connection.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/h2/request_headers.h"

namespace geoetcd::h2 {
namespace {

// gRPC status codes the transport itself produces.
constexpr int kCodeInternal = 13;
constexpr int kCodeUnimplemented = 12;
constexpr int kCodeResourceExhausted = 8;
constexpr size_t kGrpcPrefix = 5;

// Bytes one connection may read per turn of its I/O loop. Then the loop writes what is
// queued, reaps finished streams and serves the other connections: a client that keeps its
// socket full gets its turn like every other, and its answers leave as it goes.
constexpr size_t kReadBytesPerTurnMax = 4 * IoLoop::kReadChunk;
// Input is given to the session this much at a time, its output pumped in between: nghttp2
// ends a session that makes it queue more than 1000 acknowledgements (SETTINGS, PING) unsent,
// and 8 KiB of 9-byte SETTINGS frames asks for 910.
constexpr size_t kRecvSliceBytes = 8 * 1024;
// A header block (HEADERS and its CONTINUATIONs, on the wire) larger than this ends the
// connection with ENHANCE_YOUR_CALM, whatever it decodes to.
size_t HeaderBlockBytesMax(const ServerOptions& opts) {
  return 4 * size_t{opts.max_header_list_bytes} + 65536;
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

std::string_view View(const uint8_t* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

const nghttp2_option* Options() {
  static nghttp2_option* option = [] {
    nghttp2_option* o = nullptr;
    nghttp2_option_new(&o);
    // PINGs are answered by OnPingLocked, which counts strikes first.
    nghttp2_option_set_no_auto_ping_ack(o, 1);
    // Closed streams are kept only for priority trees, which gRPC does not use.
    nghttp2_option_set_no_closed_streams(o, 1);
    // Header blocks are judged by HeaderBlockCheck (request_headers.h), as RFC 9113 asks but
    // without nghttp2's rule that :authority be an RFC 3986 authority.
    nghttp2_option_set_no_http_messaging(o, 1);
    return o;
  }();
  return option;
}

}  // namespace

// ---- setup -----------------------------------------------------------------------------------

Connection::Connection(Server* server, IoLoop* loop, std::unique_ptr<ByteStream> stream)
    : server_(server),
      loop_(loop),
      stream_(std::move(stream)),
      opts_(server->options_),
      opened_ns_(MonotonicNowNs()),
      idle_since_ns_(opened_ns_) {
  nghttp2_session_server_new2(&session_, Callbacks(), this, Options());
}

Connection::~Connection() { nghttp2_session_del(session_); }

void Connection::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts_.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts_.max_header_list_bytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // RFC 9218: no RFC 7540 priority tree, which gRPC does not use and which costs nghttp2
      // work on every stream opened and closed.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(opts_.connection_window));
  ScheduleFlushLocked();
}

const nghttp2_session_callbacks* Connection::Callbacks() {
  static nghttp2_session_callbacks* callbacks = [] {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &OnBeginFrame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback2(cb, &OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &OnFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &OnStreamClose);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cb, &DataFrameLength);
    return cb;
  }();
  return callbacks;
}

Call* Connection::CallOf(int32_t stream_id) {
  return static_cast<Call*>(nghttp2_session_get_stream_user_data(session_, stream_id));
}

// The stream the client opened last: the callbacks of its header block, one field each, and
// of the DATA that follows it (a unary request's message) need no lookup in the session.
Call* Connection::RecentCall(int32_t stream_id) {
  if (recent_call_ != nullptr && recent_call_->id_ == static_cast<uint32_t>(stream_id)) {
    return recent_call_;
  }
  return CallOf(stream_id);
}

// ---- the loop's entry points -------------------------------------------------------------

void Connection::OnReadable(bool hangup) {
  bool unwanted;
  {
    std::lock_guard<std::mutex> lock(mu_);
    unwanted = read_paused_ || reading_stopped_;
  }
  if (unwanted) {
    // Only hang-ups and errors are reported while input is not wanted.
    if (hangup) CloseNow();
    return;
  }
  if (!unread_.empty()) {
    const std::string pending = std::move(unread_);
    unread_.clear();
    if (!Receive(pending.data(), pending.size()) || !unread_.empty()) return;
  }
  char* const scratch = loop_->scratch();
  size_t read_bytes = 0;
  while (!closed_ && read_bytes < kReadBytesPerTurnMax) {
    const ssize_t n = stream_->Read(scratch, IoLoop::kReadChunk);
    if (n > 0) {
      read_bytes += static_cast<size_t>(n);
      if (!Receive(scratch, static_cast<size_t>(n))) return;
      if (!unread_.empty() || static_cast<size_t>(n) < IoLoop::kReadChunk) return;
      continue;
    }
    if (n == 0) {
      CloseNow();
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) CloseNow();
    return;
  }
}

bool Connection::Receive(const char* data, size_t len) {
  bool fatal = false;
  for (size_t pos = 0;;) {
    // Locked a slice at a time: the executor's replies to this connection need not wait
    // for the whole read.
    std::lock_guard<std::mutex> lock(mu_);
    // Below the bound after a pump, the session has nothing more to send: what the next
    // slice makes it queue starts from zero.
    fatal = !PumpOutputLocked();
    const bool more = !fatal && pos < len && !reading_stopped_;
    if (more && PendingOutputLocked() >= opts_.max_pending_output_bytes) {
      // A client that sends and never reads stops being read, not the server's memory.
      read_paused_ = true;
      unread_.assign(data + pos, len - pos);
    } else if (more) {
      const size_t slice = std::min(len - pos, kRecvSliceBytes);
      fatal = !FeedLocked(data + pos, slice);
      pos += slice;
      if (!nghttp2_session_want_read(session_)) reading_stopped_ = true;
      if (!fatal) continue;
    }
    received_.swap(events_);
    if (!fatal) {
      UpdateInterestLocked();
      ScheduleFlushLocked();
    }
    break;
  }
  Dispatch(&received_);
  if (fatal) {
    CloseNow();
    return false;
  }
  return !closed_;
}

bool Connection::FeedLocked(const char* data, size_t len) {
  pieces_.clear();
  reset_filter_.Filter(std::string_view(data, len), &pieces_);
  for (std::string_view piece : pieces_) {
    // A bad preface, or a session that cannot go on.
    if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(piece.data()),
                                 piece.size()) < 0) {
      return false;
    }
  }
  for (int32_t id : refuse_after_goaway_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
  }
  refuse_after_goaway_.clear();
  return true;
}

void Connection::OnWritable() {
  bool close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    close = !WriteOutLocked() || ShouldCloseLocked();
  }
  if (close) CloseNow();
  if (!closed_) Flush();
}

void Connection::Flush() {
  bool close;
  bool resume_input;
  std::vector<Event> events;
  std::vector<CallPtr> notify;
  {
    std::lock_guard<std::mutex> lock(mu_);
    flush_scheduled_ = false;
    close = !WriteOutLocked() || ShouldCloseLocked();
    events.swap(events_);
    notify.swap(writable_notify_);
    resume_input = !read_paused_ && !unread_.empty();
  }
  Dispatch(&events);
  for (const CallPtr& call : notify) {
    std::function<void()> fn;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn = call->on_writable_;
    }
    if (fn) fn();
  }
  if (close) {
    CloseNow();
    return;
  }
  // Input that waited for the output to drain: the socket may have nothing more to say, so
  // no readiness would bring it back.
  if (resume_input) OnReadable(false);
}

void Connection::FlushFromThisThread() {
  std::lock_guard<std::mutex> lock(mu_);
  flush_scheduled_ = false;
  if (closed_) return;
  const bool ok = WriteOutLocked();
  // Streams this closed (events_) are released on the loop's next pass over the connection
  // (its next input, or CheckDeadlines): waking the loop for each would cost the wakeup this
  // thread's flush exists to save.
  if (!ok || !writable_notify_.empty() || ShouldCloseLocked()) {
    // A write error or a close to make, or callbacks that must run on the loop.
    flush_scheduled_ = true;
    loop_->ScheduleFlush(shared_from_this(), /*may_defer=*/false);
  }
}

void Connection::CheckDeadlines(int64_t now_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!events_.empty()) ScheduleFlushLocked();  // streams closed by another thread's flush
  if (!handshake_done_) {
    if (now_ns - opened_ns_ >= opts_.handshake_timeout_ms * 1'000'000) {
      close_after_flush_ = true;
      reading_stopped_ = true;
      ScheduleFlushLocked();
    }
    return;
  }
  if (!streams_.empty() || stream_opened_since_check_) {
    stream_opened_since_check_ = false;
    idle_since_ns_ = -1;
    return;
  }
  if (idle_since_ns_ < 0) {
    idle_since_ns_ = now_ns;  // idle from the first check without streams: never early
    return;
  }
  if (opts_.idle_timeout_ms <= 0 || now_ns - idle_since_ns_ < opts_.idle_timeout_ms * 1'000'000) {
    return;
  }
  if (close_after_flush_) return;
  GoAwayLocked(NGHTTP2_NO_ERROR, "idle");
}

void Connection::GoAway() {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || goaway_sent_) return;
  goaway_sent_ = true;
  const std::string_view why = "server shutting down";
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        reinterpret_cast<const uint8_t*>(why.data()), why.size());
  ScheduleFlushLocked();
}

void Connection::CloseNow() {
  if (closed_) return;
  std::vector<CallPtr> calls;
  std::vector<Event> events;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& [id, call] : streams_) {
      call->cancelled_ = true;
      call->ended_ = true;
      ReleaseOutputLocked(call.get());
      calls.push_back(call);
    }
    streams_.clear();
    recent_call_ = nullptr;
    writable_notify_.clear();
    events.swap(events_);
    std::string().swap(sending_);
    sending_pos_ = 0;
  }
  stream_->Shutdown();
  // Streams that closed before: only their release is still owed.
  for (Event& e : events) {
    if (e.kind == Event::kClosed) Closed(e.call, e.cancelled);
  }
  for (const CallPtr& call : calls) Closed(call, true);
  unread_.clear();
}

// ---- input: what the session reported, handed to methods without mu_ ------------------------

void Connection::Dispatch(std::vector<Event>* events) {
  for (Event& e : *events) {
    switch (e.kind) {
      case Event::kStart: StartCall(e.call); break;
      case Event::kData:
        if (!e.call->discard_input_) DeliverData(e.call, e.data);
        break;
      case Event::kHalfClose:
        if (!e.call->input_closed_ && !e.call->discard_input_) {
          HalfClose(e.call);
        } else {
          e.call->input_closed_ = true;
        }
        break;
      case Event::kClosed: Closed(e.call, e.cancelled); break;
    }
  }
  events->clear();
}

// Decided as the call would start, after the calls before it on the connection have answered:
// while a client has max_blocked_output_bytes of answers waiting for its windows, or after our
// GOAWAY, new streams are refused (RST_STREAM(REFUSED_STREAM): gRPC clients retry them).
bool Connection::RefuseIfBacklogged(Call* call) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!goaway_sent_ && blocked_bytes_ < opts_.max_blocked_output_bytes) return false;
  call->refused_ = call->discard_input_ = true;
  if (!call->ended_ && !closed_) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, static_cast<int32_t>(call->id_),
                              NGHTTP2_REFUSED_STREAM);
    ScheduleFlushLocked();
  }
  ReleaseRequestHeaders(call);
  return true;
}

void Connection::StartCall(const CallPtr& call) {
  if (call->headers_truncated_) {
    ReleaseRequestHeaders(call.get());
    call->Finish(kCodeResourceExhausted,
                 absl::StrCat("header list larger than ", opts_.max_header_list_bytes, " bytes"));
    return;
  }
  if (!call->post_ || call->path_.empty() || call->path_[0] != '/' ||
      !call->grpc_content_) {
    // Not a gRPC request: HTTP 415 as gRPC servers answer, and the stream ends.
    ReleaseRequestHeaders(call.get());
    call->discard_input_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    if (call->ended_ || closed_) return;
    const nghttp2_nv nva[] = {Nv(":status", "415")};
    call->finished_ = call->response_submitted_ = true;
    nghttp2_submit_response(session_, static_cast<int32_t>(call->id_), nva, std::size(nva),
                            nullptr);
    ScheduleFlushLocked();
    return;
  }
  if (RefuseIfBacklogged(call.get())) return;
  // Unary calls keep their headers until their message arrives; the rest start now.
  if (auto u = server_->unary_.find(call->path_); u != server_->unary_.end()) {
    call->unary_method_ = &u->second;
    return;
  }
  const StreamMethod* factory = nullptr;
  if (auto s = server_->streaming_.find(call->path_); s != server_->streaming_.end()) {
    factory = &s->second;
  } else if (server_->fallback_) {
    factory = &server_->fallback_;
  }
  if (factory == nullptr) {
    ReleaseRequestHeaders(call.get());
    call->Finish(kCodeUnimplemented, "");
    return;
  }
  const CallStart start{call->path_, call->deadline_ns_, call.get()};
  call->handler_ = (*factory)(call, start);
  ReleaseRequestHeaders(call.get());
}

// Splits the stream's bytes into gRPC messages and hands each to the call's method.
void Connection::DeliverData(const CallPtr& call, std::string_view payload) {
  std::string_view data = payload;
  if (!call->in_buf_.empty()) {
    call->in_buf_.append(payload);
    data = call->in_buf_;
  }
  size_t pos = 0;
  while (data.size() - pos >= kGrpcPrefix && !call->discard_input_) {
    const auto* p = reinterpret_cast<const uint8_t*>(data.data() + pos);
    const uint32_t len = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) |
                         (uint32_t{p[3]} << 8) | uint32_t{p[4]};
    if (len > opts_.max_receive_message_bytes) {
      RejectInput(call, kCodeResourceExhausted,
                  absl::StrCat("Received message larger than max (", len, " vs. ",
                               opts_.max_receive_message_bytes, ")"));
      return;
    }
    if (data.size() - pos - kGrpcPrefix < len) break;
    if (p[0] != 0) {
      RejectInput(call, kCodeUnimplemented, "compressed request messages are not supported");
      return;
    }
    const std::string_view message = data.substr(pos + kGrpcPrefix, len);
    pos += kGrpcPrefix + len;
    DeliverMessage(call, message);
  }
  if (call->discard_input_) return;
  if (data.data() == call->in_buf_.data()) {
    call->in_buf_.erase(0, pos);
  } else {
    call->in_buf_.assign(data.substr(pos));
  }
}

void Connection::DeliverMessage(const CallPtr& call, std::string_view message) {
  if (call->handler_) {
    call->handler_->OnMessage(message);
    return;
  }
  if (call->unary_method_ == nullptr) return;  // already dispatched; extra messages dropped
  const UnaryMethod* method = call->unary_method_;
  call->unary_method_ = nullptr;
  const CallStart start{call->path_, call->deadline_ns_, call.get()};
  (*method)(call, message, start);
  ReleaseRequestHeaders(call.get());
}

void Connection::HalfClose(const CallPtr& call) {
  call->input_closed_ = true;
  ReleaseRequestHeaders(call.get());
  if (!call->in_buf_.empty()) {
    call->in_buf_.clear();
    RejectInput(call, kCodeInternal, "request stream ended inside a message");
    return;
  }
  if (call->handler_) {
    call->handler_->OnHalfClose();
  } else if (call->unary_method_ != nullptr) {
    call->unary_method_ = nullptr;
    call->Finish(kCodeInternal, "request has no message");
  }
}

// Ends a call whose request is unacceptable; its remaining input is discarded.
void Connection::RejectInput(const CallPtr& call, int code, std::string_view message) {
  call->unary_method_ = nullptr;
  ReleaseRequestHeaders(call.get());
  std::string().swap(call->in_buf_);
  if (call->handler_) {
    call->handler_->OnCancel();
    call->handler_.reset();
  }
  call->discard_input_ = true;
  // OnFrameSend resets the stream with NO_ERROR if the client is still sending.
  call->Finish(code, message);
}

// The stream is gone from the session: the call is over. Its handler usually holds the call
// (and so the connection); it is let go of here, on the loop thread, without mu_.
void Connection::Closed(const CallPtr& call, bool cancelled) {
  call->unary_method_ = nullptr;
  call->discard_input_ = true;
  ReleaseRequestHeaders(call.get());
  std::string().swap(call->in_buf_);
  std::shared_ptr<CallHandler> handler = std::move(call->handler_);
  std::function<void()> on_writable;
  {
    std::lock_guard<std::mutex> lock(mu_);
    on_writable = std::move(call->on_writable_);
    call->on_writable_ = nullptr;
  }
  if (handler && cancelled) handler->OnCancel();
}

// Frees the request headers of a call whose method has started or that is over, and returns
// their bytes to the connection's budget.
void Connection::ReleaseRequestHeaders(Call* call) {
  header_bytes_held_ -= call->header_bytes_;
  call->header_bytes_ = 0;
  ReleaseRawMetadata(call);
  std::vector<HeaderField>().swap(call->metadata_);
  std::string().swap(call->path_);
}

void Connection::ReleaseRawMetadata(Call* call) {
  for (const Call::RawField& f : call->raw_metadata_) {
    nghttp2_rcbuf_decref(f.name);
    nghttp2_rcbuf_decref(f.value);
  }
  std::vector<Call::RawField>().swap(call->raw_metadata_);
}

// ---- input: session callbacks (loop thread, mu_ held) -----------------------------------------

int Connection::OnBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
  auto* conn = static_cast<Connection*>(user);
  if (hd->type == NGHTTP2_HEADERS) {
    conn->header_block_bytes_ = hd->length;
    // After our GOAWAY nghttp2 ignores new streams silently; Receive tells the client, so
    // that it retries elsewhere at once.
    if (conn->goaway_sent_ &&
        hd->stream_id > nghttp2_session_get_last_proc_stream_id(conn->session_) &&
        nghttp2_session_find_stream(conn->session_, hd->stream_id) == nullptr) {
      conn->refuse_after_goaway_.push_back(hd->stream_id);
    }
  } else if (hd->type == NGHTTP2_CONTINUATION) {
    conn->header_block_bytes_ += hd->length;
  } else {
    return 0;
  }
  if (conn->header_block_bytes_ > HeaderBlockBytesMax(conn->opts_) && !conn->reading_stopped_) {
    // Receive gives the session no more input after this slice.
    conn->GoAwayLocked(NGHTTP2_ENHANCE_YOUR_CALM, "header block too large");
  }
  return 0;
}

int Connection::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                               void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* conn = static_cast<Connection*>(user);
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // The client's trailers: judged as a block of their own.
    if (Call* call = conn->CallOf(frame->hd.stream_id)) {
      call->check_ = HeaderBlockCheck(HeaderBlockKind::kTrailers);
    }
    return 0;
  }
  const uint32_t id = static_cast<uint32_t>(frame->hd.stream_id);
  auto call =
      std::shared_ptr<Call>(new Call(conn->shared_from_this(), conn->server_->live_calls_, id));
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call.get());
  conn->recent_call_ = call.get();
  conn->streams_.emplace(frame->hd.stream_id, std::move(call));
  conn->stream_opened_since_check_ = true;
  return 0;
}

void Connection::AddRequestHeader(Call* call, nghttp2_rcbuf* name_buf, nghttp2_rcbuf* value_buf) {
  const nghttp2_vec name_vec = nghttp2_rcbuf_get_buf(name_buf);
  const nghttp2_vec value_vec = nghttp2_rcbuf_get_buf(value_buf);
  const std::string_view name = View(name_vec.base, name_vec.len);
  const std::string_view value = View(value_vec.base, value_vec.len);
  call->header_list_bytes_ += name.size() + value.size() + kHpackEntryOverhead;
  if (call->header_list_bytes_ > opts_.max_header_list_bytes) {
    // Fields after the limit are dropped; the call is refused without any reaching a method.
    call->headers_truncated_ = true;
    return;
  }
  const bool pseudo = !name.empty() && name[0] == ':';
  if (!pseudo || name == ":path") {
    call->kept_header_bytes_ += name.size() + value.size() + kHpackEntryOverhead;
  }
  if (pseudo) {
    if (name == ":path") {
      call->path_.assign(value);
    } else if (name == ":method") {
      call->post_ = value == "POST";
    }
    return;
  }
  if (name == "content-type") {
    // "application/grpc" or "application/grpc+<codec>" (gRPC's spec), not "-web".
    call->grpc_content_ =
        value == "application/grpc" || value.rfind("application/grpc+", 0) == 0;
  } else if (name == "grpc-timeout") {
    const int64_t ns = ParseGrpcTimeout(value);
    if (ns >= 0) call->deadline_ns_ = MonotonicNowNs() + std::min(ns, INT64_MAX / 4);
  }
  nghttp2_rcbuf_incref(name_buf);
  nghttp2_rcbuf_incref(value_buf);
  call->raw_metadata_.push_back(Call::RawField{name_buf, value_buf});
}

int Connection::OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                         nghttp2_rcbuf* name, nghttp2_rcbuf* value, uint8_t, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* conn = static_cast<Connection*>(user);
  Call* call = conn->RecentCall(frame->hd.stream_id);
  if (call == nullptr || call->refused_) return 0;
  const nghttp2_vec n = nghttp2_rcbuf_get_buf(name);
  const nghttp2_vec v = nghttp2_rcbuf_get_buf(value);
  if (!call->check_.Add(View(n.base, n.len), View(v.base, v.len)).empty()) {
    conn->ResetMalformedLocked(session, call);
    return 0;
  }
  // The client's trailers carry nothing a method reads (gRPC clients send none).
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) conn->AddRequestHeader(call, name, value);
  return 0;
}

// A malformed request or trailer block: RST_STREAM(PROTOCOL_ERROR), and nothing of it reaches
// a method (a started call is cancelled when the stream closes).
void Connection::ResetMalformedLocked(nghttp2_session* session, Call* call) {
  call->refused_ = call->discard_input_ = true;
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, static_cast<int32_t>(call->id_),
                            NGHTTP2_PROTOCOL_ERROR);
}

int Connection::OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
  auto* conn = static_cast<Connection*>(user);
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      Call* call = conn->RecentCall(frame->hd.stream_id);
      if (call == nullptr || call->refused_) return 0;
      if (!call->check_.Finish().empty()) {
        conn->ResetMalformedLocked(conn->session_, call);
        return 0;
      }
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        conn->OnRequestHeadersLocked(call, end_stream);
        return 0;
      }
      // Trailers end the request (RFC 9113 §8.1).
      if (!end_stream) {
        conn->ResetMalformedLocked(conn->session_, call);
        return 0;
      }
      break;
    }
    case NGHTTP2_DATA: break;
    case NGHTTP2_SETTINGS:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) conn->handshake_done_ = true;
      return 0;
    case NGHTTP2_PING:
      if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) conn->OnPingLocked(frame->ping.opaque_data);
      return 0;
    default: return 0;
  }
  if (!end_stream) return 0;
  if (Call* call = conn->RecentCall(frame->hd.stream_id)) {
    conn->events_.push_back(Event{Event::kHalfClose, call->shared_from_this(), {}});
  }
  return 0;
}

void Connection::OnRequestHeadersLocked(Call* call, bool end_stream) {
  if (call->refused_) return;
  if (goaway_sent_ ||
      header_bytes_held_ + call->kept_header_bytes_ > opts_.max_connection_header_bytes) {
    call->refused_ = true;
    call->discard_input_ = true;
    ReleaseRawMetadata(call);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, static_cast<int32_t>(call->id_),
                              NGHTTP2_REFUSED_STREAM);
    return;
  }
  call->header_bytes_ = call->kept_header_bytes_;
  header_bytes_held_ += call->header_bytes_;
  CallPtr ptr = call->shared_from_this();
  events_.push_back(Event{Event::kStart, ptr, {}});
  if (end_stream) events_.push_back(Event{Event::kHalfClose, std::move(ptr), {}});
}

void Connection::OnPingLocked(const uint8_t* opaque) {
  if (close_after_flush_) return;  // the rest of the read after a GOAWAY gets no answers
  const int64_t now_ns = MonotonicNowNs();
  const bool early =
      last_ping_ns_ >= 0 && now_ns - last_ping_ns_ < opts_.ping_interval_min_ms * 1'000'000;
  if (stream_output_since_ping_) {
    ping_strikes_ = 0;
  } else if (early && ++ping_strikes_ > opts_.ping_strikes_max) {
    GoAwayLocked(NGHTTP2_ENHANCE_YOUR_CALM, "too_many_pings");
    return;
  }
  stream_output_since_ping_ = false;
  last_ping_ns_ = now_ns;
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_ACK, opaque);
}

int Connection::OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                            size_t len, void* user) {
  auto* conn = static_cast<Connection*>(user);
  Call* call = conn->RecentCall(stream_id);
  if (call == nullptr || call->discard_input_) return 0;
  conn->events_.push_back(Event{Event::kData, call->shared_from_this(), View(data, len)});
  return 0;
}

// ---- output: from any thread ------------------------------------------------------------------

bool Connection::WriteMessage(Call* call, std::string_view message, bool finish) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || call->finished_ || call->ended_) return false;
  const uint32_t len = static_cast<uint32_t>(message.size());
  const char prefix[kGrpcPrefix] = {0, static_cast<char>(len >> 24),
                                    static_cast<char>(len >> 16), static_cast<char>(len >> 8),
                                    static_cast<char>(len)};
  if (call->out_pos_ == call->out_.size()) {
    call->out_.clear();
    call->out_pos_ = 0;
  }
  call->out_.append(prefix, kGrpcPrefix);
  call->out_.append(message);
  blocked_bytes_ += kGrpcPrefix + message.size();
  if (finish) {
    call->finished_ = true;
    call->trailer_code_ = 0;
  }
  if (!call->response_submitted_) {
    SubmitResponseLocked(call, true);
  } else if (call->data_deferred_) {
    call->data_deferred_ = false;
    nghttp2_session_resume_data(session_, static_cast<int32_t>(call->id_));
  }
  UpdateWatermarkLocked(call);
  ScheduleFlushLocked();
  return true;
}

void Connection::FinishCall(Call* call, int code, std::string_view message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || call->finished_ || call->ended_) return;
  call->finished_ = true;
  if (!call->response_submitted_) {
    SubmitTrailersOnlyLocked(call, code, message);
  } else {
    call->trailer_code_ = code;
    call->trailer_message_ = PercentEncode(message);
    if (call->data_deferred_) {
      call->data_deferred_ = false;
      nghttp2_session_resume_data(session_, static_cast<int32_t>(call->id_));
    }
  }
  ScheduleFlushLocked();
}

size_t Connection::BlockedBytes(const Call* call) {
  std::lock_guard<std::mutex> lock(mu_);
  return call->out_.size() - call->out_pos_;
}

void Connection::SetOnWritable(Call* call, size_t low_watermark, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (closed_ || call->ended_) return;  // over: fn would never be released
  call->low_watermark_ = low_watermark;
  call->on_writable_ = std::move(fn);
}

bool Connection::Cancelled(const Call* call) {
  std::lock_guard<std::mutex> lock(mu_);
  return call->cancelled_ || closed_;
}

// ---- output: mu_ held -------------------------------------------------------------------------

void Connection::SubmitResponseLocked(Call* call, bool with_data) {
  static const nghttp2_nv kHeaders[] = {Nv(":status", "200"),
                                        Nv("content-type", "application/grpc")};
  nghttp2_data_provider provider;
  provider.source.ptr = call;
  provider.read_callback = &ReadData;
  call->response_submitted_ = true;
  nghttp2_submit_response(session_, static_cast<int32_t>(call->id_), kHeaders,
                          std::size(kHeaders), with_data ? &provider : nullptr);
}

// A call that ends before any message: one HEADERS frame with the status and END_STREAM.
void Connection::SubmitTrailersOnlyLocked(Call* call, int code, std::string_view message) {
  const std::string code_text = absl::StrCat(code);
  const std::string encoded = PercentEncode(message);
  nghttp2_nv nva[] = {Nv(":status", "200"), Nv("content-type", "application/grpc"),
                      Nv("grpc-status", code_text), Nv("grpc-message", encoded)};
  call->response_submitted_ = true;
  nghttp2_submit_response(session_, static_cast<int32_t>(call->id_), nva,
                          encoded.empty() ? 3 : 4, nullptr);
}

void Connection::SubmitTrailersLocked(Call* call) {
  const std::string code_text = absl::StrCat(call->trailer_code_);
  nghttp2_nv nva[] = {Nv("grpc-status", code_text), Nv("grpc-message", call->trailer_message_)};
  nghttp2_submit_trailer(session_, static_cast<int32_t>(call->id_), nva,
                         call->trailer_message_.empty() ? 1 : 2);
}

// DATA frames as large as the windows and the peer's SETTINGS_MAX_FRAME_SIZE allow (nghttp2
// stops at 16 KiB otherwise): fewer frames for large answers.
ssize_t Connection::DataFrameLength(nghttp2_session*, uint8_t, int32_t, int32_t session_window,
                                    int32_t stream_window, uint32_t max_frame, void*) {
  return std::min<ssize_t>({session_window, stream_window, static_cast<ssize_t>(max_frame)});
}

ssize_t Connection::ReadData(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* data_flags, nghttp2_data_source* source, void* user) {
  return static_cast<Connection*>(user)->ReadDataLocked(static_cast<Call*>(source->ptr), buf,
                                                        length, data_flags);
}

// The session takes up to `length` bytes of the call's output: what the windows allow.
ssize_t Connection::ReadDataLocked(Call* call, uint8_t* buf, size_t length,
                                   uint32_t* data_flags) {
  const size_t n = std::min(length, call->out_.size() - call->out_pos_);
  std::memcpy(buf, call->out_.data() + call->out_pos_, n);
  call->out_pos_ += n;
  blocked_bytes_ -= n;
  if (call->out_pos_ == call->out_.size()) {
    call->out_.clear();
    call->out_pos_ = 0;
    if (call->finished_) {
      *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      SubmitTrailersLocked(call);
    } else if (n == 0) {
      call->data_deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  UpdateWatermarkLocked(call);
  return static_cast<ssize_t>(n);
}

void Connection::UpdateWatermarkLocked(Call* call) {
  if (!call->on_writable_) return;
  if (call->out_.size() - call->out_pos_ >= call->low_watermark_) {
    call->above_watermark_ = true;
  } else if (call->above_watermark_) {
    call->above_watermark_ = false;
    writable_notify_.push_back(call->shared_from_this());
  }
}

int Connection::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto* conn = static_cast<Connection*>(user);
  conn->stream_output_since_ping_ = true;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  Call* call = conn->CallOf(frame->hd.stream_id);
  if (call == nullptr) return 0;
  call->ended_ = true;
  // The response ended before the request did: tell the client to stop sending.
  if (!nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id)) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
  }
  return 0;
}

int Connection::OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
  auto* conn = static_cast<Connection*>(user);
  auto it = conn->streams_.find(stream_id);
  if (it == conn->streams_.end()) return 0;
  CallPtr call = std::move(it->second);
  conn->streams_.erase(it);
  if (conn->recent_call_ == call.get()) conn->recent_call_ = nullptr;
  const bool cancelled = !call->ended_;
  call->ended_ = true;
  call->cancelled_ = call->cancelled_ || cancelled;
  // Nothing more goes out on this stream: what waited for its window is freed now, not when
  // a WINDOW_UPDATE that may never come would have let it out.
  conn->ReleaseOutputLocked(call.get());
  conn->events_.push_back(Event{Event::kClosed, std::move(call), {}, cancelled});
  if (conn->streams_.empty()) conn->idle_since_ns_ = -1;
  return 0;
}

void Connection::ReleaseOutputLocked(Call* call) {
  blocked_bytes_ -= call->out_.size() - call->out_pos_;
  std::string().swap(call->out_);
  call->out_pos_ = 0;
}

void Connection::GoAwayLocked(uint32_t error_code, std::string_view why) {
  if (close_after_flush_) return;  // one GOAWAY ends the connection
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), error_code,
                        reinterpret_cast<const uint8_t*>(why.data()), why.size());
  close_after_flush_ = true;
  reading_stopped_ = true;
  ScheduleFlushLocked();
}

void Connection::ScheduleFlushLocked() {
  if (flush_scheduled_ || closed_) return;
  flush_scheduled_ = true;
  loop_->ScheduleFlush(shared_from_this());
}

bool Connection::PumpOutputLocked() {
  while (PendingOutputLocked() < opts_.max_pending_output_bytes) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) return false;
    if (n == 0) break;
    if (sending_pos_ == sending_.size()) {
      sending_.clear();
      sending_pos_ = 0;
    }
    sending_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return true;
}

bool Connection::WriteOutLocked() {
  if (closed_) return true;
  while (true) {
    if (!PumpOutputLocked()) return false;
    if (sending_pos_ == sending_.size()) break;
    while (sending_pos_ < sending_.size()) {
      const ssize_t n =
          stream_->Write(sending_.data() + sending_pos_, sending_.size() - sending_pos_);
      if (n > 0) {
        sending_pos_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        want_write_ = true;
        ResumeReadingIfDrainedLocked();
        UpdateInterestLocked();
        return true;
      }
      return false;
    }
  }
  sending_.clear();
  sending_pos_ = 0;
  want_write_ = false;
  ResumeReadingIfDrainedLocked();
  UpdateInterestLocked();
  return true;
}

void Connection::ResumeReadingIfDrainedLocked() {
  if (read_paused_ && PendingOutputLocked() <= opts_.max_pending_output_bytes / 2) {
    read_paused_ = false;
  }
}

void Connection::UpdateInterestLocked() {
  if (closed_) return;
  const bool read = !read_paused_ && !reading_stopped_;
  if (read == interest_read_ && want_write_ == interest_write_) return;
  interest_read_ = read;
  interest_write_ = want_write_;
  loop_->SetInterest(this, stream_->fd(), read, want_write_);
}

bool Connection::ShouldCloseLocked() const {
  if (want_write_ || sending_pos_ != sending_.size()) return false;
  if (nghttp2_session_want_write(session_)) return false;
  return close_after_flush_ || !nghttp2_session_want_read(session_);
}

}  // namespace geoetcd::h2
