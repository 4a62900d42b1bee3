#include "bench/h2_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "gateway/h2/frame.h"

namespace geoetcd::bench {
namespace {

using h2::ErrorCode;
using h2::FrameHeader;
using h2::FrameType;
namespace flags = h2::flags;

// Receive windows we advertise: large, so the server is never throttled by us.
constexpr uint32_t kStreamWindow = 1u << 20;
constexpr uint32_t kConnectionWindow = 16u << 20;
// The largest frame we accept (the default; we do not advertise more).
constexpr uint32_t kMaxInboundFrame = h2::kDefaultMaxFrameSize;
constexpr size_t kMaxHeaderListBytes = 64 * 1024;
constexpr size_t kReadBufferBytes = 256 * 1024;
constexpr int kMaxEvents = 256;
constexpr int64_t kInitialBackoffNs = 1'000'000'000;
constexpr int64_t kMaxBackoffNs = 120'000'000'000;
constexpr int64_t kMaxSweepIntervalNs = 50'000'000;
constexpr int64_t kMinSweepIntervalNs = 1'000'000;
// A sent prefix of the output buffer larger than this is dropped when more is appended.
constexpr size_t kCompactOutputBytes = 1 << 20;
constexpr std::string_view kUserAgent = "geoetcd-bench-h2/0.1";

bool SetNonBlockingNoDelay(int fd) {
  const int fl = fcntl(fd, F_GETFL, 0);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return false;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return true;
}

// Resolves "host:port" ("[v6]:port" too) to its first TCP address.
bool Resolve(const std::string& endpoint, sockaddr_storage* addr, socklen_t* len) {
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = endpoint.substr(0, colon);
  const std::string port = endpoint.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  std::memcpy(addr, res->ai_addr, res->ai_addrlen);
  *len = static_cast<socklen_t>(res->ai_addrlen);
  freeaddrinfo(res);
  return true;
}

// Starts a non-blocking connect. Returns the fd (or -1) and sets *connected when it already
// completed.
int StartConnect(const sockaddr_storage& addr, socklen_t len, bool* connected) {
  *connected = false;
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (!SetNonBlockingNoDelay(fd)) {
    close(fd);
    return -1;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
    *connected = true;
    return fd;
  }
  if (errno == EINPROGRESS) return fd;
  close(fd);
  return -1;
}

int SocketError(int fd) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

uint32_t ReadU32(const uint8_t* p) { return h2::ReadU32(p); }

}  // namespace

// ---- helpers -------------------------------------------------------------------------------

std::string PercentDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int hi = HexDigit(text[i + 1]);
      const int lo = HexDigit(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::string GrpcTimeoutValue(int64_t ns) {
  struct Unit {
    char name;
    int64_t ns;
  };
  static constexpr Unit kUnits[] = {{'n', 1},
                                    {'u', 1'000},
                                    {'m', 1'000'000},
                                    {'S', 1'000'000'000},
                                    {'M', 60'000'000'000},
                                    {'H', 3'600'000'000'000}};
  constexpr int64_t kMaxValue = 99'999'999;
  for (const Unit& u : kUnits) {
    const int64_t v = (ns + u.ns - 1) / u.ns;
    if (v <= kMaxValue) return absl::StrCat(v, std::string(1, u.name));
  }
  return absl::StrCat(kMaxValue, "H");
}

int GrpcCodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 200:
      return kGrpcOk;
    case 400:
      return kGrpcInternal;
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504:
      return kGrpcUnavailable;
    default:
      return kGrpcUnknown;
  }
}

int GrpcCodeForHttp2Error(uint32_t error_code, bool deadline_passed) {
  switch (static_cast<ErrorCode>(error_code)) {
    case ErrorCode::kCancel:
      return deadline_passed ? kGrpcDeadlineExceeded : kGrpcCancelled;
    case ErrorCode::kEnhanceYourCalm:
      return kGrpcResourceExhausted;
    case ErrorCode::kInadequateSecurity:
      return 7;  // PERMISSION_DENIED
    case ErrorCode::kRefusedStream:
      return kGrpcUnavailable;
    default:
      return kGrpcInternal;  // NO_ERROR included: a reset should never carry it
  }
}

// ---- H2CallList ----------------------------------------------------------------------------

void H2CallList::PushBack(H2Call* c) {
  c->prev_ = tail_;
  c->next_ = nullptr;
  if (tail_ != nullptr) {
    tail_->next_ = c;
  } else {
    head_ = c;
  }
  tail_ = c;
}

void H2CallList::Remove(H2Call* c) {
  if (c->prev_ != nullptr) {
    c->prev_->next_ = c->next_;
  } else {
    head_ = c->next_;
  }
  if (c->next_ != nullptr) {
    c->next_->prev_ = c->prev_;
  } else {
    tail_ = c->prev_;
  }
  c->prev_ = c->next_ = nullptr;
}

H2Call* H2CallList::PopFront() {
  H2Call* c = head_;
  if (c != nullptr) Remove(c);
  return c;
}

void H2CallList::MoveTo(H2CallList* to) {
  CHECK(to->empty());
  to->head_ = head_;
  to->tail_ = tail_;
  head_ = tail_ = nullptr;
}

// ---- H2Call --------------------------------------------------------------------------------

void H2Call::SetRequest(int method, const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  request_.resize(5 + size);
  uint8_t* p = reinterpret_cast<uint8_t*>(request_.data());
  p[0] = 0;
  p[1] = static_cast<uint8_t>(size >> 24);
  p[2] = static_cast<uint8_t>(size >> 16);
  p[3] = static_cast<uint8_t>(size >> 8);
  p[4] = static_cast<uint8_t>(size);
  message.SerializeWithCachedSizesToArray(p + 5);
  method_ = method;
}

void H2Call::SetRequest(int method, std::string_view message) {
  const size_t size = message.size();
  request_.resize(5);
  request_[0] = 0;
  request_[1] = static_cast<char>(size >> 24);
  request_[2] = static_cast<char>(size >> 16);
  request_[3] = static_cast<char>(size >> 8);
  request_[4] = static_cast<char>(size);
  request_.append(message);
  method_ = method;
}

// ---- H2Connection --------------------------------------------------------------------------

// One TCP connection of a channel and the HTTP/2 state on it.
class H2Connection {
 public:
  H2Connection(H2Loop* loop, H2Channel* channel, int fd, bool connected)
      : loop_(loop), channel_(channel), fd_(fd) {
    ++channel_->stats_.connections;
    epoll_event ev{};
    ev.events = EPOLLIN | (connected ? 0u : static_cast<uint32_t>(EPOLLOUT));
    ev.data.ptr = this;
    want_write_ = !connected;
    CHECK(epoll_ctl(loop_->epoll_fd_, EPOLL_CTL_ADD, fd_, &ev) == 0);
    if (connected) {
      SendPreface();
    } else {
      state_ = State::kConnecting;
      connect_deadline_ns_ = NowNs() + channel_->options_->connect_timeout_ns;
    }
  }

  ~H2Connection() {
    if (fd_ >= 0) close(fd_);
  }

  bool closed() const { return state_ == State::kClosed; }
  // May take new calls.
  bool accepting() const {
    return state_ == State::kConnecting || state_ == State::kHandshake ||
           state_ == State::kReady;
  }

  void Submit(H2Call* call) {
    call->conn_ = this;
    if (pending_.empty() && CanStartStream()) {
      StartStream(call);
    } else {
      call->where_ = H2Call::Where::kPending;
      pending_.PushBack(call);
    }
  }

  void OnEvents(uint32_t events) {
    if (state_ == State::kClosed) return;
    if (state_ == State::kConnecting) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      const int err = SocketError(fd_);
      if (err != 0) {
        ConnectFailed(absl::StrCat("connect: ", std::strerror(err)));
        return;
      }
      SendPreface();
      return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable();
    if (state_ != State::kClosed && (events & EPOLLOUT)) Flush();
  }

  // One send() of what the loop iteration produced; the rest waits for EPOLLOUT.
  void Flush() {
    if (state_ == State::kClosed || state_ == State::kConnecting) return;
    const size_t left = out_.size() - out_sent_;
    if (left > 0) {
      const ssize_t n = send(fd_, out_.data() + out_sent_, left, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        Lost(absl::StrCat("send: ", std::strerror(errno)));
        return;
      }
      if (n > 0) out_sent_ += static_cast<size_t>(n);
    }
    if (out_sent_ == out_.size()) {
      out_.clear();
      out_sent_ = 0;
    }
    SetWantWrite(out_sent_ < out_.size());
  }

  // Fails calls past their deadline; gives up a connect that took too long.
  void Sweep(int64_t now_ns, std::vector<H2Call*>* expired) {
    if (state_ == State::kClosed) return;
    if ((state_ == State::kConnecting || state_ == State::kHandshake) &&
        now_ns >= connect_deadline_ns_) {
      ConnectFailed("connect timed out");
      return;
    }
    expired->clear();
    for (const auto& [id, call] : streams_) {
      if (call->deadline_ns_ <= now_ns) expired->push_back(call);
    }
    for (H2Call* call : *expired) {
      call->status_message_ = "Deadline Exceeded";
      FinishStream(call, kGrpcDeadlineExceeded, ErrorCode::kCancel);
    }
    for (H2Call* c = pending_.front(); c != nullptr;) {
      H2Call* next = H2CallList::next(c);
      if (c->deadline_ns_ <= now_ns) {
        pending_.Remove(c);
        loop_->Complete(c, kGrpcDeadlineExceeded, "Deadline Exceeded");
      }
      c = next;
    }
  }

  // The loop is going away: a polite GOAWAY, best effort.
  void Goodbye() {
    if (state_ != State::kReady && state_ != State::kDraining) return;
    h2::AppendGoAway(&out_, 0, ErrorCode::kNoError, "");
    send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  int fd() const { return fd_; }
  bool dirty = false;

 private:
  enum class State { kConnecting, kHandshake, kReady, kDraining, kClosed };

  void SendPreface() {
    state_ = State::kHandshake;
    connect_deadline_ns_ = NowNs() + channel_->options_->connect_timeout_ns;
    out_.append(h2::kClientPreface);
    h2::AppendSettings(&out_, {{h2::Setting::kEnablePush, 0},
                               {h2::Setting::kInitialWindowSize, kStreamWindow}});
    h2::AppendWindowUpdate(&out_, 0, kConnectionWindow - h2::kDefaultInitialWindow);
    loop_->MarkDirty(this);
    StartPending();
  }

  bool CanStartStream() const {
    return (state_ == State::kHandshake || state_ == State::kReady) &&
           active_ < peer_max_streams_ && next_stream_id_ <= channel_->options_->last_stream_id;
  }

  void StartPending() {
    while (!pending_.empty() && CanStartStream()) StartStream(pending_.PopFront());
  }

  void StartStream(H2Call* call) {
    const uint32_t id = next_stream_id_;
    next_stream_id_ += 2;
    call->where_ = H2Call::Where::kActive;
    call->stream_id_ = id;
    call->sent_ = 0;
    call->send_window_ = peer_initial_window_;
    call->recv_unacked_ = 0;
    call->got_headers_ = false;
    call->blocked_ = false;
    call->response_.clear();
    streams_.emplace(id, call);
    ++active_;
    ++channel_->stats_.streams;
    channel_->stats_.max_active_streams = std::max(channel_->stats_.max_active_streams, active_);
    h2::AppendHeaders(&out_, id, channel_->header_block(call->method_), false, peer_max_frame_);
    SendData(call);
    loop_->MarkDirty(this);
    if (next_stream_id_ > channel_->options_->last_stream_id) BeginDrain();
  }

  // Sends as much of the call's request as both windows allow, in frames of at most the
  // peer's MAX_FRAME_SIZE; the rest waits in blocked_ for WINDOW_UPDATE or SETTINGS.
  void SendData(H2Call* call) {
    size_t left = call->request_.size() - call->sent_;
    while (left > 0) {
      const int64_t window = std::min(conn_send_window_, call->send_window_);
      if (window <= 0) {
        ++channel_->stats_.window_waits;
        if (!call->blocked_) {
          call->blocked_ = true;
          blocked_.PushBack(call);
        }
        return;
      }
      const size_t n = std::min<size_t>({left, static_cast<size_t>(window), peer_max_frame_});
      const bool last = n == left;
      if (out_sent_ > kCompactOutputBytes) {
        out_.erase(0, out_sent_);
        out_sent_ = 0;
      }
      h2::AppendFrameHeader(&out_, static_cast<uint32_t>(n), FrameType::kData,
                            last ? flags::kEndStream : 0, call->stream_id_);
      out_.append(call->request_.data() + call->sent_, n);
      call->sent_ += n;
      left -= n;
      conn_send_window_ -= static_cast<int64_t>(n);
      call->send_window_ -= static_cast<int64_t>(n);
    }
    if (call->blocked_) {
      call->blocked_ = false;
      blocked_.Remove(call);
    }
  }

  void Unblock() {
    for (H2Call* c = blocked_.front(); c != nullptr && conn_send_window_ > 0;) {
      H2Call* next = H2CallList::next(c);
      if (c->send_window_ > 0) SendData(c);
      c = next;
    }
    loop_->MarkDirty(this);
  }

  // Ends an active stream: RST_STREAM(`reset`) when given or when our request was cut
  // short, then the call completes with `code` (status_message_ already set).
  void FinishStream(H2Call* call, int code, std::optional<ErrorCode> reset) {
    streams_.erase(call->stream_id_);
    --active_;
    if (call->blocked_) {
      call->blocked_ = false;
      blocked_.Remove(call);
    }
    if (!reset && call->sent_ < call->request_.size()) reset = ErrorCode::kNoError;
    if (reset && state_ != State::kClosed) {
      h2::AppendRstStream(&out_, call->stream_id_, *reset);
      loop_->MarkDirty(this);
    }
    loop_->Complete(call, code);
    if (state_ == State::kDraining && active_ == 0) {
      Close();
      return;
    }
    StartPending();
  }

  // No new streams here any more; queued calls go to the channel's next connection.
  void BeginDrain() {
    if (state_ == State::kDraining || state_ == State::kClosed) return;
    state_ = State::kDraining;
    channel_->Detach(this);
    MovePendingToChannel();
    if (active_ == 0) Close();
  }

  void MovePendingToChannel() {
    H2CallList moved;
    pending_.MoveTo(&moved);
    while (H2Call* c = moved.PopFront()) {
      c->where_ = H2Call::Where::kIdle;
      c->conn_ = nullptr;
      channel_->Route(c);
    }
  }

  // Closes the socket and fails whatever is left with UNAVAILABLE.
  void Lost(std::string_view why) {
    if (state_ == State::kClosed) return;
    for (const auto& [id, call] : streams_) {
      call->blocked_ = false;
      loop_->Complete(call, kGrpcUnavailable, why);
    }
    streams_.clear();
    blocked_ = H2CallList();
    active_ = 0;
    while (H2Call* c = pending_.PopFront()) loop_->Complete(c, kGrpcUnavailable, why);
    Close();
  }

  void ConnectFailed(std::string_view why) {
    channel_->OnConnectFailed(this);
    Lost(why);
  }

  // A protocol violation by the server: GOAWAY with `code`, then the connection is lost.
  void ConnectionError(ErrorCode code, std::string_view why) {
    h2::AppendGoAway(&out_, 0, code, why);
    send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL | MSG_DONTWAIT);
    Lost(std::string("HTTP/2 error from server: ").append(why));
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    channel_->Detach(this);
    epoll_ctl(loop_->epoll_fd_, EPOLL_CTL_DEL, fd_, nullptr);
    loop_->reap_ = true;
  }

  void SetWantWrite(bool want) {
    if (want == want_write_ || state_ == State::kClosed) return;
    want_write_ = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.ptr = this;
    epoll_ctl(loop_->epoll_fd_, EPOLL_CTL_MOD, fd_, &ev);
  }

  // One read() into the loop's buffer, behind the partial frame the last one left.
  void OnReadable() {
    uint8_t* buf = loop_->read_buf_.data();
    const size_t have = partial_.size();
    std::memcpy(buf, partial_.data(), have);
    const ssize_t n = read(fd_, buf + have, loop_->read_buf_.size() - have);
    if (n == 0) {
      Lost("connection closed by the server");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      Lost(absl::StrCat("read: ", std::strerror(errno)));
      return;
    }
    const uint8_t* p = buf;
    const uint8_t* const end = buf + have + n;
    while (end - p >= static_cast<ptrdiff_t>(h2::kFrameHeaderBytes)) {
      const FrameHeader h = h2::ParseFrameHeader(p);
      if (h.length > kMaxInboundFrame) {
        ConnectionError(ErrorCode::kFrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE");
        return;
      }
      if (end - p < static_cast<ptrdiff_t>(h2::kFrameHeaderBytes + h.length)) break;
      OnFrame(h, p + h2::kFrameHeaderBytes);
      if (state_ == State::kClosed) return;
      p += h2::kFrameHeaderBytes + h.length;
    }
    partial_.assign(reinterpret_cast<const char*>(p), end - p);
  }

  H2Call* Find(uint32_t stream_id) const {
    auto it = streams_.find(stream_id);
    return it == streams_.end() ? nullptr : it->second;
  }

  void OnFrame(const FrameHeader& h, const uint8_t* payload) {
    if (expect_continuation_ &&
        (h.type != FrameType::kContinuation || h.stream_id != header_stream_)) {
      ConnectionError(ErrorCode::kProtocolError, "expected CONTINUATION");
      return;
    }
    if (!got_settings_ && h.type != FrameType::kSettings) {
      ConnectionError(ErrorCode::kProtocolError, "server preface is not SETTINGS");
      return;
    }
    switch (h.type) {
      case FrameType::kData:
        OnData(h, payload);
        return;
      case FrameType::kHeaders:
        OnHeaders(h, payload);
        return;
      case FrameType::kContinuation:
        if (!expect_continuation_) {
          ConnectionError(ErrorCode::kProtocolError, "unexpected CONTINUATION");
          return;
        }
        header_block_.append(reinterpret_cast<const char*>(payload), h.length);
        if (h.flags & flags::kEndHeaders) {
          expect_continuation_ = false;
          OnHeaderBlock(header_stream_, header_block_, header_end_stream_);
        }
        return;
      case FrameType::kRstStream:
        OnRstStream(h, payload);
        return;
      case FrameType::kSettings:
        OnSettings(h, payload);
        return;
      case FrameType::kPing:
        if (h.length != 8 || h.stream_id != 0) {
          ConnectionError(ErrorCode::kFrameSizeError, "bad PING");
          return;
        }
        if ((h.flags & flags::kAck) == 0) {
          h2::AppendPing(&out_, /*ack=*/true, payload);
          ++channel_->stats_.pings_answered;
          loop_->MarkDirty(this);
        }
        return;
      case FrameType::kGoAway:
        OnGoAway(h, payload);
        return;
      case FrameType::kWindowUpdate:
        OnWindowUpdate(h, payload);
        return;
      case FrameType::kPushPromise:
        ConnectionError(ErrorCode::kProtocolError, "PUSH_PROMISE with push disabled");
        return;
      default:
        return;  // PRIORITY and unknown types are ignored
    }
  }

  // Strips padding (and the priority fields of HEADERS); false when malformed.
  static bool Unpad(const FrameHeader& h, const uint8_t* payload, bool priority,
                    std::string_view* out) {
    size_t begin = 0;
    size_t end = h.length;
    if (h.flags & flags::kPadded) {
      if (h.length < 1) return false;
      const size_t pad = payload[0];
      begin = 1;
      if (pad > end - begin) return false;
      end -= pad;
    }
    if (priority && (h.flags & flags::kPriority)) {
      if (end - begin < 5) return false;
      begin += 5;
    }
    *out = std::string_view(reinterpret_cast<const char*>(payload) + begin, end - begin);
    return true;
  }

  void OnData(const FrameHeader& h, const uint8_t* payload) {
    if (h.stream_id == 0) {
      ConnectionError(ErrorCode::kProtocolError, "DATA on stream 0");
      return;
    }
    std::string_view data;
    if (!Unpad(h, payload, false, &data)) {
      ConnectionError(ErrorCode::kProtocolError, "bad DATA padding");
      return;
    }
    // Flow control counts the whole payload, padding included, on known streams or not.
    conn_recv_unacked_ += h.length;
    if (conn_recv_unacked_ >= kConnectionWindow / 2) {
      h2::AppendWindowUpdate(&out_, 0, conn_recv_unacked_);
      conn_recv_unacked_ = 0;
      loop_->MarkDirty(this);
    }
    H2Call* call = Find(h.stream_id);
    if (call == nullptr) return;
    if (!call->got_headers_) {
      call->status_message_ = "DATA before HEADERS";
      FinishStream(call, kGrpcInternal, ErrorCode::kProtocolError);
      return;
    }
    call->response_.append(data);
    if (h.flags & flags::kEndStream) {
      call->status_message_ = "stream ended without trailers";
      FinishStream(call, kGrpcUnknown, std::nullopt);
      return;
    }
    call->recv_unacked_ += h.length;
    if (call->recv_unacked_ >= kStreamWindow / 2) {
      h2::AppendWindowUpdate(&out_, call->stream_id_, call->recv_unacked_);
      call->recv_unacked_ = 0;
      loop_->MarkDirty(this);
    }
  }

  void OnHeaders(const FrameHeader& h, const uint8_t* payload) {
    if (h.stream_id == 0) {
      ConnectionError(ErrorCode::kProtocolError, "HEADERS on stream 0");
      return;
    }
    std::string_view fragment;
    if (!Unpad(h, payload, true, &fragment)) {
      ConnectionError(ErrorCode::kProtocolError, "bad HEADERS padding");
      return;
    }
    const bool end_stream = (h.flags & flags::kEndStream) != 0;
    if (h.flags & flags::kEndHeaders) {
      OnHeaderBlock(h.stream_id, fragment, end_stream);
      return;
    }
    expect_continuation_ = true;
    header_stream_ = h.stream_id;
    header_end_stream_ = end_stream;
    header_block_.assign(fragment);
  }

  // A complete header block: the response's headers, its trailers, or both at once
  // (Trailers-Only). Every block is decoded, even for a forgotten stream, to keep the
  // HPACK dynamic table in step with the server's.
  void OnHeaderBlock(uint32_t stream_id, std::string_view block, bool end_stream) {
    std::vector<h2::HeaderField>& fields = loop_->fields_;
    fields.clear();
    const absl::Status decoded = decoder_.Decode(block, kMaxHeaderListBytes, &fields);
    if (!decoded.ok() && decoded.code() != absl::StatusCode::kResourceExhausted) {
      ConnectionError(ErrorCode::kCompressionError,
                      std::string_view(decoded.message().data(), decoded.message().size()));
      return;
    }
    H2Call* call = Find(stream_id);
    if (call == nullptr) return;
    if (!decoded.ok()) {
      call->status_message_ = "response header list too large";
      FinishStream(call, kGrpcResourceExhausted, ErrorCode::kCancel);
      return;
    }
    int http_status = 0;
    const std::string* grpc_status = nullptr;
    const std::string* grpc_message = nullptr;
    for (const h2::HeaderField& f : fields) {
      if (f.name == ":status") {
        if (!absl::SimpleAtoi(f.value, &http_status)) http_status = -1;
      } else if (f.name == "grpc-status") {
        grpc_status = &f.value;
      } else if (f.name == "grpc-message") {
        grpc_message = &f.value;
      }
    }
    const bool first = !call->got_headers_;
    call->got_headers_ = true;
    if (first && http_status != 200 && http_status != 0 && grpc_status == nullptr) {
      // gRPC prefers grpc-status; without it the HTTP status decides.
      call->status_message_ = absl::StrCat("Received http2 header with status: ", http_status);
      std::optional<ErrorCode> reset;
      if (!end_stream) reset = ErrorCode::kCancel;  // the server is still sending
      FinishStream(call, GrpcCodeForHttpStatus(http_status), reset);
      return;
    }
    if (!end_stream) {
      if (!first) {
        call->status_message_ = "trailers without END_STREAM";
        FinishStream(call, kGrpcInternal, ErrorCode::kProtocolError);
      }
      return;
    }
    int code = kGrpcUnknown;
    call->status_message_.clear();
    if (grpc_status == nullptr) {
      call->status_message_ = "No status received";
    } else if (!absl::SimpleAtoi(*grpc_status, &code) || code < 0 || code > 16) {
      code = kGrpcUnknown;
    }
    if (grpc_message != nullptr) call->status_message_ = PercentDecode(*grpc_message);
    if (code == kGrpcOk) code = Unframe(call);
    FinishStream(call, code, std::nullopt);
  }

  // Finds the response message in the call's gRPC-framed DATA; a status code.
  static int Unframe(H2Call* call) {
    call->message_offset_ = 0;
    call->message_size_ = 0;
    const std::string& r = call->response_;
    if (r.empty()) return kGrpcOk;
    if (r.size() < 5) {
      call->status_message_ = "truncated message prefix";
      return kGrpcInternal;
    }
    const uint8_t* p = reinterpret_cast<const uint8_t*>(r.data());
    if (p[0] != 0) {
      call->status_message_ = "compressed message without grpc-encoding";
      return kGrpcInternal;
    }
    const uint32_t size = ReadU32(p + 1);
    if (size > r.size() - 5) {
      call->status_message_ = "truncated message";
      return kGrpcInternal;
    }
    call->message_offset_ = 5;
    call->message_size_ = size;
    return kGrpcOk;
  }

  void OnRstStream(const FrameHeader& h, const uint8_t* payload) {
    if (h.length != 4) {
      ConnectionError(ErrorCode::kFrameSizeError, "bad RST_STREAM");
      return;
    }
    H2Call* call = Find(h.stream_id);
    if (call == nullptr) return;
    const uint32_t error = ReadU32(payload);
    call->status_message_ = absl::StrCat("stream reset by the server with HTTP/2 error ", error);
    call->sent_ = call->request_.size();  // the stream is closed: no reset back
    FinishStream(call, GrpcCodeForHttp2Error(error, NowNs() >= call->deadline_ns_),
                 std::nullopt);
  }

  void OnSettings(const FrameHeader& h, const uint8_t* payload) {
    if (h.stream_id != 0) {
      ConnectionError(ErrorCode::kProtocolError, "SETTINGS on a stream");
      return;
    }
    if (h.flags & flags::kAck) {
      if (h.length != 0) ConnectionError(ErrorCode::kFrameSizeError, "SETTINGS ACK with payload");
      return;
    }
    if (h.length % 6 != 0) {
      ConnectionError(ErrorCode::kFrameSizeError, "SETTINGS length");
      return;
    }
    ++channel_->stats_.settings;
    if (!got_settings_) {
      got_settings_ = true;
      peer_max_streams_ = UINT32_MAX;  // unlimited unless the server says otherwise
    }
    for (uint32_t off = 0; off < h.length; off += 6) {
      const uint16_t id = static_cast<uint16_t>((payload[off] << 8) | payload[off + 1]);
      const uint32_t value = ReadU32(payload + off + 2);
      switch (static_cast<h2::Setting>(id)) {
        case h2::Setting::kMaxConcurrentStreams:
          peer_max_streams_ = value;
          break;
        case h2::Setting::kInitialWindowSize: {
          if (value > h2::kMaxWindow) {
            ConnectionError(ErrorCode::kFlowControlError, "INITIAL_WINDOW_SIZE too large");
            return;
          }
          const int64_t delta = static_cast<int64_t>(value) - peer_initial_window_;
          peer_initial_window_ = value;
          for (const auto& [sid, call] : streams_) {
            call->send_window_ += delta;
            if (call->send_window_ > h2::kMaxWindow) {
              ConnectionError(ErrorCode::kFlowControlError, "stream window overflow");
              return;
            }
          }
          break;
        }
        case h2::Setting::kMaxFrameSize:
          if (value < h2::kDefaultMaxFrameSize || value > h2::kMaxAllowedFrameSize) {
            ConnectionError(ErrorCode::kProtocolError, "bad MAX_FRAME_SIZE");
            return;
          }
          peer_max_frame_ = value;
          break;
        default:
          break;  // our encoder never uses the dynamic table: HEADER_TABLE_SIZE is moot
      }
    }
    h2::AppendSettingsAck(&out_);
    loop_->MarkDirty(this);
    if (state_ == State::kHandshake) {
      state_ = State::kReady;
      channel_->OnReady();
    }
    Unblock();
    StartPending();
  }

  void OnGoAway(const FrameHeader& h, const uint8_t* payload) {
    if (h.length < 8 || h.stream_id != 0) {
      ConnectionError(ErrorCode::kFrameSizeError, "bad GOAWAY");
      return;
    }
    ++channel_->stats_.goaways;
    const uint32_t last_id = ReadU32(payload) & 0x7fffffffu;
    std::vector<H2Call*>& refused = loop_->expired_;
    refused.clear();
    for (const auto& [id, call] : streams_) {
      if (id > last_id) refused.push_back(call);
    }
    std::sort(refused.begin(), refused.end(),
              [](const H2Call* a, const H2Call* b) { return a->stream_id_ < b->stream_id_; });
    // Draining first: queued calls move to the channel's next connection, and finishing
    // the refused streams starts nothing more here.
    if (state_ != State::kDraining) {
      state_ = State::kDraining;
      channel_->Detach(this);
    }
    MovePendingToChannel();
    for (H2Call* call : refused) {
      call->status_message_ = "GOAWAY: the server did not process the stream";
      call->sent_ = call->request_.size();  // the server ignores the stream: no reset
      FinishStream(call, kGrpcUnavailable, std::nullopt);
    }
    if (state_ != State::kClosed && active_ == 0) Close();
  }

  void OnWindowUpdate(const FrameHeader& h, const uint8_t* payload) {
    if (h.length != 4) {
      ConnectionError(ErrorCode::kFrameSizeError, "bad WINDOW_UPDATE");
      return;
    }
    const uint32_t increment = ReadU32(payload) & 0x7fffffffu;
    if (h.stream_id == 0) {
      if (increment == 0) {
        ConnectionError(ErrorCode::kProtocolError, "WINDOW_UPDATE of 0");
        return;
      }
      conn_send_window_ += increment;
      if (conn_send_window_ > h2::kMaxWindow) {
        ConnectionError(ErrorCode::kFlowControlError, "connection window overflow");
        return;
      }
      Unblock();
      return;
    }
    H2Call* call = Find(h.stream_id);
    if (call == nullptr) return;
    if (increment == 0 || call->send_window_ + increment > h2::kMaxWindow) {
      call->status_message_ = "bad stream WINDOW_UPDATE";
      FinishStream(call, kGrpcInternal,
                   increment == 0 ? ErrorCode::kProtocolError : ErrorCode::kFlowControlError);
      return;
    }
    call->send_window_ += increment;
    if (call->blocked_ && conn_send_window_ > 0) {
      SendData(call);
      loop_->MarkDirty(this);
    }
  }

  H2Loop* const loop_;
  H2Channel* const channel_;
  const int fd_;
  State state_ = State::kHandshake;
  int64_t connect_deadline_ns_ = 0;
  bool want_write_ = false;

  std::string out_;
  size_t out_sent_ = 0;
  std::string partial_;  // an incomplete frame the last read ended in

  h2::HpackDecoder decoder_;
  bool expect_continuation_ = false;
  uint32_t header_stream_ = 0;
  bool header_end_stream_ = false;
  std::string header_block_;

  // The server's settings. Until its SETTINGS arrive, one stream at a time: enough for a
  // server that waits for a request before it speaks, and below any limit it may announce.
  bool got_settings_ = false;
  uint32_t peer_max_streams_ = 1;
  int64_t peer_initial_window_ = h2::kDefaultInitialWindow;
  uint32_t peer_max_frame_ = h2::kDefaultMaxFrameSize;
  int64_t conn_send_window_ = h2::kDefaultInitialWindow;
  uint32_t conn_recv_unacked_ = 0;

  uint32_t next_stream_id_ = 1;
  uint32_t active_ = 0;
  absl::flat_hash_map<uint32_t, H2Call*> streams_;
  H2CallList pending_;  // not started: stream limit, or the connection is not up yet
  H2CallList blocked_;  // started, DATA waiting for window
};

// ---- ConnectH2 -----------------------------------------------------------------------------

absl::StatusOr<std::vector<H2Socket>> ConnectH2(const BenchOptions& options, int count) {
  enum class Result { kPending, kConnected, kFailed };
  std::vector<H2Socket> sockets(count);
  std::vector<Result> results(count, Result::kFailed);
  std::map<std::string, std::pair<sockaddr_storage, socklen_t>> resolved;
  auto close_all = [&] {
    for (H2Socket& s : sockets) {
      if (s.fd >= 0) close(s.fd);
      s.fd = -1;
    }
  };
  for (int i = 0; i < count; ++i) {
    H2Socket& s = sockets[i];
    s.endpoint = options.endpoints[i % options.endpoints.size()];
    auto it = resolved.find(s.endpoint);
    if (it == resolved.end()) {
      std::pair<sockaddr_storage, socklen_t> a{};
      if (!Resolve(s.endpoint, &a.first, &a.second)) a.second = 0;
      it = resolved.emplace(s.endpoint, a).first;
    }
    if (it->second.second == 0) continue;
    s.addr = it->second.first;
    s.addr_len = it->second.second;
    bool connected = false;
    s.fd = StartConnect(s.addr, s.addr_len, &connected);
    if (s.fd >= 0) results[i] = connected ? Result::kConnected : Result::kPending;
  }
  const int64_t deadline = NowNs() + options.connect_timeout_ns;
  std::vector<pollfd> polls;
  std::vector<int> index;
  for (;;) {
    polls.clear();
    index.clear();
    for (int i = 0; i < count; ++i) {
      if (results[i] != Result::kPending) continue;
      polls.push_back({sockets[i].fd, POLLOUT, 0});
      index.push_back(i);
    }
    const int64_t left_ns = deadline - NowNs();
    if (polls.empty() || left_ns <= 0) break;
    const int n = poll(polls.data(), polls.size(), static_cast<int>((left_ns + 999'999) / 1'000'000));
    if (n < 0 && errno != EINTR) break;
    for (size_t k = 0; k < polls.size(); ++k) {
      if (polls[k].revents == 0) continue;
      const int i = index[k];
      results[i] = SocketError(sockets[i].fd) == 0 ? Result::kConnected : Result::kFailed;
    }
  }
  for (int i = 0; i < count; ++i) {
    if (results[i] == Result::kConnected) continue;
    const std::string& endpoint = sockets[i].endpoint;
    close_all();
    if (results[i] == Result::kFailed) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint, " (connection ",
                                                 i + 1, " of ", count,
                                                 " failed; is the server running?)"));
    }
    return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint, " within ",
                                               options.connect_timeout_ns / 1e9, "s"));
  }
  return sockets;
}

// ---- H2Channel -----------------------------------------------------------------------------

H2Channel::H2Channel(H2Loop* loop, const H2ChannelOptions* options, H2Socket socket)
    : loop_(loop), options_(options), socket_(std::move(socket)), backoff_ns_(kInitialBackoffNs) {
  for (const std::string& path : options_->paths) {
    std::string block;
    h2::HpackEncoder::Encode(":method", "POST", &block);
    h2::HpackEncoder::Encode(":scheme", "http", &block);
    h2::HpackEncoder::Encode(":path", path, &block);
    h2::HpackEncoder::Encode(":authority", socket_.endpoint, &block);
    h2::HpackEncoder::Encode("content-type", "application/grpc", &block);
    h2::HpackEncoder::Encode("te", "trailers", &block);
    h2::HpackEncoder::Encode("user-agent", kUserAgent, &block);
    if (options_->timeout_ns > 0) {
      h2::HpackEncoder::Encode("grpc-timeout", GrpcTimeoutValue(options_->timeout_ns), &block);
    }
    for (const auto& [k, v] : options_->metadata) h2::HpackEncoder::Encode(k, v, &block);
    header_blocks_.push_back(std::move(block));
  }
}

H2Channel::~H2Channel() = default;

void H2Channel::Start(H2Call* call) {
  CHECK(call->where_ == H2Call::Where::kIdle);
  call->deadline_ns_ = options_->timeout_ns > 0 ? NowNs() + options_->timeout_ns : INT64_MAX;
  Route(call);
}

void H2Channel::Route(H2Call* call) {
  if (current_ == nullptr) {
    if (NowNs() < retry_at_ns_) {
      loop_->Complete(call, kGrpcUnavailable, "reconnecting (backoff)");
      return;
    }
    bool connected = false;
    const int fd = StartConnect(socket_.addr, socket_.addr_len, &connected);
    if (fd < 0) {
      retry_at_ns_ = NowNs() + backoff_ns_;
      backoff_ns_ = std::min<int64_t>(backoff_ns_ * 8 / 5, kMaxBackoffNs);
      loop_->Complete(call, kGrpcUnavailable, absl::StrCat("connect: ", std::strerror(errno)));
      return;
    }
    current_ = loop_->AddConnection(this, fd, connected);
  }
  current_->Submit(call);
}

void H2Channel::Detach(H2Connection* conn) {
  if (current_ == conn) current_ = nullptr;
}

void H2Channel::OnConnectFailed(H2Connection* conn) {
  Detach(conn);
  retry_at_ns_ = NowNs() + backoff_ns_;
  backoff_ns_ = std::min<int64_t>(backoff_ns_ * 8 / 5, kMaxBackoffNs);
}

void H2Channel::OnReady() { backoff_ns_ = kInitialBackoffNs; }

// ---- H2Loop --------------------------------------------------------------------------------

H2Loop::H2Loop() : sweep_interval_ns_(kMaxSweepIntervalNs), read_buf_(kReadBufferBytes) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  CHECK(epoll_fd_ >= 0);
}

H2Loop::~H2Loop() {
  for (auto& c : conns_) c->Goodbye();
  conns_.clear();
  channels_.clear();
  close(epoll_fd_);
}

H2Channel* H2Loop::AddChannel(const H2ChannelOptions* options, H2Socket socket) {
  const int fd = socket.fd;
  socket.fd = -1;
  channels_.push_back(std::unique_ptr<H2Channel>(new H2Channel(this, options, std::move(socket))));
  H2Channel* channel = channels_.back().get();
  if (options->timeout_ns > 0) {
    sweep_interval_ns_ = std::min(
        sweep_interval_ns_,
        std::clamp<int64_t>(options->timeout_ns / 16, kMinSweepIntervalNs, kMaxSweepIntervalNs));
  }
  channel->current_ = AddConnection(channel, fd, /*connected=*/true);
  return channel;
}

H2Connection* H2Loop::AddConnection(H2Channel* channel, int fd, bool connected) {
  conns_.push_back(std::make_unique<H2Connection>(this, channel, fd, connected));
  return conns_.back().get();
}

void H2Loop::AddTimer(int64_t at_ns, H2Timer* timer) { timers_.push({at_ns, timer}); }

void H2Loop::Complete(H2Call* call, int code) {
  call->code_ = code;
  call->where_ = H2Call::Where::kDone;
  call->conn_ = nullptr;
  done_.PushBack(call);
}

void H2Loop::Complete(H2Call* call, int code, std::string_view message) {
  call->status_message_.assign(message);
  Complete(call, code);
}

void H2Loop::MarkDirty(H2Connection* conn) {
  if (conn->dirty) return;
  conn->dirty = true;
  dirty_.push_back(conn);
}

void H2Loop::DeliverCompletions() {
  // Only what is done now: calls that fail again at once wait for the next round, so a
  // channel in backoff cannot trap the loop here.
  H2CallList batch;
  done_.MoveTo(&batch);
  while (H2Call* call = batch.PopFront()) {
    call->where_ = H2Call::Where::kIdle;
    if (call->code_ != kGrpcOk) {
      call->message_offset_ = 0;
      call->message_size_ = 0;
    }
    call->OnDone(call->code_, call->status_message_);
  }
}

void H2Loop::FlushDirty() {
  // Flushing cannot dirty another connection, so the list does not grow underneath.
  for (H2Connection* c : dirty_) {
    c->dirty = false;
    c->Flush();
  }
  dirty_.clear();
}

void H2Loop::Sweep(int64_t now_ns) {
  // By index: failing a call never adds a connection, but stay safe if it ever does.
  for (size_t i = 0; i < conns_.size(); ++i) conns_[i]->Sweep(now_ns, &expired_);
}

void H2Loop::Reap() {
  if (!reap_) return;
  reap_ = false;
  conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                              [](const std::unique_ptr<H2Connection>& c) { return c->closed(); }),
               conns_.end());
}

