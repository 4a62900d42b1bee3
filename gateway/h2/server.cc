#include "gateway/h2/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/h2/frame.h"
#include "gateway/h2/request_headers.h"

namespace geoetcd::h2 {
namespace {

// gRPC status codes the transport itself produces.
constexpr int kCodeInternal = 13;
constexpr int kCodeUnimplemented = 12;
constexpr int kCodeResourceExhausted = 8;

constexpr uint64_t kTagFd = 1ull << 63;  // epoll data: a listener or the wakeup eventfd
constexpr size_t kReadChunk = 64 * 1024;
// Bytes one connection may read per turn of its I/O loop. Then the loop writes what is
// queued, reaps finished streams and serves the other connections: a client that keeps its
// socket full gets its turn like every other, and its answers leave as it goes.
constexpr size_t kReadBytesPerTurnMax = 4 * kReadChunk;
// How long the listeners rest after accept failed for want of descriptors or memory. The
// connection it could not take keeps the listener readable; retrying at once spins a core.
constexpr int64_t kAcceptBackoffMs = 100;
// How often an I/O loop checks its connections' handshake and idle deadlines and wakes
// rested listeners (only while it has any).
constexpr int64_t kTimerTickMs = 50;
constexpr size_t kGrpcPrefix = 5;

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

const std::string& ResponseHeadersBlock() {
  static const std::string* block = [] {
    auto* b = new std::string;
    HpackEncoder::Encode(":status", "200", b);
    HpackEncoder::Encode("content-type", "application/grpc", b);
    return b;
  }();
  return *block;
}

void AppendTrailerFields(int code, std::string_view message, std::string* block) {
  HpackEncoder::Encode("grpc-status", absl::StrCat(code), block);
  if (!message.empty()) HpackEncoder::Encode("grpc-message", PercentEncode(message), block);
}

thread_local IoLoop* current_loop = nullptr;
// FlushDeferred() was called on this thread: its writes wait for the next call to it.
thread_local bool defer_flushes = false;
thread_local std::vector<std::shared_ptr<Connection>> deferred_flushes;

}  // namespace

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

int64_t ParseGrpcTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return -1;
  int64_t n = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  int64_t unit_ns;
  switch (value.back()) {
    case 'H': unit_ns = 3600'000'000'000; break;
    case 'M': unit_ns = 60'000'000'000; break;
    case 'S': unit_ns = 1'000'000'000; break;
    case 'm': unit_ns = 1'000'000; break;
    case 'u': unit_ns = 1'000; break;
    case 'n': unit_ns = 1; break;
    default: return -1;
  }
  // At most 8 digits: 99,999,999 hours would overflow; clamp to ~292 years.
  if (n > INT64_MAX / unit_ns) return INT64_MAX;
  return n * unit_ns;
}

// ---- the event loop --------------------------------------------------------------------

class IoLoop {
 public:
  explicit IoLoop(Server* server) : server_(server) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagFd | static_cast<uint64_t>(wakefd_);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev);
  }
  ~IoLoop() {
    Stop();
    close(wakefd_);
    close(epfd_);
  }

  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Stop() {
    if (!thread_.joinable()) return;
    Post(nullptr);  // the stop marker
    thread_.join();
  }

  void WatchListener(int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagFd | static_cast<uint64_t>(fd);
    epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
  }
  // Loop thread: stops watching `fd`, also when it is resting (the caller closes it).
  void UnwatchListener(int fd) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
    resting_listeners_.erase(std::remove_if(resting_listeners_.begin(), resting_listeners_.end(),
                                            [fd](const auto& r) { return r.first == fd; }),
                             resting_listeners_.end());
  }

  // Runs `fn` on this loop's thread; nullptr stops the loop.
  void Post(std::function<void()> fn) {
    EnqueueAndWake([&] { tasks_.push_back(std::move(fn)); });
  }

  // Asks the loop to write `conn`'s queued output; cheap when called from the loop itself.
  void ScheduleFlush(std::shared_ptr<Connection> conn) {
    if (current_loop == this) {
      local_flush_.push_back(std::move(conn));
      return;
    }
    EnqueueAndWake([&] { remote_flush_.push_back(std::move(conn)); });
  }

  void Adopt(int fd);
  // REQUIRES: conn->mu_ held. Sets the epoll events `conn` waits for.
  void SetEvents(Connection* conn, int fd, uint32_t events);
  void CloseAll();
  void GoAwayAll();
  // A read buffer shared by the loop's connections (frames are handled before the next read).
  char* scratch() { return scratch_.get(); }

 private:
  // Runs `add` under mu_ and wakes the loop unless a wakeup is already on its way.
  template <typename Add>
  void EnqueueAndWake(Add add) {
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      add();
      wake = !wake_pending_;
      wake_pending_ = true;
    }
    if (wake) Wake();
  }
  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wakefd_, &one, sizeof(one));
  }
  void Run();
  void FlushAll();
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
  bool wake_pending_ = false;                           // guarded by mu_
  std::vector<std::function<void()>> tasks_;            // guarded by mu_
  std::vector<std::shared_ptr<Connection>> remote_flush_;  // guarded by mu_
  // The loop thread's own.
  std::vector<std::shared_ptr<Connection>> local_flush_;
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> conns_;
  std::unique_ptr<char[]> scratch_{new char[kReadChunk]};
  bool stopped_ = false;
  std::vector<std::pair<int, int64_t>> resting_listeners_;  // fd, when to watch it again
  int64_t next_tick_ns_ = 0;
};

// ---- one HTTP/2 connection ---------------------------------------------------------------

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server* server, IoLoop* loop, int fd)
      : server_(server),
        loop_(loop),
        fd_(fd),
        opts_(server->options_),
        decoder_(4096),
        opened_ns_(MonotonicNowNs()),
        idle_since_ns_(opened_ns_) {}
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }

  int fd() const { return fd_; }
  bool closed() const { return closed_; }

  // Loop thread: the server's SETTINGS and a connection window beyond the default.
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    AppendSettings(&out_, {{Setting::kMaxConcurrentStreams, opts_.max_concurrent_streams},
                           {Setting::kInitialWindowSize, opts_.stream_window},
                           {Setting::kMaxHeaderListSize, opts_.max_header_list_bytes},
                           {Setting::kEnablePush, 0}});
    if (opts_.connection_window > kDefaultInitialWindow) {
      AppendWindowUpdate(&out_, 0, opts_.connection_window - kDefaultInitialWindow);
    }
    ScheduleFlushLocked();
  }

  // Loop thread: reads what the socket has into the loop's scratch buffer and handles every
  // complete frame in place; only a frame cut by the read is copied, into partial_. Reads at
  // most kReadBytesPerTurnMax, and none while the output queue is full (`events` are the
  // epoll events that woke it).
  void OnReadable(uint32_t events) {
    if (ReadPaused()) {
      // Only hang-ups and errors are reported while input waits for output to drain.
      if (events & (EPOLLHUP | EPOLLERR)) CloseNow();
      return;
    }
    char* const scratch = loop_->scratch();
    size_t read_bytes = 0;
    while (!closed_ && read_bytes < kReadBytesPerTurnMax) {
      const ssize_t n = read(fd_, scratch, kReadChunk);
      if (n > 0) {
        read_bytes += static_cast<size_t>(n);
        size_t used;
        bool alive;
        if (partial_.empty()) {
          used = Process(scratch, static_cast<size_t>(n), &alive);
          if (alive && used < static_cast<size_t>(n)) partial_.assign(scratch + used, n - used);
        } else {
          partial_.append(scratch, static_cast<size_t>(n));
          used = Process(partial_.data(), partial_.size(), &alive);
          if (alive) partial_.erase(0, used);
        }
        if (!alive || PauseReadingIfOutputFull()) return;
        if (static_cast<size_t>(n) < kReadChunk) return;
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

  void OnWritable() {
    bool close;
    {
      std::lock_guard<std::mutex> lock(mu_);
      close = !WriteOutLocked() || (close_after_flush_ && sending_.empty());
    }
    if (close) CloseNow();
  }

  // Another thread (FlushDeferred's): sends what its writes queued, coalesced. Finished
  // streams are left for the loop to reap on its next pass over this connection.
  void FlushFromThisThread() {
    std::lock_guard<std::mutex> lock(mu_);
    flush_scheduled_ = false;
    if (closed_) return;
    TakeOutLocked();
    const bool ok = WriteOutLocked();
    if (!done_ids_.empty()) reap_pending_.store(true, std::memory_order_relaxed);
    if (!ok || !writable_notify_.empty() || close_after_flush_) {
      // A socket error or a GOAWAY to close after (the loop closes), or callbacks that must
      // run on the loop.
      flush_scheduled_ = true;
      loop_->ScheduleFlush(shared_from_this());
    }
  }

  // Loop thread, every kTimerTickMs: the handshake and idle deadlines.
  void CheckDeadlines(int64_t now_ns) {
    if (!handshake_done_) {
      if (now_ns - opened_ns_ >= opts_.handshake_timeout_ms * 1'000'000) CloseNow();
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
    std::lock_guard<std::mutex> lock(mu_);
    if (close_after_flush_) return;
    goaway_sent_ = true;
    AppendGoAway(&out_, last_client_stream_, ErrorCode::kNoError, "idle");
    close_after_flush_ = true;
    reading_stopped_ = true;
    ScheduleFlushLocked();
  }

  // Loop thread: whether finished streams wait to be reaped (see FlushFromThisThread).
  bool reap_pending() const { return reap_pending_.load(std::memory_order_relaxed); }

  // Loop thread: writes what Call writers queued and reaps streams that finished.
  void Flush() {
    bool close;
    std::vector<CallPtr> reaped;
    std::vector<std::function<void()>> dropped;
    std::vector<CallPtr> notify;
    {
      std::lock_guard<std::mutex> lock(mu_);
      flush_scheduled_ = false;
      for (uint32_t id : done_ids_) {
        auto it = streams_.find(id);
        if (it == streams_.end()) continue;
        // The response ended before the request did: tell the client to stop sending.
        if (!it->second->input_closed_) AppendRstStream(&out_, id, ErrorCode::kNoError);
        it->second->unary_method_ = nullptr;
        ReleaseRequestHeaders(it->second.get());
        dropped.push_back(TakeOnWritableLocked(it->second.get()));
        reaped.push_back(std::move(it->second));
        streams_.erase(it);
      }
      done_ids_.clear();
      reap_pending_.store(false, std::memory_order_relaxed);
      notify.swap(writable_notify_);
      TakeOutLocked();
      close = !WriteOutLocked() || (close_after_flush_ && sending_.empty());
    }
    for (const CallPtr& call : notify) {
      std::function<void()> fn;
      {
        std::lock_guard<std::mutex> lock(mu_);
        fn = call->on_writable_;
      }
      if (fn) fn();
    }
    // The calls are over: let go of their handlers, which usually hold the call (and so the
    // connection); destroyed here, on the loop thread, without mu_.
    for (const CallPtr& call : reaped) call->handler_.reset();
    if (close) CloseNow();
  }

  // Loop thread: closes the socket and cancels every open call.
  void CloseNow() {
    if (closed_) return;
    std::vector<CallPtr> calls;
    std::vector<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      for (auto& [id, call] : streams_) {
        call->cancelled_ = true;
        call->trailers_sent_ = true;
        ReleaseOutputLocked(call.get());
        ReleaseRequestHeaders(call.get());
        dropped.push_back(TakeOnWritableLocked(call.get()));
        calls.push_back(call);
      }
      streams_.clear();
      blocked_calls_.clear();
      writable_notify_.clear();
      out_.clear();
    }
    shutdown(fd_, SHUT_RDWR);
    for (const CallPtr& call : calls) {
      if (call->handler_) call->handler_->OnCancel();
      call->handler_.reset();
    }
  }

  // Loop thread: GOAWAY(NO_ERROR) naming the last stream that will be served.
  void GoAway() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || goaway_sent_) return;
    goaway_sent_ = true;
    AppendGoAway(&out_, last_client_stream_, ErrorCode::kNoError, "server shutting down");
    ScheduleFlushLocked();
  }

  // ---- output, from any thread ----

  bool WriteMessage(Call* call, std::string_view message, bool finish) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || call->finished_ || call->trailers_sent_) return false;
    if (!call->headers_sent_) {
      AppendHeaderBlockLocked(call->id_, ResponseHeadersBlock(), false);
      call->headers_sent_ = true;
    }
    const uint32_t len = static_cast<uint32_t>(message.size());
    const char prefix[kGrpcPrefix] = {0, static_cast<char>(len >> 24),
                                      static_cast<char>(len >> 16), static_cast<char>(len >> 8),
                                      static_cast<char>(len)};
    const int64_t total = static_cast<int64_t>(kGrpcPrefix + message.size());
    if (call->blocked_.size() == call->blocked_pos_ && total <= peer_max_frame_ &&
        total <= conn_send_window_ && total <= call->send_window_) {
      // The common case: the whole message fits one DATA frame and both windows.
      AppendFrameHeader(&out_, static_cast<uint32_t>(total), FrameType::kData, 0, call->id_);
      out_.append(prefix, kGrpcPrefix);
      out_.append(message);
      conn_send_window_ -= total;
      call->send_window_ -= total;
      stream_output_since_ping_ = true;
    } else {
      call->blocked_.append(prefix, kGrpcPrefix);
      call->blocked_.append(message);
      blocked_bytes_ += static_cast<size_t>(total);
    }
    if (finish) {
      call->finished_ = true;
      AppendTrailerFields(0, {}, &call->trailers_);
    }
    PumpLocked(call);
    ScheduleFlushLocked();
    return true;
  }

  void FinishCall(Call* call, int code, std::string_view message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || call->finished_ || call->trailers_sent_) return;
    call->finished_ = true;
    if (!call->headers_sent_) {
      // Trailers-Only: one HEADERS frame with the status and END_STREAM.
      std::string block = ResponseHeadersBlock();
      AppendTrailerFields(code, message, &block);
      AppendHeaderBlockLocked(call->id_, block, true);
      call->headers_sent_ = true;
      call->trailers_sent_ = true;
      done_ids_.push_back(call->id_);
    } else {
      AppendTrailerFields(code, message, &call->trailers_);
      PumpLocked(call);
    }
    ScheduleFlushLocked();
  }

  size_t BlockedBytes(const Call* call) {
    std::lock_guard<std::mutex> lock(mu_);
    return call->blocked_.size() - call->blocked_pos_;
  }
  void SetOnWritable(Call* call, size_t low_watermark, std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || call->trailers_sent_) return;  // over: fn would never be released
    call->low_watermark_ = low_watermark;
    call->on_writable_ = std::move(fn);
  }
  bool Cancelled(const Call* call) {
    std::lock_guard<std::mutex> lock(mu_);
    return call->cancelled_ || closed_;
  }

 private:
  // ---- input, on the loop thread ----

  // Handles every complete frame in data[0, len) and returns how many bytes it used.
  // *alive turns false when the connection was closed or stopped reading.
  size_t Process(const char* data, size_t len, bool* alive) {
    if (reading_stopped_) {  // after a connection error: input is dropped until we close
      *alive = false;
      return len;
    }
    *alive = true;
    size_t pos = 0;
    if (!preface_seen_) {
      const size_t n = std::min(len, kClientPreface.size());
      if (std::string_view(data, n) != kClientPreface.substr(0, n)) {
        CloseNow();  // not HTTP/2 with prior knowledge (gRPC clients always are)
        *alive = false;
        return 0;
      }
      if (len < kClientPreface.size()) return 0;
      pos = kClientPreface.size();
      preface_seen_ = true;
    }
    while (len - pos >= kFrameHeaderBytes) {
      const FrameHeader h = ParseFrameHeader(reinterpret_cast<const uint8_t*>(data + pos));
      if (h.length > kDefaultMaxFrameSize) {
        *alive = ConnectionError(ErrorCode::kFrameSizeError,
                                 "frame larger than SETTINGS_MAX_FRAME_SIZE");
        return pos;
      }
      if (len - pos < kFrameHeaderBytes + h.length) break;
      const std::string_view payload(data + pos + kFrameHeaderBytes, h.length);
      pos += kFrameHeaderBytes + h.length;
      if (!HandleFrame(h, payload)) {
        *alive = false;
        return pos;
      }
    }
    return pos;
  }

  bool ConnectionError(ErrorCode code, std::string_view why) {
    std::lock_guard<std::mutex> lock(mu_);
    return ConnectionErrorLocked(code, why);
  }

  // GOAWAY with `code`, then the socket closes once it is written; nothing more is read.
  // Returns false (for HandleFrame's "stop").
  bool ConnectionErrorLocked(ErrorCode code, std::string_view why) {
    AppendGoAway(&out_, last_client_stream_, code, why);
    close_after_flush_ = true;
    reading_stopped_ = true;
    ScheduleFlushLocked();
    return false;
  }

  bool HandleFrame(const FrameHeader& h, std::string_view payload) {
    if (reading_stopped_) return false;
    if (continuation_stream_ != 0 &&
        (h.type != FrameType::kContinuation || h.stream_id != continuation_stream_)) {
      return ConnectionError(ErrorCode::kProtocolError, "expected CONTINUATION");
    }
    switch (h.type) {
      case FrameType::kData: return OnData(h, payload);
      case FrameType::kHeaders: return OnHeaders(h, payload);
      case FrameType::kContinuation: return OnContinuation(h, payload);
      case FrameType::kPriority:
        if (h.stream_id == 0) return ConnectionError(ErrorCode::kProtocolError, "PRIORITY on stream 0");
        return true;
      case FrameType::kRstStream: return OnRstStream(h, payload);
      case FrameType::kSettings: return OnSettings(h, payload);
      case FrameType::kPushPromise:
        return ConnectionError(ErrorCode::kProtocolError, "clients cannot push");
      case FrameType::kPing: return OnPing(h, payload);
      case FrameType::kGoAway:
        if (h.stream_id != 0) return ConnectionError(ErrorCode::kProtocolError, "GOAWAY on a stream");
        return true;  // the client finishes what it has and closes; we keep serving until then
      case FrameType::kWindowUpdate: return OnWindowUpdate(h, payload);
    }
    return true;  // unknown frame types are ignored (RFC 9113 §4.1)
  }

  // Strips padding (and the priority fields of HEADERS). False when malformed.
  static bool StripPadding(const FrameHeader& h, std::string_view* payload) {
    if (h.flags & flags::kPadded) {
      if (payload->empty()) return false;
      const size_t pad = static_cast<uint8_t>((*payload)[0]);
      payload->remove_prefix(1);
      if (pad > payload->size()) return false;
      payload->remove_suffix(pad);
    }
    return true;
  }

  bool OnData(const FrameHeader& h, std::string_view payload) {
    if (h.stream_id == 0) return ConnectionError(ErrorCode::kProtocolError, "DATA on stream 0");
    // Flow control counts the whole frame, padding included, whatever becomes of it. Every
    // WINDOW_UPDATE we send restores the window to its full size, so what the client may
    // still send is the window less what arrived since the last one.
    if (h.length > ConnectionRecvWindow() - conn_recv_unacked_) {
      return ConnectionError(ErrorCode::kFlowControlError, "DATA beyond the connection window");
    }
    conn_recv_unacked_ += h.length;
    if (conn_recv_unacked_ >= opts_.connection_window / 2) {
      std::lock_guard<std::mutex> lock(mu_);
      AppendWindowUpdate(&out_, 0, conn_recv_unacked_);
      conn_recv_unacked_ = 0;
      ScheduleFlushLocked();
    }
    if (!StripPadding(h, &payload)) {
      return ConnectionError(ErrorCode::kProtocolError, "bad DATA padding");
    }
    auto it = streams_.find(h.stream_id);
    if (it == streams_.end()) {
      if (h.stream_id > last_client_stream_) {
        return ConnectionError(ErrorCode::kProtocolError, "DATA on an idle stream");
      }
      return true;  // a stream we already closed: the client had not heard yet
    }
    CallPtr call = it->second;  // keeps it alive through the handler's callbacks
    if (call->input_closed_) {
      return StreamError(call, ErrorCode::kStreamClosed);
    }
    if (h.length > StreamRecvWindow() - call->recv_unacked_) {
      return StreamError(call, ErrorCode::kFlowControlError);
    }
    const bool end = (h.flags & flags::kEndStream) != 0;
    if (call->discard_input_) {
      call->input_closed_ = end;
      return true;
    }
    if (!end) {
      call->recv_unacked_ += h.length;
      if (call->recv_unacked_ >= opts_.stream_window / 2) {
        std::lock_guard<std::mutex> lock(mu_);
        AppendWindowUpdate(&out_, call->id_, call->recv_unacked_);
        call->recv_unacked_ = 0;
        ScheduleFlushLocked();
      }
    }
    DeliverData(call, payload);
    if (end && !call->input_closed_ && !call->discard_input_) HalfClose(call);
    else if (end) call->input_closed_ = true;
    return true;
  }

  // Splits the stream's bytes into gRPC messages and hands each to the call's method.
  void DeliverData(const CallPtr& call, std::string_view payload) {
    std::string_view data = payload;
    if (!call->in_buf_.empty()) {
      call->in_buf_.append(payload);
      data = call->in_buf_;
    }
    size_t pos = 0;
    while (data.size() - pos >= kGrpcPrefix && !call->discard_input_) {
      const auto* p = reinterpret_cast<const uint8_t*>(data.data() + pos);
      const uint32_t len = ReadU32(p + 1);
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

  void DeliverMessage(const CallPtr& call, std::string_view message) {
    if (call->handler_) {
      call->handler_->OnMessage(message);
      return;
    }
    if (call->unary_method_ == nullptr) return;  // already dispatched; extra messages dropped
    const UnaryMethod* method = call->unary_method_;
    call->unary_method_ = nullptr;
    CallStart start{call->path_, &call->metadata_, call->deadline_ns_};
    (*method)(call, message, start);
    ReleaseRequestHeaders(call.get());
  }

  // The receive windows we advertised (a stream's: before the client acknowledged our
  // SETTINGS it may still use the default).
  uint32_t ConnectionRecvWindow() const {
    return std::max(opts_.connection_window, kDefaultInitialWindow);
  }
  uint32_t StreamRecvWindow() const {
    return settings_acked_ ? opts_.stream_window
                           : std::max(opts_.stream_window, kDefaultInitialWindow);
  }

  // Loop thread: frees the request headers of a call whose method has started or that is
  // over, and returns their bytes to the connection's budget.
  void ReleaseRequestHeaders(Call* call) {
    header_bytes_held_ -= call->header_bytes_;
    call->header_bytes_ = 0;
    std::vector<HeaderField>().swap(call->metadata_);
    std::string().swap(call->path_);
  }

  void HalfClose(const CallPtr& call) {
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
  void RejectInput(const CallPtr& call, int code, std::string_view message) {
    call->unary_method_ = nullptr;
    ReleaseRequestHeaders(call.get());
    std::string().swap(call->in_buf_);
    if (call->handler_) {
      call->handler_->OnCancel();
      call->handler_.reset();
    }
    call->discard_input_ = true;
    // The reaper sends RST_STREAM(NO_ERROR) if the client is still sending.
    call->Finish(code, message);
  }

  bool StreamError(const CallPtr& call, ErrorCode code) {
    std::shared_ptr<CallHandler> handler;
    std::function<void()> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      AppendRstStream(&out_, call->id_, code);
      call->cancelled_ = true;
      call->trailers_sent_ = true;
      ReleaseOutputLocked(call.get());
      dropped = TakeOnWritableLocked(call.get());
      handler = std::move(call->handler_);
      streams_.erase(call->id_);
      ScheduleFlushLocked();
    }
    call->unary_method_ = nullptr;
    ReleaseRequestHeaders(call.get());
    if (handler) handler->OnCancel();
    return true;
  }

  bool OnHeaders(const FrameHeader& h, std::string_view payload) {
    if (h.stream_id == 0 || (h.stream_id & 1) == 0) {
      return ConnectionError(ErrorCode::kProtocolError, "HEADERS on an even stream");
    }
    if (!StripPadding(h, &payload)) {
      return ConnectionError(ErrorCode::kProtocolError, "bad HEADERS padding");
    }
    if (h.flags & flags::kPriority) {
      if (payload.size() < 5) return ConnectionError(ErrorCode::kFrameSizeError, "short HEADERS");
      payload.remove_prefix(5);
    }
    header_block_.assign(payload);
    header_stream_ = h.stream_id;
    header_end_stream_ = (h.flags & flags::kEndStream) != 0;
    if (h.flags & flags::kEndHeaders) return HeaderBlockDone();
    continuation_stream_ = h.stream_id;
    return true;
  }

  bool OnContinuation(const FrameHeader& h, std::string_view payload) {
    if (continuation_stream_ == 0) {
      return ConnectionError(ErrorCode::kProtocolError, "unexpected CONTINUATION");
    }
    if (header_block_.size() + payload.size() > 4 * size_t{opts_.max_header_list_bytes} + 65536) {
      return ConnectionError(ErrorCode::kEnhanceYourCalm, "header block too large");
    }
    header_block_.append(payload);
    if (h.flags & flags::kEndHeaders) {
      continuation_stream_ = 0;
      return HeaderBlockDone();
    }
    return true;
  }

  bool HeaderBlockDone() {
    std::vector<HeaderField> fields;
    const absl::Status decoded =
        decoder_.Decode(header_block_, opts_.max_header_list_bytes, &fields);
    if (!decoded.ok() && decoded.code() != absl::StatusCode::kResourceExhausted) {
      return ConnectionError(ErrorCode::kCompressionError,
                             std::string_view(decoded.message().data(), decoded.message().size()));
    }
    const uint32_t id = header_stream_;
    auto existing = streams_.find(id);
    if (existing != streams_.end()) {
      // Trailers from the client: gRPC sends none, but END_STREAM on them half-closes.
      CallPtr call = existing->second;
      if (!header_end_stream_) return StreamError(call, ErrorCode::kProtocolError);
      if (decoded.ok() && !MalformedReason(fields, HeaderBlockKind::kTrailers).empty()) {
        return StreamError(call, ErrorCode::kProtocolError);
      }
      if (!call->input_closed_) HalfClose(call);
      return true;
    }
    if (id <= last_client_stream_) {
      return ConnectionError(ErrorCode::kProtocolError, "HEADERS on a closed stream");
    }
    last_client_stream_ = id;
    // A truncated list (over max_header_list_bytes) cannot be judged; its call is refused
    // below without any field reaching a method.
    if (decoded.ok() && !MalformedReason(fields, HeaderBlockKind::kRequest).empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      AppendRstStream(&out_, id, ErrorCode::kProtocolError);
      ScheduleFlushLocked();
      return true;
    }

    // What the call keeps of its headers until its method starts: the path and metadata.
    size_t header_bytes = 0;
    for (const HeaderField& f : fields) {
      if (f.name.empty() || f.name[0] != ':' || f.name == ":path") {
        header_bytes += f.name.size() + f.value.size() + kHpackEntryOverhead;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (goaway_sent_ || streams_.size() >= opts_.max_concurrent_streams ||
          header_bytes_held_ + header_bytes > opts_.max_connection_header_bytes ||
          blocked_bytes_ >= opts_.max_blocked_output_bytes) {
        AppendRstStream(&out_, id, ErrorCode::kRefusedStream);
        ScheduleFlushLocked();
        return true;
      }
    }
    auto call = std::shared_ptr<Call>(new Call(shared_from_this(), server_->live_calls_, id));
    {
      std::lock_guard<std::mutex> lock(mu_);
      call->send_window_ = peer_initial_window_;
    }
    streams_.emplace(id, call);
    stream_opened_since_check_ = true;
    call->input_closed_ = header_end_stream_;
    call->header_bytes_ = header_bytes;
    header_bytes_held_ += header_bytes;

    // Decided before the fields move into metadata_ (a short string's bytes move with it).
    bool post = false, grpc_content = false;
    for (HeaderField& f : fields) {
      if (!f.name.empty() && f.name[0] == ':') {
        if (f.name == ":path") call->path_ = std::move(f.value);
        else if (f.name == ":method") post = f.value == "POST";
        continue;
      }
      if (f.name == "content-type") {
        // "application/grpc" or "application/grpc+<codec>" (gRPC's spec), not "-web".
        grpc_content = f.value == "application/grpc" || f.value.rfind("application/grpc+", 0) == 0;
      } else if (f.name == "grpc-timeout") {
        const int64_t ns = ParseGrpcTimeout(f.value);
        if (ns >= 0) call->deadline_ns_ = MonotonicNowNs() + std::min(ns, INT64_MAX / 4);
      }
    }
    for (HeaderField& f : fields) {
      if (!f.name.empty() && f.name[0] != ':') call->metadata_.push_back(std::move(f));
    }
    if (!decoded.ok()) {
      ReleaseRequestHeaders(call.get());
      call->Finish(kCodeResourceExhausted,
                   absl::StrCat("header list larger than ", opts_.max_header_list_bytes, " bytes"));
      return true;
    }
    if (!post || call->path_.empty() || call->path_[0] != '/' || !grpc_content) {
      // Not a gRPC request: HTTP 415 as gRPC servers answer, and the stream ends.
      std::lock_guard<std::mutex> lock(mu_);
      std::string block;
      HpackEncoder::Encode(":status", "415", &block);
      AppendHeaderBlockLocked(id, block, true);
      call->headers_sent_ = call->finished_ = call->trailers_sent_ = true;
      done_ids_.push_back(id);
      ScheduleFlushLocked();
      return true;
    }
    // Unary calls keep their headers until their message arrives; the rest start now.

    if (auto u = server_->unary_.find(call->path_); u != server_->unary_.end()) {
      call->unary_method_ = &u->second;
      if (call->input_closed_) HalfClose(call);  // HEADERS with END_STREAM: no message
      return true;
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
      return true;
    }
    CallStart start{call->path_, &call->metadata_, call->deadline_ns_};
    call->handler_ = (*factory)(call, start);
    ReleaseRequestHeaders(call.get());
    if (call->input_closed_) HalfClose(call);
    return true;
  }

  bool OnRstStream(const FrameHeader& h, std::string_view payload) {
    if (h.stream_id == 0) return ConnectionError(ErrorCode::kProtocolError, "RST_STREAM on stream 0");
    if (payload.size() != 4) return ConnectionError(ErrorCode::kFrameSizeError, "RST_STREAM size");
    auto it = streams_.find(h.stream_id);
    // A stream we do not have: closed already, or idle. RFC 9113 makes the idle case a
    // connection error, but gRPC core clients reset streams whose HEADERS they never sent
    // when a call is cancelled right after it starts (grpc/grpc#19655); like grpc-go's
    // server (etcd's), ignore it rather than fail every other call on the connection.
    if (it == streams_.end()) return true;
    CallPtr call = std::move(it->second);
    streams_.erase(it);
    std::shared_ptr<CallHandler> handler;
    std::function<void()> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      call->cancelled_ = true;
      call->trailers_sent_ = true;
      // Nothing more goes out on this stream: free what waited for its window now, not
      // when a WINDOW_UPDATE that may never come pumps the blocked queue.
      ReleaseOutputLocked(call.get());
      dropped = TakeOnWritableLocked(call.get());
      handler = std::move(call->handler_);
    }
    call->unary_method_ = nullptr;
    ReleaseRequestHeaders(call.get());
    if (handler) handler->OnCancel();
    return true;
  }

  bool OnSettings(const FrameHeader& h, std::string_view payload) {
    if (h.stream_id != 0) return ConnectionError(ErrorCode::kProtocolError, "SETTINGS on a stream");
    if (h.flags & flags::kAck) {
      if (!payload.empty()) return ConnectionError(ErrorCode::kFrameSizeError, "SETTINGS ACK with payload");
      settings_acked_ = true;
      return true;
    }
    if (payload.size() % 6 != 0) return ConnectionError(ErrorCode::kFrameSizeError, "SETTINGS size");
    handshake_done_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < payload.size(); i += 6) {
      const auto* p = reinterpret_cast<const uint8_t*>(payload.data() + i);
      const uint16_t id = static_cast<uint16_t>((p[0] << 8) | p[1]);
      const uint32_t value = ReadU32(p + 2);
      switch (static_cast<Setting>(id)) {
        case Setting::kInitialWindowSize: {
          if (value > kMaxWindow) {
            return ConnectionErrorLocked(ErrorCode::kFlowControlError, "window");
          }
          const int64_t delta = int64_t{value} - peer_initial_window_;
          peer_initial_window_ = value;
          for (auto& [sid, call] : streams_) call->send_window_ += delta;
          break;
        }
        case Setting::kMaxFrameSize:
          if (value < kDefaultMaxFrameSize || value > kMaxAllowedFrameSize) {
            return ConnectionErrorLocked(ErrorCode::kProtocolError, "frame size");
          }
          peer_max_frame_ = value;
          break;
        case Setting::kEnablePush:
          if (value > 1) {
            return ConnectionErrorLocked(ErrorCode::kProtocolError, "ENABLE_PUSH");
          }
          break;
        case Setting::kHeaderTableSize:
          // Our encoder never adds entries, but a smaller limit than the table it may use
          // must still be acknowledged with a size update (RFC 7541 §4.2).
          if (value < encoder_table_max_) {
            encoder_table_max_ = value;
            table_update_pending_ = true;
          }
          break;
        default:
          break;  // the rest do not concern a server
      }
    }
    AppendSettingsAck(&out_);
    PumpBlockedLocked();
    ScheduleFlushLocked();
    return true;
  }

  bool OnPing(const FrameHeader& h, std::string_view payload) {
    if (h.stream_id != 0) return ConnectionError(ErrorCode::kProtocolError, "PING on a stream");
    if (payload.size() != 8) return ConnectionError(ErrorCode::kFrameSizeError, "PING size");
    if (h.flags & flags::kAck) return true;
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now_ns = MonotonicNowNs();
    const bool early =
        last_ping_ns_ >= 0 && now_ns - last_ping_ns_ < opts_.ping_interval_min_ms * 1'000'000;
    if (stream_output_since_ping_) {
      ping_strikes_ = 0;
    } else if (early && ++ping_strikes_ > opts_.ping_strikes_max) {
      return ConnectionErrorLocked(ErrorCode::kEnhanceYourCalm, "too_many_pings");
    }
    stream_output_since_ping_ = false;
    last_ping_ns_ = now_ns;
    AppendPing(&out_, true, reinterpret_cast<const uint8_t*>(payload.data()));
    ScheduleFlushLocked();
    return true;
  }

  bool OnWindowUpdate(const FrameHeader& h, std::string_view payload) {
    if (payload.size() != 4) return ConnectionError(ErrorCode::kFrameSizeError, "WINDOW_UPDATE size");
    const uint32_t inc = ReadU32(reinterpret_cast<const uint8_t*>(payload.data())) & 0x7fffffffu;
    if (h.stream_id == 0) {
      if (inc == 0) return ConnectionError(ErrorCode::kProtocolError, "zero WINDOW_UPDATE");
      std::lock_guard<std::mutex> lock(mu_);
      conn_send_window_ += inc;
      if (conn_send_window_ > kMaxWindow) {
        return ConnectionErrorLocked(ErrorCode::kFlowControlError, "window overflow");
      }
      PumpBlockedLocked();
      ScheduleFlushLocked();
      return true;
    }
    auto it = streams_.find(h.stream_id);
    if (it == streams_.end()) return true;  // closed streams may still get updates
    CallPtr call = it->second;
    if (inc == 0) return StreamError(call, ErrorCode::kProtocolError);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (call->send_window_ + inc <= kMaxWindow) {
        call->send_window_ += inc;
        PumpLocked(call.get());
        ScheduleFlushLocked();
        return true;
      }
    }
    // Overflow: a stream error, and the handler is told like for any other reset.
    return StreamError(call, ErrorCode::kFlowControlError);
  }

  // ---- output helpers, mu_ held ----

  // Takes the call's writable callback away, for a call that is over. The caller destroys it
  // after releasing mu_: it may hold the call, and its destruction may run user code.
  static std::function<void()> TakeOnWritableLocked(Call* call) {
    std::function<void()> fn = std::move(call->on_writable_);
    call->on_writable_ = nullptr;
    return fn;
  }

  // Drops what a call that is over still had to send, and takes it off the blocked queue.
  void ReleaseOutputLocked(Call* call) {
    if (call->queued_blocked_) {
      const size_t i = call->blocked_index_;
      // The index is stale while PumpBlockedLocked works on a detached queue.
      if (i < blocked_calls_.size() && blocked_calls_[i].get() == call) {
        if (i + 1 != blocked_calls_.size()) {
          blocked_calls_[i] = std::move(blocked_calls_.back());
          blocked_calls_[i]->blocked_index_ = i;
        }
        blocked_calls_.pop_back();
        call->queued_blocked_ = false;
      }
    }
    blocked_bytes_ -= call->blocked_.size() - call->blocked_pos_;
    std::string().swap(call->blocked_);
    call->blocked_pos_ = 0;
    std::string().swap(call->trailers_);
  }

  // Sends as much of the call's blocked bytes as the windows allow, then its trailers.
  void PumpLocked(Call* call) {
    while (call->blocked_pos_ < call->blocked_.size()) {
      const int64_t allowed =
          std::min<int64_t>({conn_send_window_, call->send_window_, int64_t{peer_max_frame_}});
      if (allowed <= 0) break;
      const size_t n =
          std::min<size_t>(static_cast<size_t>(allowed), call->blocked_.size() - call->blocked_pos_);
      AppendFrameHeader(&out_, static_cast<uint32_t>(n), FrameType::kData, 0, call->id_);
      out_.append(call->blocked_, call->blocked_pos_, n);
      call->blocked_pos_ += n;
      blocked_bytes_ -= n;
      conn_send_window_ -= static_cast<int64_t>(n);
      call->send_window_ -= static_cast<int64_t>(n);
      stream_output_since_ping_ = true;
    }
    const size_t left = call->blocked_.size() - call->blocked_pos_;
    if (left == 0) {
      call->blocked_.clear();
      call->blocked_pos_ = 0;
    } else if (!call->queued_blocked_) {
      call->queued_blocked_ = true;
      call->blocked_index_ = blocked_calls_.size();
      blocked_calls_.push_back(call->shared_from_this());
    }
    if (call->on_writable_) {
      if (left >= call->low_watermark_) {
        call->above_watermark_ = true;
      } else if (call->above_watermark_) {
        call->above_watermark_ = false;
        writable_notify_.push_back(call->shared_from_this());
      }
    }
    if (left == 0 && call->finished_ && !call->trailers_sent_) {
      AppendHeaderBlockLocked(call->id_, call->trailers_, true);
      call->trailers_.clear();
      call->trailers_sent_ = true;
      done_ids_.push_back(call->id_);
    }
  }

  void PumpBlockedLocked() {
    // PumpLocked re-queues each call that is still blocked, so pump from a detached list
    // (appending to the vector being iterated would invalidate the iteration).
    std::vector<CallPtr> blocked;
    blocked.swap(blocked_calls_);
    for (const CallPtr& call : blocked) {
      call->queued_blocked_ = false;
      if (call->trailers_sent_) continue;
      PumpLocked(call.get());
    }
  }

  // One header block as HEADERS (+ CONTINUATION), led by a dynamic table size update when
  // the client lowered SETTINGS_HEADER_TABLE_SIZE since our last block.
  void AppendHeaderBlockLocked(uint32_t stream_id, std::string_view block, bool end_stream) {
    stream_output_since_ping_ = true;
    if (!table_update_pending_) {
      AppendHeaders(&out_, stream_id, block, end_stream, peer_max_frame_);
      return;
    }
    table_update_pending_ = false;
    std::string led;
    HpackEncoder::EncodeTableSizeUpdate(encoder_table_max_, &led);
    led.append(block);
    AppendHeaders(&out_, stream_id, led, end_stream, peer_max_frame_);
  }

  void ScheduleFlushLocked() {
    if (flush_scheduled_ || closed_) return;
    flush_scheduled_ = true;
    if (defer_flushes && current_loop == nullptr) {
      deferred_flushes.push_back(shared_from_this());
    } else {
      loop_->ScheduleFlush(shared_from_this());
    }
  }

  // Appends out_ to what is being sent.
  void TakeOutLocked() {
    if (sending_pos_ == sending_.size()) {
      sending_.clear();
      sending_pos_ = 0;
      sending_.swap(out_);
    } else {
      sending_.append(out_);
      out_.clear();
    }
  }

  // Writes sending_ until done or the socket is full (then the loop waits for EPOLLOUT).
  // False on a socket error: the caller closes the connection on the loop thread.
  bool WriteOutLocked() {
    while (sending_pos_ < sending_.size()) {
      const ssize_t n = send(fd_, sending_.data() + sending_pos_, sending_.size() - sending_pos_,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sending_pos_ += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        want_write_ = true;
        ResumeReadingIfDrainedLocked();
        UpdateEventsLocked();
        return true;
      }
      return false;
    }
    sending_.clear();
    sending_pos_ = 0;
    want_write_ = false;
    ResumeReadingIfDrainedLocked();
    UpdateEventsLocked();
    return true;
  }

  size_t PendingOutputLocked() const { return out_.size() + (sending_.size() - sending_pos_); }

  bool ReadPaused() {
    std::lock_guard<std::mutex> lock(mu_);
    return read_paused_;
  }

  // Loop thread, after handling input: stops reading while the output queue is full. Every
  // byte queued has a flush scheduled, and the write that drains it resumes reading.
  bool PauseReadingIfOutputFull() {
    std::lock_guard<std::mutex> lock(mu_);
    if (PendingOutputLocked() < opts_.max_pending_output_bytes) return false;
    read_paused_ = true;
    UpdateEventsLocked();
    return true;
  }

  void ResumeReadingIfDrainedLocked() {
    if (read_paused_ && PendingOutputLocked() <= opts_.max_pending_output_bytes / 2) {
      read_paused_ = false;
    }
  }

  // Tells epoll what the connection waits for now; any thread.
  void UpdateEventsLocked() {
    if (closed_) return;
    const uint32_t events = (read_paused_ ? 0u : static_cast<uint32_t>(EPOLLIN | EPOLLRDHUP)) |
                            (want_write_ ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    if (events == events_) return;
    events_ = events;
    loop_->SetEvents(this, fd_, events);
  }

  friend class Call;
  friend class IoLoop;

  Server* const server_;
  IoLoop* const loop_;
  const int fd_;
  const ServerOptions& opts_;

  // Input: the loop thread's.
  std::string partial_;  // the start of a frame the last read cut off
  bool preface_seen_ = false;
  bool reading_stopped_ = false;
  HpackDecoder decoder_;
  std::string header_block_;
  uint32_t header_stream_ = 0;
  bool header_end_stream_ = false;
  uint32_t continuation_stream_ = 0;
  uint32_t last_client_stream_ = 0;
  uint32_t conn_recv_unacked_ = 0;
  bool handshake_done_ = false;   // the preface and the client's first SETTINGS arrived
  bool settings_acked_ = false;   // the client acknowledged our SETTINGS
  const int64_t opened_ns_;
  int64_t idle_since_ns_;         // since when no stream was open; -1 while one is
  bool stream_opened_since_check_ = false;
  size_t header_bytes_held_ = 0;  // Call::header_bytes_ of the open streams
  // Loop thread, but also read under mu_ by Flush (same thread).
  absl::flat_hash_map<uint32_t, CallPtr> streams_;
  std::atomic<bool> reap_pending_{false};

  // Output: guarded by mu_.
  std::mutex mu_;
  std::string out_;      // queued frames
  std::string sending_;  // being written to the socket, from sending_pos_
  size_t sending_pos_ = 0;
  bool want_write_ = false;  // sending_ waits for the socket (EPOLLOUT)
  bool read_paused_ = false;  // input waits for the output queue to drain
  uint32_t events_ = EPOLLIN | EPOLLRDHUP;  // what epoll reports, as last set
  // Too-many-pings enforcement (ServerOptions::ping_interval_min_ms).
  int64_t last_ping_ns_ = -1;
  int ping_strikes_ = 0;
  bool stream_output_since_ping_ = false;  // HEADERS or DATA went out since the last PING
  bool flush_scheduled_ = false;
  bool closed_ = false;
  bool goaway_sent_ = false;
  bool close_after_flush_ = false;
  int64_t conn_send_window_ = kDefaultInitialWindow;
  int64_t peer_initial_window_ = kDefaultInitialWindow;
  uint32_t peer_max_frame_ = kDefaultMaxFrameSize;
  uint32_t encoder_table_max_ = 4096;  // the peer's SETTINGS_HEADER_TABLE_SIZE, once lowered
  bool table_update_pending_ = false;
  std::vector<CallPtr> blocked_calls_;
  size_t blocked_bytes_ = 0;  // of blocked_calls_, not yet sent
  std::vector<uint32_t> done_ids_;
  std::vector<CallPtr> writable_notify_;
};