int H2Loop::WaitMs(int64_t now_ns) const {
  if (!done_.empty() || stopped_) return 0;
  int64_t next = next_sweep_ns_;
  if (!timers_.empty()) next = std::min(next, timers_.top().at_ns);
  if (next <= now_ns) return 0;
  return static_cast<int>(std::min<int64_t>((next - now_ns + 999'999) / 1'000'000, 60'000));
}

void H2Loop::Run() {
  epoll_event events[kMaxEvents];
  int64_t now = NowNs();
  next_sweep_ns_ = now + sweep_interval_ns_;
  while (!stopped_) {
    DeliverCompletions();
    if (stopped_) break;
    FlushDirty();
    Reap();
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, WaitMs(NowNs()));
    for (int i = 0; i < n; ++i) {
      static_cast<H2Connection*>(events[i].data.ptr)->OnEvents(events[i].events);
    }
    now = NowNs();
    while (!timers_.empty() && timers_.top().at_ns <= now) {
      H2Timer* timer = timers_.top().timer;
      timers_.pop();
      timer->OnTimer();
    }
    if (now >= next_sweep_ns_) {
      Sweep(now);
      next_sweep_ns_ = now + sweep_interval_ns_;
    }
  }
  FlushDirty();
  Reap();
  stopped_ = false;  // Stop() ends one Run(); a later Run() (tests) runs again
}

}  // namespace geoetcd::bench