// ---- Call ----------------------------------------------------------------------------------

Call::~Call() { live_->fetch_sub(1, std::memory_order_relaxed); }
bool Call::Write(std::string_view message) { return conn_->WriteMessage(this, message, false); }
void Call::Reply(std::string_view message) { conn_->WriteMessage(this, message, true); }
void Call::Finish(int code, std::string_view message) { conn_->FinishCall(this, code, message); }
size_t Call::blocked_bytes() const { return conn_->BlockedBytes(this); }
void Call::SetOnWritable(size_t low_watermark, std::function<void()> fn) {
  conn_->SetOnWritable(this, low_watermark, std::move(fn));
}
bool Call::cancelled() const { return conn_->Cancelled(this); }

// ---- IoLoop bodies -------------------------------------------------------------------------

void IoLoop::Adopt(int fd) {
  Post([this, fd] {
    auto conn = std::make_shared<Connection>(server_, this, fd);
    if (stopped_) return;  // the destructor closes fd
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = conn.get();
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return;
    conns_.emplace(conn.get(), conn);
    conn->Open();
  });
}

void IoLoop::SetEvents(Connection* conn, int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = conn;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
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

void IoLoop::GoAwayAll() {
  Post([this] {
    for (auto& [raw, conn] : conns_) conn->GoAway();
  });
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
        } else {
          AcceptOn(fd);
        }
        continue;
      }
      auto* conn = static_cast<Connection*>(events[i].data.ptr);
      if (conn->closed()) continue;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        conn->OnReadable(events[i].events);
        if (!conn->closed() && conn->reap_pending()) {
          std::lock_guard<std::mutex> lock(conn->mu_);
          conn->ScheduleFlushLocked();
        }
      }
      if (!conn->closed() && (events[i].events & EPOLLOUT)) conn->OnWritable();
    }
    if (const int64_t now = MonotonicNowNs(); now >= next_tick_ns_) OnTimer(now);
    FlushAll();
    // Reap closed connections.
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->second->closed()) {
        epoll_ctl(epfd_, EPOLL_CTL_DEL, it->second->fd(), nullptr);
        conns_.erase(it++);
      } else {
        ++it;
      }
    }
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

// ---- Server --------------------------------------------------------------------------------

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

absl::Status ListenOn(const std::string& address, std::vector<int>* fds, std::vector<int>* ports) {
  if (address.rfind("unix:", 0) == 0) {
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
  std::string host, port;
  if (!address.empty() && address[0] == '[') {
    const size_t close_bracket = address.find(']');
    if (close_bracket == std::string::npos || close_bracket + 1 >= address.size() ||
        address[close_bracket + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
    }
    host = address.substr(1, close_bracket - 1);
    port = address.substr(close_bracket + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad listen address ", address));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
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
  int bound = 0;
  int bound_port = 0;
  std::string last_error;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    sockaddr_storage addr{};
    std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    // Port 0 on a name with several addresses: every socket takes the first one's port.
    if (bound_port != 0) {
      if (ai->ai_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(static_cast<uint16_t>(bound_port));
      } else if (ai->ai_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(static_cast<uint16_t>(bound_port));
      }
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), ai->ai_addrlen) != 0 ||
        listen(fd, 4096) != 0) {
      last_error = std::strerror(errno);
      close(fd);
      continue;
    }
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    const int p = local.ss_family == AF_INET
                      ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                      : ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    if (bound_port == 0) bound_port = p;
    fds->push_back(fd);
    ++bound;
  }
  freeaddrinfo(res);
  if (bound == 0) {
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
