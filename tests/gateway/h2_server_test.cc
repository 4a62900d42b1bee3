// End-to-end tests of geoetcd's HTTP/2 gRPC transport (gateway/h2/server.h). Two kinds:
//  - a real gRPC C++ client (GenericStub, raw bytes) calls methods the test registers, which
//    pins interoperability: framing at the frame-size bound, flow control with small client
//    windows, status and metadata encoding, streaming, cancellation, threads, shutdown;
//  - a raw TCP socket speaks HTTP/2 frame by frame (frame.h, hpack.h) to reach the protocol
//    errors and bounds no well-behaved client produces, each tested at the bound.
#include "gateway/h2/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/h2/frame.h"
#include "gateway/h2/hpack.h"
#include "gateway/h2/idle_reset_filter.h"
#include "gateway/h2/request_headers.h"
#include "gtest/gtest.h"

namespace geoetcd::h2 {
namespace {

using std::chrono::milliseconds;

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}
int64_t MonotonicMs() { return MonotonicNs() / 1'000'000; }

std::chrono::system_clock::time_point In(milliseconds d) {
  return std::chrono::system_clock::now() + d;
}

// `n` bytes that differ with position and seed, so a lost, duplicated or reordered piece of a
// large message shows.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + (i >> 8) * 7 + seed * 29) & 0xff);
  }
  return s;
}

// absl::SimpleAtoi on a std::string_view (this absl's string_view is its own type).
template <typename T>
bool ParseInt(std::string_view s, T* out) {
  return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), out);
}

// ---- server-side test methods ------------------------------------------------------------

// State shared between a test and the methods it registers (all under /t.T/).
class Service {
 public:
  ~Service() { Stop(); }

  // Runs `fn` on a thread of its own: answers that come from outside the I/O thread.
  void Spawn(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    threads_.emplace_back(std::move(fn));
  }
  // Sleeps `ms`, or less once Stop() has been called.
  void Sleep(int ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, milliseconds(ms), [&] { return stopping_; });
  }
  // Ends every sleep, joins every spawned thread and lets go of every held call.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    while (true) {
      std::vector<std::thread> threads;
      {
        std::lock_guard<std::mutex> lock(mu_);
        threads.swap(threads_);
      }
      if (threads.empty()) break;
      for (std::thread& t : threads) t.join();
    }
    std::lock_guard<std::mutex> lock(mu_);
    held_.clear();
  }

  // Runs `fn` under the lock and wakes every waiter.
  void Update(const std::function<void()>& fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      fn();
    }
    cv_.notify_all();
  }
  // Waits until `pred` (run under the lock) holds; false after `ms`.
  bool WaitFor(const std::function<bool()>& pred, int ms = 5000) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, milliseconds(ms), pred);
  }
  template <typename T>
  T Get(const T& field) {
    std::lock_guard<std::mutex> lock(mu_);
    return field;
  }

  // Fields written by the methods, read by tests under Update/WaitFor/Get.
  std::string meta_path;
  std::vector<HeaderField> meta;
  int64_t meta_deadline_ns = -1;
  int64_t meta_seen_ns = 0;
  std::vector<CallPtr> held_;  // /t.T/Park and /t.T/Hang keep their calls here
  int started = 0;             // calls of /t.T/Park, /t.T/Hang and /t.T/Slow that began
  int cancels = 0;             // OnCancel callbacks
  std::vector<std::weak_ptr<Call>> calls;               // every streaming call seen
  std::vector<std::weak_ptr<CallHandler>> handlers;     // and its handler
  size_t drain_blocked = 0;  // blocked_bytes() right after /t.T/Drain wrote its backlog
  int writable_fired = 0;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Echoes every message; finishes OK at half-close. Holds its call, as real handlers do.
class BidiHandler : public CallHandler {
 public:
  explicit BidiHandler(CallPtr call) : call_(std::move(call)) {}
  void OnMessage(std::string_view message) override { call_->Write(message); }
  void OnHalfClose() override { call_->Finish(0, ""); }
  void OnCancel() override {}

 private:
  const CallPtr call_;
};

// The first message is a count N: writes N messages "m<i>", then finishes OK.
class ManyHandler : public CallHandler {
 public:
  explicit ManyHandler(CallPtr call) : call_(std::move(call)) {}
  void OnMessage(std::string_view message) override {
    int n = 0;
    EXPECT_TRUE(ParseInt(message, &n));
    for (int i = 0; i < n; ++i) EXPECT_TRUE(call_->Write(absl::StrCat("m", i)));
    call_->Finish(0, "");
  }
  void OnHalfClose() override {}
  void OnCancel() override {}

 private:
  const CallPtr call_;
};

// Never answers; counts its cancellation.
class HangHandler : public CallHandler {
 public:
  explicit HangHandler(Service* svc) : svc_(svc) {}
  void OnMessage(std::string_view) override {}
  void OnHalfClose() override {}
  void OnCancel() override {
    svc_->Update([&] { ++svc_->cancels; });
  }

 private:
  Service* const svc_;
};

// Message "<count> <size> <low watermark>": arms SetOnWritable, writes `count` messages of
// `size` bytes (Pattern(size, i)) at once, then, when the backlog drains below the watermark,
// writes "done" and finishes. The callback holds the call, as a real producer would.
class DrainHandler : public CallHandler {
 public:
  DrainHandler(Service* svc, CallPtr call) : svc_(svc), call_(std::move(call)) {}
  void OnMessage(std::string_view message) override {
    size_t count = 0, size = 0, low = 0;
    const size_t a = message.find(' '), b = message.rfind(' ');
    ASSERT_TRUE(ParseInt(message.substr(0, a), &count));
    ASSERT_TRUE(ParseInt(message.substr(a + 1, b - a - 1), &size));
    ASSERT_TRUE(ParseInt(message.substr(b + 1), &low));
    CallPtr call = call_;
    Service* svc = svc_;
    call_->SetOnWritable(low, [svc, call] {
      svc->Update([&] { ++svc->writable_fired; });
      call->Write("done");
      call->Finish(0, "");
    });
    for (size_t i = 0; i < count; ++i) {
      ASSERT_TRUE(call_->Write(Pattern(size, static_cast<uint32_t>(i))));
    }
    const size_t blocked = call_->blocked_bytes();
    svc_->Update([&] { svc_->drain_blocked = blocked; });
  }
  void OnHalfClose() override {}
  void OnCancel() override {}

 private:
  Service* const svc_;
  const CallPtr call_;
};

void RegisterMethods(Server* server, Service* svc) {
  server->AddUnary("/t.T/Echo", [](const CallPtr& call, std::string_view request,
                                   const CallStart&) { call->Reply(request); });
  // Request "<code> <message>": finishes with that status.
  server->AddUnary("/t.T/Status", [](const CallPtr& call, std::string_view request,
                                     const CallStart&) {
    const size_t space = request.find(' ');
    int code = -1;
    EXPECT_TRUE(ParseInt(request.substr(0, space), &code));
    call->Finish(code, space == std::string_view::npos ? "" : request.substr(space + 1));
  });
  // Request: a decimal size N. Reply: Pattern(N, 7).
  server->AddUnary("/t.T/Big", [](const CallPtr& call, std::string_view request,
                                  const CallStart&) {
    size_t n = 0;
    EXPECT_TRUE(ParseInt(request, &n));
    call->Reply(Pattern(n, 7));
  });
  server->AddUnary("/t.T/Meta", [svc](const CallPtr& call, std::string_view,
                                      const CallStart& start) {
    svc->Update([&] {
      svc->meta_path = std::string(start.path);
      svc->meta = start.metadata();
      svc->meta_deadline_ns = start.deadline_ns;
      svc->meta_seen_ns = MonotonicNs();
    });
    call->Reply("");
  });
  // Keeps the call without answering.
  server->AddUnary("/t.T/Park", [svc](const CallPtr& call, std::string_view, const CallStart&) {
    svc->Update([&] {
      svc->held_.push_back(call);
      ++svc->started;
    });
  });
  // Answers from another thread after the method returned: "error..." -> NOT_FOUND with the
  // request as the message, anything else is echoed.
  server->AddUnary("/t.T/Later", [svc](const CallPtr& call, std::string_view request,
                                       const CallStart&) {
    svc->Spawn([call, request = std::string(request)] {
      std::this_thread::sleep_for(milliseconds(2));
      if (request.rfind("error", 0) == 0) {
        call->Finish(5, request);
      } else {
        call->Reply(request);
      }
    });
  });
  // Request: milliseconds to wait on another thread before replying "slow-done".
  server->AddUnary("/t.T/Slow", [svc](const CallPtr& call, std::string_view request,
                                      const CallStart&) {
    int ms = 0;
    EXPECT_TRUE(ParseInt(request, &ms));
    svc->Update([&] { ++svc->started; });
    svc->Spawn([svc, call, ms] {
      svc->Sleep(ms);
      call->Reply("slow-done");
    });
  });
  server->AddStreaming("/t.T/Bidi", [svc](const CallPtr& call, const CallStart&) {
    auto handler = std::make_shared<BidiHandler>(call);
    svc->Update([&] {
      svc->calls.push_back(call);
      svc->handlers.push_back(handler);
    });
    return handler;
  });
  server->AddStreaming("/t.T/Many", [](const CallPtr& call, const CallStart&) {
    return std::make_shared<ManyHandler>(call);
  });
  server->AddStreaming("/t.T/Hang", [svc](const CallPtr& call, const CallStart&) {
    svc->Update([&] {
      svc->held_.push_back(call);
      ++svc->started;
    });
    return std::make_shared<HangHandler>(svc);
  });
  server->AddStreaming("/t.T/Drain", [svc](const CallPtr& call, const CallStart&) {
    svc->Update([&] { svc->calls.push_back(call); });
    return std::make_shared<DrainHandler>(svc, call);
  });
}

// The fallback: writes the call's path as its first message, then echoes like Bidi.
std::shared_ptr<CallHandler> FallbackMethod(const CallPtr& call, const CallStart& start) {
  call->Write(start.path);
  return std::make_shared<BidiHandler>(call);
}

// ---- gRPC C++ client helpers -------------------------------------------------------------

grpc::ByteBuffer ToBuffer(std::string_view s) {
  grpc::Slice slice(s.data(), s.size());
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::string out;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A channel of its own (no subchannel sharing with other channels), no receive size limit.
std::shared_ptr<grpc::Channel> MakeChannel(int port,
                                           grpc::ChannelArguments args = grpc::ChannelArguments()) {
  args.SetMaxReceiveMessageSize(-1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("ipv4:127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// A client whose receive windows stay small: 16 KiB lookahead, no BDP probing.
std::shared_ptr<grpc::Channel> MakeSmallWindowChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16384);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  return MakeChannel(port, args);
}

// Blocking unary calls over the async generic API; one Client per thread.
class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel) : stub_(std::move(channel)) {}
  ~Client() {
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  // `ctx` may carry metadata and a deadline; without one the call gets a 30 s deadline.
  grpc::Status Unary(const std::string& method, std::string_view request, std::string* response,
                     grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (ctx == nullptr) {
      local.set_deadline(In(milliseconds(30'000)));
      ctx = &local;
    }
    grpc::ByteBuffer reply;
    grpc::Status status;
    auto rpc = stub_.PrepareUnaryCall(ctx, method, ToBuffer(request), &cq_);
    rpc->StartCall();
    rpc->Finish(&reply, &status, this);
    void* tag;
    bool ok;
    if (!cq_.Next(&tag, &ok)) return grpc::Status(grpc::StatusCode::INTERNAL, "cq shut down");
    if (response != nullptr) *response = FromBuffer(reply);
    return status;
  }

  grpc::GenericStub* stub() { return &stub_; }

 private:
  grpc::GenericStub stub_;
  grpc::CompletionQueue cq_;
};

// One streaming call driven step by step; each step waits for its completion.
class Stream {
 public:
  Stream(grpc::GenericStub* stub, const std::string& method,
         const std::function<void(grpc::ClientContext*)>& setup = nullptr) {
    ctx_.set_deadline(In(milliseconds(60'000)));
    if (setup) setup(&ctx_);
    rw_ = stub->PrepareCall(&ctx_, method, &cq_);
    rw_->StartCall(Tag(kStart));
    started_ = Wait(kStart);
  }
  ~Stream() {
    if (!finished_) {
      ctx_.TryCancel();
      Finish();
    }
    rw_.reset();
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  bool started() const { return started_; }
  bool Write(std::string_view message) {
    out_ = ToBuffer(message);
    rw_->Write(out_, Tag(kWrite));
    return Wait(kWrite);
  }
  bool WritesDone() {
    rw_->WritesDone(Tag(kWritesDone));
    return Wait(kWritesDone);
  }
  bool Read(std::string* message) {
    grpc::ByteBuffer in;
    rw_->Read(&in, Tag(kRead));
    if (!Wait(kRead)) return false;
    *message = FromBuffer(in);
    return true;
  }
  grpc::Status Finish() {
    rw_->Finish(&status_, Tag(kFinish));
    Wait(kFinish);
    finished_ = true;
    return status_;
  }
  grpc::ClientContext* context() { return &ctx_; }

 private:
  enum Op : intptr_t { kStart = 1, kWrite, kWritesDone, kRead, kFinish };
  static void* Tag(Op op) { return reinterpret_cast<void*>(op); }
  bool Wait(Op op) {
    void* tag = nullptr;
    bool ok = false;
    const auto r = cq_.AsyncNext(&tag, &ok, In(milliseconds(60'000)));
    if (r != grpc::CompletionQueue::GOT_EVENT) {
      ADD_FAILURE() << "stream operation " << op << " did not complete";
      return false;
    }
    EXPECT_EQ(tag, Tag(op));
    return ok;
  }

  grpc::ClientContext ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> rw_;
  grpc::ByteBuffer out_;
  grpc::Status status_;
  bool started_ = false;
  bool finished_ = false;
};

// ---- raw HTTP/2 client helpers -----------------------------------------------------------

struct RawFrame {
  FrameHeader header;
  std::string payload;
  // On the frame that ends a header block (END_HEADERS): the block, decoded as it arrived.
  // HPACK state is per connection, so blocks are decoded in wire order, not as read.
  std::vector<HeaderField> fields;
  bool fields_ok = true;
};

enum class ReadResult { kFrame, kTimeout, kClosed };

using Fields = std::vector<std::pair<std::string, std::string>>;

// A request header block as gRPC clients send it, plus `extra` fields. An empty
// content_type leaves the header out.
std::string RequestBlock(std::string_view path, const Fields& extra = {},
                         std::string_view content_type = "application/grpc",
                         std::string_view method = "POST") {
  std::string block;
  HpackEncoder::Encode(":method", method, &block);
  HpackEncoder::Encode(":scheme", "http", &block);
  HpackEncoder::Encode(":path", path, &block);
  HpackEncoder::Encode(":authority", "test", &block);
  if (!content_type.empty()) HpackEncoder::Encode("content-type", content_type, &block);
  HpackEncoder::Encode("te", "trailers", &block);
  for (const auto& [name, value] : extra) HpackEncoder::Encode(name, value, &block);
  return block;
}

// RFC 9113 §6.5.2 size of what RequestBlock encodes.
size_t RequestListBytes(std::string_view path, const Fields& extra = {}) {
  size_t n = (7 + 4) + (7 + 4) + (5 + path.size()) + (10 + 4) + (12 + 16) + (2 + 8) + 6 * 32;
  for (const auto& [name, value] : extra) n += name.size() + value.size() + 32;
  return n;
}

// A message with gRPC's 5-byte prefix.
std::string Framed(std::string_view message, uint8_t compressed = 0) {
  const uint32_t n = static_cast<uint32_t>(message.size());
  std::string out = {static_cast<char>(compressed), static_cast<char>(n >> 24),
                     static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                     static_cast<char>(n)};
  out.append(message);
  return out;
}

// Splits gRPC-framed bytes into messages; false when they do not end on a message boundary.
bool Unframe(std::string_view data, std::vector<std::string>* messages) {
  while (!data.empty()) {
    if (data.size() < 5) return false;
    const uint32_t n = ReadU32(reinterpret_cast<const uint8_t*>(data.data() + 1));
    if (data.size() - 5 < n) return false;
    messages->emplace_back(data.substr(5, n));
    data.remove_prefix(5 + n);
  }
  return true;
}

// What came back on one stream.
struct RawResponse {
  std::vector<HeaderField> headers;   // first header block
  std::vector<HeaderField> trailers;  // second header block, if any
  std::string data;                   // DATA payloads, concatenated
  bool ended = false;                 // END_STREAM seen
  bool reset = false;                 // RST_STREAM seen
  ErrorCode reset_code = ErrorCode::kNoError;
  bool incomplete = false;            // timeout or connection closed first

  // The value of `name` in the trailers, else in the headers; "<none>" if absent.
  std::string Get(std::string_view name) const {
    for (const auto* list : {&trailers, &headers}) {
      for (const HeaderField& f : *list) {
        if (f.name == name) return f.value;
      }
    }
    return "<none>";
  }
  std::vector<std::string> Messages() const {
    std::vector<std::string> out;
    EXPECT_TRUE(Unframe(data, &out));
    return out;
  }
};

class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawConnection() { close(fd_); }

  bool connected() const { return connected_; }
  int fd() const { return fd_; }

  bool Send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // The next frame, whatever it is.
  ReadResult Read(RawFrame* frame, int timeout_ms = 5000) {
    if (!pending_.empty()) {
      *frame = std::move(pending_.front());
      pending_.pop_front();
      return ReadResult::kFrame;
    }
    const int64_t until = MonotonicMs() + timeout_ms;
    while (true) {
      if (buf_.size() >= kFrameHeaderBytes) {
        const FrameHeader h = ParseFrameHeader(reinterpret_cast<const uint8_t*>(buf_.data()));
        if (buf_.size() >= kFrameHeaderBytes + h.length) {
          frame->header = h;
          frame->payload = buf_.substr(kFrameHeaderBytes, h.length);
          buf_.erase(0, kFrameHeaderBytes + h.length);
          DecodeHeaderBlock(frame);
          return ReadResult::kFrame;
        }
      }
      const int64_t left = until - MonotonicMs();
      if (left <= 0) return ReadResult::kTimeout;
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) return ReadResult::kTimeout;
      char tmp[64 * 1024];
      const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ReadResult::kClosed;  // EOF or reset
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  // The next frame that is not connection housekeeping (SETTINGS, WINDOW_UPDATE, PING ACK).
  ReadResult ReadStreamFrame(RawFrame* frame, int timeout_ms = 5000) {
    const int64_t until = MonotonicMs() + timeout_ms;
    while (true) {
      const ReadResult r = Read(frame, static_cast<int>(std::max<int64_t>(0, until - MonotonicMs())));
      if (r != ReadResult::kFrame) return r;
      const FrameType t = frame->header.type;
      if (t == FrameType::kSettings || t == FrameType::kWindowUpdate) continue;
      if (t == FrameType::kPing && (frame->header.flags & flags::kAck)) continue;
      return r;
    }
  }

  // Sends the preface and `settings`, reads the server's SETTINGS and acknowledges it.
  void Handshake(std::initializer_list<std::pair<Setting, uint32_t>> settings = {}) {
    std::string out(kClientPreface);
    AppendSettings(&out, settings);
    ASSERT_TRUE(Send(out));
    RawFrame f;
    ASSERT_EQ(Read(&f), ReadResult::kFrame);
    ASSERT_EQ(f.header.type, FrameType::kSettings);
    ASSERT_EQ(f.header.flags & flags::kAck, 0);
    server_settings_ = f.payload;
    std::string ack;
    AppendSettingsAck(&ack);
    ASSERT_TRUE(Send(ack));
  }

  // Reads until `stream` ends (END_STREAM or RST_STREAM). Frames of other streams are kept
  // for later reads.
  RawResponse ReadResponse(uint32_t stream, int timeout_ms = 5000) {
    RawResponse resp;
    std::deque<RawFrame> others;
    bool block_ends_stream = false;
    const int64_t until = MonotonicMs() + timeout_ms;
    while (true) {
      RawFrame f;
      const ReadResult r =
          ReadStreamFrame(&f, static_cast<int>(std::max<int64_t>(0, until - MonotonicMs())));
      if (r != ReadResult::kFrame) {
        resp.incomplete = true;
        break;
      }
      if (f.header.stream_id != stream) {
        others.push_back(std::move(f));
        continue;
      }
      if (f.header.type == FrameType::kRstStream) {
        resp.reset = true;
        resp.reset_code =
            static_cast<ErrorCode>(ReadU32(reinterpret_cast<const uint8_t*>(f.payload.data())));
        break;
      }
      if (f.header.type == FrameType::kData) {
        resp.data += f.payload;
        if (f.header.flags & flags::kEndStream) {
          resp.ended = true;
          break;
        }
        continue;
      }
      if (f.header.type == FrameType::kHeaders || f.header.type == FrameType::kContinuation) {
        if (f.header.type == FrameType::kHeaders) {
          block_ends_stream = (f.header.flags & flags::kEndStream) != 0;
        }
        if (!(f.header.flags & flags::kEndHeaders)) continue;
        std::vector<HeaderField>* list = resp.headers.empty() ? &resp.headers : &resp.trailers;
        EXPECT_TRUE(f.fields_ok);
        list->insert(list->end(), f.fields.begin(), f.fields.end());
        if (block_ends_stream) {
          resp.ended = true;
          break;
        }
      }
    }
    for (auto it = others.rbegin(); it != others.rend(); ++it) pending_.push_front(std::move(*it));
    return resp;
  }

  // Reads until a GOAWAY; returns its error code, or -1 when none came.
  int64_t ReadGoAway(uint32_t* last_stream = nullptr, int timeout_ms = 5000) {
    const int64_t until = MonotonicMs() + timeout_ms;
    RawFrame f;
    while (Read(&f, static_cast<int>(std::max<int64_t>(0, until - MonotonicMs()))) ==
           ReadResult::kFrame) {
      if (f.header.type != FrameType::kGoAway) continue;
      EXPECT_GE(f.payload.size(), 8u);
      const auto* p = reinterpret_cast<const uint8_t*>(f.payload.data());
      if (last_stream != nullptr) *last_stream = ReadU32(p) & 0x7fffffffu;
      return ReadU32(p + 4);
    }
    return -1;
  }

  // True when the server closes the connection within `timeout_ms` (frames are skipped).
  bool WaitClosed(int timeout_ms = 5000) {
    const int64_t until = MonotonicMs() + timeout_ms;
    RawFrame f;
    while (true) {
      const ReadResult r = Read(&f, static_cast<int>(std::max<int64_t>(0, until - MonotonicMs())));
      if (r == ReadResult::kClosed) return true;
      if (r == ReadResult::kTimeout) return false;
    }
  }

  // PING round trip: proves the connection is alive and everything before it was handled.
  bool PingPong(uint8_t seed = 1) {
    uint8_t opaque[8];
    for (int i = 0; i < 8; ++i) opaque[i] = static_cast<uint8_t>(seed + i);
    std::string out;
    AppendPing(&out, false, opaque);
    if (!Send(out)) return false;
    RawFrame f;
    while (Read(&f) == ReadResult::kFrame) {
      if (f.header.type == FrameType::kPing && (f.header.flags & flags::kAck)) {
        return f.payload == std::string(reinterpret_cast<char*>(opaque), 8);
      }
      if (f.header.type != FrameType::kSettings && f.header.type != FrameType::kWindowUpdate) {
        pending_.push_back(std::move(f));
      }
    }
    return false;
  }

  // HEADERS for a request on `stream`, then (when `message` is set) DATA with END_STREAM.
  bool SendRequest(uint32_t stream, std::string_view path, const std::string* message,
                   bool end_stream_on_headers = false) {
    std::string out;
    AppendHeaders(&out, stream, RequestBlock(path), end_stream_on_headers, kDefaultMaxFrameSize);
    if (message != nullptr) AppendData(&out, stream, Framed(*message), true, kDefaultMaxFrameSize);
    return Send(out);
  }

  const std::string& server_settings() const { return server_settings_; }

 private:
  // Server frames carry neither padding nor priority fields.
  void DecodeHeaderBlock(RawFrame* frame) {
    const FrameType t = frame->header.type;
    if (t != FrameType::kHeaders && t != FrameType::kContinuation) return;
    if (t == FrameType::kHeaders) block_.clear();
    block_ += frame->payload;
    if (!(frame->header.flags & flags::kEndHeaders)) return;
    frame->fields_ok = decoder_.Decode(block_, 1 << 20, &frame->fields).ok();
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
  std::deque<RawFrame> pending_;
  HpackDecoder decoder_{4096};
  std::string block_;  // the header block being read
  std::string server_settings_;
};

// The value of setting `id` in a SETTINGS payload, or -1.
int64_t SettingValue(std::string_view payload, Setting id) {
  for (size_t i = 0; i + 6 <= payload.size(); i += 6) {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data() + i);
    if (((p[0] << 8) | p[1]) == static_cast<int>(id)) return ReadU32(p + 2);
  }
  return -1;
}

// ---- fixture -----------------------------------------------------------------------------

class H2ServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    raw_.reset();
    svc_.Stop();
    if (server_ != nullptr) server_->Shutdown(0);
    server_.reset();
  }

  void StartServer(ServerOptions options = ServerOptions(), bool fallback = false) {
    server_ = std::make_unique<Server>(options);
    RegisterMethods(server_.get(), &svc_);
    if (fallback) server_->SetFallback(FallbackMethod);
    const absl::Status s = server_->Start({"127.0.0.1:0"});
    ASSERT_TRUE(s.ok()) << s;
    ASSERT_EQ(server_->bound_ports().size(), 1u);
    port_ = server_->bound_ports()[0];
    ASSERT_GT(port_, 0);
  }

  // A server with the test methods and one raw connection past the preface and SETTINGS.
  RawConnection& StartRawSession() {
    StartServer();
    raw_ = std::make_unique<RawConnection>(port_);
    raw_->Handshake();
    return *raw_;
  }

  // Every streaming call the methods saw, and its handler, released by the transport once
  // the call is over (the handler and the call hold each other).
  bool AllStreamingCallsReleased(int timeout_ms = 5000) {
    const int64_t until = MonotonicMs() + timeout_ms;
    while (true) {
      bool all = true;
      svc_.Update([&] {
        for (const auto& w : svc_.calls) all = all && w.expired();
        for (const auto& w : svc_.handlers) all = all && w.expired();
      });
      if (all) return true;
      if (MonotonicMs() > until) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }

  Service svc_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
  std::unique_ptr<RawConnection> raw_;  // StartRawSession's
};

// ---- unit: the two helpers server.h exports -----------------------------------------------

TEST(H2HelpersTest, PercentEncodeKeepsPrintableAsciiOnly) {
  EXPECT_EQ(PercentEncode(""), "");
  EXPECT_EQ(PercentEncode("plain text ~!"), "plain text ~!");  // 0x20 and 0x7e are kept
  EXPECT_EQ(PercentEncode("100%"), "100%25");
  EXPECT_EQ(PercentEncode("a\nb\tc"), "a%0Ab%09c");
  EXPECT_EQ(PercentEncode(std::string("\x1f\x7f\x00", 3)), "%1F%7F%00");
  EXPECT_EQ(PercentEncode("\xc3\xbc"), "%C3%BC");  // ü
}

TEST(H2HelpersTest, ParseGrpcTimeout) {
  EXPECT_EQ(ParseGrpcTimeout("1S"), 1'000'000'000);
  EXPECT_EQ(ParseGrpcTimeout("2H"), 2 * 3600'000'000'000);
  EXPECT_EQ(ParseGrpcTimeout("3M"), 180'000'000'000);
  EXPECT_EQ(ParseGrpcTimeout("100m"), 100'000'000);
  EXPECT_EQ(ParseGrpcTimeout("12345678u"), 12'345'678'000);  // 8 digits: the most allowed
  EXPECT_EQ(ParseGrpcTimeout("5n"), 5);
  EXPECT_EQ(ParseGrpcTimeout("0S"), 0);
  EXPECT_EQ(ParseGrpcTimeout("99999999H"), INT64_MAX);  // overflows: clamped
  EXPECT_EQ(ParseGrpcTimeout("123456789S"), -1);        // 9 digits
  EXPECT_EQ(ParseGrpcTimeout(""), -1);
  EXPECT_EQ(ParseGrpcTimeout("S"), -1);
  EXPECT_EQ(ParseGrpcTimeout("10"), -1);
  EXPECT_EQ(ParseGrpcTimeout("1x"), -1);
  EXPECT_EQ(ParseGrpcTimeout("-1S"), -1);
  EXPECT_EQ(ParseGrpcTimeout("1.5S"), -1);
}

TEST(H2HelpersTest, StartNamesTheBadAddress) {
  Server server{ServerOptions()};
  const absl::Status s = server.Start({"no-port-here"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no-port-here"), std::string_view::npos) << s;
}

// ---- through a gRPC C++ client -----------------------------------------------------------

TEST_F(H2ServerTest, UnaryEchoAtFrameBoundaries) {
  StartServer();
  Client client(MakeChannel(port_));
  // 16379 + 5 = 16384 fills one DATA frame exactly; 16380 is the first that needs two.
  for (const size_t size : {size_t{0}, size_t{1}, size_t{16379}, size_t{16380}, size_t{16384},
                            size_t{65535}, size_t{1} << 20}) {
    SCOPED_TRACE(size);
    const std::string request = Pattern(size, static_cast<uint32_t>(size));
    std::string response = "not empty";
    const grpc::Status s = client.Unary("/t.T/Echo", request, &response);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(response.size(), request.size());
    EXPECT_TRUE(response == request);
  }
}

TEST_F(H2ServerTest, MaxReceiveMessageBytesIsInclusive) {
  StartServer();  // default limit: 4 MiB
  Client client(MakeChannel(port_));
  const uint32_t max = ServerOptions().max_receive_message_bytes;
  std::string response;
  const std::string at_limit = Pattern(max, 3);
  grpc::Status s = client.Unary("/t.T/Echo", at_limit, &response);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_TRUE(response == at_limit);

  s = client.Unary("/t.T/Echo", Pattern(max + 1, 3), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("Received message larger than max (", max + 1, " vs. ", max, ")"));

  // The connection is still good.
  s = client.Unary("/t.T/Echo", "after", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, "after");
}

TEST_F(H2ServerTest, SmallMaxReceiveMessageBytes) {
  ServerOptions options;
  options.max_receive_message_bytes = 1000;
  StartServer(options);
  Client client(MakeChannel(port_));
  std::string response;
  grpc::Status s = client.Unary("/t.T/Echo", std::string(1000, 'a'), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, std::string(1000, 'a'));
  s = client.Unary("/t.T/Echo", std::string(1001, 'a'), &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "Received message larger than max (1001 vs. 1000)");
}

TEST_F(H2ServerTest, TenMiBResponseThroughSmallClientWindows) {
  StartServer();
  Client client(MakeSmallWindowChannel(port_));
  const size_t size = 10u << 20;
  std::string response;
  const grpc::Status s = client.Unary("/t.T/Big", absl::StrCat(size), &response);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  ASSERT_EQ(response.size(), size);
  EXPECT_TRUE(response == Pattern(size, 7));
}

TEST_F(H2ServerTest, SeveralLargeResponsesAtOnceThroughSmallWindows) {
  StartServer();
  auto channel = MakeSmallWindowChannel(port_);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Client client(channel);
      const size_t size = (2u << 20) + static_cast<size_t>(t) * 1000;
      std::string response;
      const grpc::Status s = client.Unary("/t.T/Big", absl::StrCat(size), &response);
      if (s.ok() && response == Pattern(size, 7)) ++good;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), 4);
}

TEST_F(H2ServerTest, ErrorStatusMessageSurvivesExactly) {
  StartServer();
  Client client(MakeChannel(port_));
  const std::vector<std::pair<int, std::string>> cases = {
      {9, "key not found: a b c"},
      {3, "100% sure\nsecond line\twith tab"},
      {5, "Grüße, 東京 ✓ %41 not decoded twice"},
      {13, "%"},
      {2, ""},
  };
  for (const auto& [code, message] : cases) {
    SCOPED_TRACE(message);
    const grpc::Status s = client.Unary("/t.T/Status", absl::StrCat(code, " ", message), nullptr);
    EXPECT_EQ(static_cast<int>(s.error_code()), code);
    EXPECT_EQ(s.error_message(), message);
  }
  // OK with no message from Finish, not Reply: no response message at all.
  std::string response = "x";
  const grpc::Status s = client.Unary("/t.T/Status", "0", &response);
  EXPECT_TRUE(s.ok());
}

TEST_F(H2ServerTest, UnknownPathIsUnimplemented) {
  StartServer();
  Client client(MakeChannel(port_));
  const grpc::Status s = client.Unary("/no.Such/Method", "x", nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  // And a streaming call to an unknown path.
  Stream stream(client.stub(), "/no.Such/Stream");
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(H2ServerTest, FallbackServesUnknownPaths) {
  StartServer(ServerOptions(), /*fallback=*/true);
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/etcdserverpb.Watch/Watch");
  ASSERT_TRUE(stream.started());
  std::string message;
  ASSERT_TRUE(stream.Read(&message));
  EXPECT_EQ(message, "/etcdserverpb.Watch/Watch");
  ASSERT_TRUE(stream.Write("ping"));
  ASSERT_TRUE(stream.Read(&message));
  EXPECT_EQ(message, "ping");
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_FALSE(stream.Read(&message));
  EXPECT_TRUE(stream.Finish().ok());
  // Registered methods still win over the fallback.
  std::string response;
  EXPECT_TRUE(client.Unary("/t.T/Echo", "e", &response).ok());
  EXPECT_EQ(response, "e");
}

TEST_F(H2ServerTest, MetadataAndDeadlineReachCallStart) {
  StartServer();
  Client client(MakeChannel(port_));
  grpc::ClientContext ctx;
  ctx.AddMetadata("x-custom", "hello world");
  ctx.AddMetadata("x-second", "2");
  const int64_t before = MonotonicNs();
  ctx.set_deadline(In(milliseconds(5000)));
  ASSERT_TRUE(client.Unary("/t.T/Meta", "", nullptr, &ctx).ok());
  svc_.Update([&] {
    EXPECT_EQ(svc_.meta_path, "/t.T/Meta");
    std::string custom = "<none>", second = "<none>";
    for (const HeaderField& f : svc_.meta) {
      EXPECT_NE(f.name[0], ':') << f.name;  // no pseudo-headers
      if (f.name == "x-custom") custom = f.value;
      if (f.name == "x-second") second = f.value;
    }
    EXPECT_EQ(custom, "hello world");
    EXPECT_EQ(second, "2");
    // grpc-timeout arrives as a relative time; CallStart turns it into a monotonic deadline.
    EXPECT_GT(svc_.meta_deadline_ns, before + 4'000'000'000);
    // Later by however long the request took to reach the server.
    EXPECT_LE(svc_.meta_deadline_ns, before + 6'000'000'000);
  });

  // Without a deadline: 0.
  grpc::ClientContext no_deadline;
  ASSERT_TRUE(client.Unary("/t.T/Meta", "", nullptr, &no_deadline).ok());
  svc_.Update([&] { EXPECT_EQ(svc_.meta_deadline_ns, 0); });
}

TEST_F(H2ServerTest, ServerStreamsTenThousandMessages) {
  StartServer();
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/t.T/Many");
  ASSERT_TRUE(stream.Write("10000"));
  ASSERT_TRUE(stream.WritesDone());
  std::string message;
  int n = 0;
  while (stream.Read(&message)) {
    ASSERT_EQ(message, absl::StrCat("m", n)) << "message " << n;
    ++n;
  }
  EXPECT_EQ(n, 10000);
  const grpc::Status s = stream.Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(H2ServerTest, BidiEcho) {
  StartServer();
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/t.T/Bidi");
  for (int i = 0; i < 200; ++i) {
    const std::string m = Pattern(static_cast<size_t>(i) * 97, static_cast<uint32_t>(i));
    ASSERT_TRUE(stream.Write(m));
    std::string back;
    ASSERT_TRUE(stream.Read(&back));
    ASSERT_TRUE(back == m) << "message " << i;
  }
  ASSERT_TRUE(stream.WritesDone());
  std::string extra;
  EXPECT_FALSE(stream.Read(&extra));
  EXPECT_TRUE(stream.Finish().ok());
}

TEST_F(H2ServerTest, FinishedStreamingCallsAreReleased) {
  // A handler holds its call and the transport holds the handler: once the call is over
  // the transport must let go, or every call leaks itself, its handler and the connection.
  StartServer();
  {
    Client client(MakeChannel(port_));
    for (int i = 0; i < 3; ++i) {
      Stream stream(client.stub(), "/t.T/Bidi");
      ASSERT_TRUE(stream.Write("x"));
      std::string back;
      ASSERT_TRUE(stream.Read(&back));
      ASSERT_TRUE(stream.WritesDone());
      ASSERT_TRUE(stream.Finish().ok());
    }
  }
  EXPECT_TRUE(AllStreamingCallsReleased());
  // Nothing is live any more, so Shutdown does not sit out its grace period.
  const int64_t t0 = MonotonicMs();
  server_->Shutdown(10'000);
  EXPECT_LT(MonotonicMs() - t0, 2000);
}

TEST_F(H2ServerTest, ClientCancelReachesOnCancel) {
  StartServer();
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/t.T/Hang");
  ASSERT_TRUE(stream.started());
  ASSERT_TRUE(stream.Write("hello"));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  stream.context()->TryCancel();
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::CANCELLED);
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
  CallPtr call = svc_.Get(svc_.held_).at(0);
  EXPECT_TRUE(call->cancelled());
  EXPECT_FALSE(call->Write("too late"));
  call->Finish(0, "");  // a no-op, must not crash
}

TEST_F(H2ServerTest, ClientCancelOfUnaryMarksCallCancelled) {
  StartServer();
  Client client(MakeChannel(port_));
  grpc::ClientContext ctx;
  ctx.set_deadline(In(milliseconds(30'000)));
  std::thread canceller([&] {
    if (svc_.WaitFor([&] { return svc_.started == 1; })) ctx.TryCancel();
  });
  const grpc::Status s = client.Unary("/t.T/Park", "x", nullptr, &ctx);
  canceller.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED);
  CallPtr call = svc_.Get(svc_.held_).at(0);
  const int64_t until = MonotonicMs() + 5000;
  while (!call->cancelled() && MonotonicMs() < until) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(call->cancelled());
  call->Reply("too late");  // dropped
}

TEST_F(H2ServerTest, DeadlineExpiryCancelsTheCall) {
  StartServer();
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/t.T/Hang",
                [](grpc::ClientContext* ctx) { ctx->set_deadline(In(milliseconds(300))); });
  ASSERT_TRUE(stream.Write("x"));
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
}

TEST_F(H2ServerTest, ManyThreadsManyCalls) {
  StartServer();
  constexpr int kThreads = 8;
  constexpr int kCalls = 2000;
  // Four connections, two threads on each: spread over both I/O threads, and concurrent
  // streams on one connection.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 4; ++i) channels.push_back(MakeChannel(port_));
  std::atomic<int> good{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client client(channels[t % 4]);
      for (int i = 0; i < kCalls; ++i) {
        const std::string request = absl::StrCat("t", t, "-", i, "-", std::string(i % 300, 'p'));
        std::string response;
        const auto sent = std::chrono::steady_clock::now();
        const grpc::Status s = client.Unary("/t.T/Echo", request, &response);
        if (s.ok() && response == request) {
          ++good;
        } else if (bad++ < 5) {
          // Enough to tell a stall (a deadline after 30 s) from a reset or a wrong answer.
          ADD_FAILURE() << "thread " << t << " call " << i << " after "
                        << std::chrono::duration_cast<milliseconds>(
                               std::chrono::steady_clock::now() - sent).count()
                        << " ms: code " << s.error_code() << " '" << s.error_message() << "' "
                        << (s.ok() ? absl::StrCat("response of ", response.size(), " bytes, want ",
                                                  request.size())
                                   : std::string());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), kThreads * kCalls);
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(H2ServerTest, ReplyAndFinishFromAnotherThread) {
  StartServer();
  auto channel = MakeChannel(port_);
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Client client(channel);
      for (int i = 0; i < 100; ++i) {
        std::string response;
        if (i % 2 == 0) {
          const std::string request = absl::StrCat("later ", t, " ", i);
          const grpc::Status s = client.Unary("/t.T/Later", request, &response);
          if (s.ok() && response == request) ++good;
        } else {
          const std::string request = absl::StrCat("error ", t, " ", i);
          const grpc::Status s = client.Unary("/t.T/Later", request, &response);
          if (s.error_code() == grpc::StatusCode::NOT_FOUND && s.error_message() == request) ++good;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), 400);
}

// The Node's executor replies from its own thread and calls FlushDeferred() after each task:
// those replies are sent by that thread at the flush, coalesced, and big ones that fill the
// socket are finished by the I/O loop.
TEST(H2DeferredFlushTest, ReplierThreadSendsItsBurstsItself) {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<CallPtr, std::string>> queue;
  bool stop = false;
  // Four clients may each have an 8 MiB answer waiting for its window at once: above the
  // default bound on answers waiting per connection (16 MiB), where new streams are
  // refused. That bound has its own tests; this one is about deferred flushes.
  ServerOptions options;
  options.max_blocked_output_bytes = 64u << 20;
  Server server{options};
  server.AddUnary("/t.T/Deferred", [&](const CallPtr& call, std::string_view request,
                                       const CallStart&) {
    std::lock_guard<std::mutex> lock(mu);
    queue.emplace_back(call, std::string(request));
    cv.notify_one();
  });
  ASSERT_TRUE(server.Start({"127.0.0.1:0"}).ok());
  std::thread replier([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;
      std::deque<std::pair<CallPtr, std::string>> burst;
      burst.swap(queue);
      lock.unlock();
      for (auto& [call, request] : burst) {
        if (request.rfind("big ", 0) == 0) {
          call->Reply(Pattern(8u << 20, 3));  // more than the socket buffer takes at once
        } else if (request.rfind("error ", 0) == 0) {
          call->Finish(5, request);
        } else {
          call->Reply(request);
        }
      }
      burst.clear();
      FlushDeferred();
      lock.lock();
    }
  });
  auto channel = MakeChannel(server.bound_ports()[0]);
  std::atomic<int> good{0};
  std::mutex bad_mu;
  std::string first_bad;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      Client client(channel);
      for (int i = 0; i < 200; ++i) {
        std::string response;
        const std::string request = i % 50 == 7   ? absl::StrCat("big ", t, " ", i)
                                    : i % 3 == 0 ? absl::StrCat("error ", t, " ", i)
                                                 : absl::StrCat("echo ", t, " ", i);
        const grpc::Status s = client.Unary("/t.T/Deferred", request, &response);
        bool ok = false;
        if (request[0] == 'b') {
          ok = s.ok() && response == Pattern(8u << 20, 3);
        } else if (request[0] == 'e' && request[1] == 'r') {
          ok = s.error_code() == grpc::StatusCode::NOT_FOUND && s.error_message() == request;
        } else {
          ok = s.ok() && response == request;
        }
        if (ok) {
          ++good;
        } else {
          std::lock_guard<std::mutex> lock(bad_mu);
          if (first_bad.empty()) {
            first_bad = absl::StrCat(request, ": code ", s.error_code(), " ", s.error_message());
          }
        }
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(good.load(), 800) << "first failure: " << first_bad;
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  cv.notify_one();
  replier.join();
  server.Shutdown(1000);
}

TEST_F(H2ServerTest, RepliesRacingCancellations) {
  // Answers from other threads while clients give up at about the same moment: every call
  // ends one way or the other, nothing crashes, and the connection keeps serving.
  StartServer();
  auto channel = MakeChannel(port_);
  std::atomic<int> ended{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Client client(channel);
      for (int i = 0; i < 150; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(In(milliseconds(1 + (i + t) % 4)));
        const std::string request = absl::StrCat(i % 3 == 0 ? "error " : "", t, "-", i);
        std::string response;
        const grpc::Status s = client.Unary("/t.T/Later", request, &response, &ctx);
        const auto code = s.error_code();
        if ((s.ok() && response == request) || code == grpc::StatusCode::NOT_FOUND ||
            code == grpc::StatusCode::DEADLINE_EXCEEDED) {
          ++ended;
        } else {
          ADD_FAILURE() << code << " " << s.error_message();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ended.load(), 600);
  Client client(channel);
  std::string response;
  EXPECT_TRUE(client.Unary("/t.T/Echo", "alive", &response).ok());
  EXPECT_EQ(response, "alive");
}

TEST_F(H2ServerTest, OnWritableFiresOnceTheClientDrains) {
  StartServer();
  Client client(MakeSmallWindowChannel(port_));
  constexpr size_t kCount = 64, kSize = 64 * 1024, kLow = 256 * 1024;
  Stream stream(client.stub(), "/t.T/Drain");
  ASSERT_TRUE(stream.Write(absl::StrCat(kCount, " ", kSize, " ", kLow)));
  // The client reads nothing yet: most of the 4 MiB is held back by its window.
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.drain_blocked > 0; }));
  EXPECT_GE(svc_.Get(svc_.drain_blocked), kLow);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(svc_.Get(svc_.writable_fired), 0);
  std::string message;
  for (size_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(stream.Read(&message)) << i;
    ASSERT_TRUE(message == Pattern(kSize, static_cast<uint32_t>(i))) << i;
  }
  ASSERT_TRUE(stream.Read(&message));
  EXPECT_EQ(message, "done");
  EXPECT_FALSE(stream.Read(&message));
  EXPECT_TRUE(stream.Finish().ok());
  EXPECT_EQ(svc_.Get(svc_.writable_fired), 1);
  EXPECT_TRUE(AllStreamingCallsReleased());  // the callback held its call
}

TEST_F(H2ServerTest, ShutdownLetsAnInFlightCallFinishThenRefuses) {
  StartServer();
  auto channel = MakeChannel(port_);
  Client client(channel);
  std::string response;
  ASSERT_TRUE(client.Unary("/t.T/Echo", "warm", &response).ok());

  grpc::Status slow_status;
  std::string slow_response;
  std::thread slow([&] {
    Client c(channel);
    slow_status = c.Unary("/t.T/Slow", "500", &slow_response);
  });
  if (!svc_.WaitFor([&] { return svc_.started == 1; })) {
    slow.join();
    FAIL() << "the slow call never started";
  }
  const int64_t t0 = MonotonicMs();
  server_->Shutdown(10'000);
  const int64_t took = MonotonicMs() - t0;
  slow.join();
  EXPECT_TRUE(slow_status.ok()) << slow_status.error_code() << " " << slow_status.error_message();
  EXPECT_EQ(slow_response, "slow-done");
  // Shutdown waited for the call, not for the whole grace period.
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 5000);

  grpc::ClientContext ctx;
  ctx.set_deadline(In(milliseconds(3000)));
  const grpc::Status after = client.Unary("/t.T/Echo", "after", nullptr, &ctx);
  EXPECT_EQ(after.error_code(), grpc::StatusCode::UNAVAILABLE) << after.error_message();
}

TEST_F(H2ServerTest, NewCallsDuringTheGracePeriodFailFast) {
  // Shutdown "stops accepting": a client that reconnects while calls drain must be refused,
  // not left handshaking with a listener nobody accepts from.
  StartServer();
  auto channel = MakeChannel(port_);
  grpc::Status slow_status;
  std::thread slow([&] {
    Client c(channel);
    slow_status = c.Unary("/t.T/Slow", "1500", nullptr);
  });
  if (!svc_.WaitFor([&] { return svc_.started == 1; })) {
    slow.join();
    FAIL() << "the slow call never started";
  }
  std::thread shutdown([&] { server_->Shutdown(10'000); });
  std::this_thread::sleep_for(milliseconds(300));  // the GOAWAY reaches the client

  Client client(MakeChannel(port_));  // a fresh connection attempt
  grpc::ClientContext ctx;
  ctx.set_deadline(In(milliseconds(1000)));
  const grpc::Status s = client.Unary("/t.T/Echo", "new", nullptr, &ctx);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  shutdown.join();
  slow.join();
  EXPECT_TRUE(slow_status.ok()) << slow_status.error_message();
}

TEST_F(H2ServerTest, ShutdownCancelsWhatOutlivesTheGrace) {
  StartServer();
  Client client(MakeChannel(port_));
  Stream stream(client.stub(), "/t.T/Hang");
  ASSERT_TRUE(stream.Write("x"));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  const int64_t t0 = MonotonicMs();
  server_->Shutdown(300);
  const int64_t took = MonotonicMs() - t0;
  EXPECT_GE(took, 250);
  EXPECT_LT(took, 3000);
  EXPECT_EQ(svc_.Get(svc_.cancels), 1);
  EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(H2ServerTest, CancelledStreamingCallsAreReleased) {
  // Cancelled while its backlog waits on the client's window: the handler and the writable
  // callback (both holding the call) must still be let go.
  StartServer();
  {
    Client client(MakeSmallWindowChannel(port_));
    Stream stream(client.stub(), "/t.T/Drain");
    ASSERT_TRUE(stream.Write("32 65536 65536"));
    ASSERT_TRUE(svc_.WaitFor([&] { return svc_.drain_blocked > 0; }));
    stream.context()->TryCancel();
    EXPECT_EQ(stream.Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(AllStreamingCallsReleased());
  EXPECT_EQ(svc_.Get(svc_.writable_fired), 0);
}

TEST_F(H2ServerTest, SmallServerReceiveWindows) {
  // Windows no larger than the HTTP/2 defaults: the client can only send a large request
  // because the server keeps replenishing both windows.
  ServerOptions options;
  options.stream_window = 16384;
  options.connection_window = 65535;
  StartServer(options);
  Client client(MakeChannel(port_));
  for (int i = 0; i < 3; ++i) {
    const std::string request = Pattern(1 << 20, static_cast<uint32_t>(i));
    std::string response;
    const grpc::Status s = client.Unary("/t.T/Echo", request, &response);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_TRUE(response == request);
  }
  Stream stream(client.stub(), "/t.T/Bidi");
  for (int i = 0; i < 20; ++i) {
    const std::string m = Pattern(100'000, static_cast<uint32_t>(i));
    ASSERT_TRUE(stream.Write(m));
    std::string back;
    ASSERT_TRUE(stream.Read(&back));
    ASSERT_TRUE(back == m) << i;
  }
  ASSERT_TRUE(stream.WritesDone());
  EXPECT_TRUE(stream.Finish().ok());
}

TEST_F(H2ServerTest, ServesUnixSocketsAndSeveralAddresses) {
  const std::string path = absl::StrCat("/tmp/h2_server_test.", getpid(), ".sock");
  server_ = std::make_unique<Server>(ServerOptions());
  RegisterMethods(server_.get(), &svc_);
  const absl::Status s = server_->Start({"127.0.0.1:0", "unix:" + path, "127.0.0.1:0"});
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(server_->bound_ports().size(), 2u);  // TCP addresses only
  EXPECT_NE(server_->bound_ports()[0], server_->bound_ports()[1]);
  for (const std::string& target :
       {absl::StrCat("ipv4:127.0.0.1:", server_->bound_ports()[0]),
        absl::StrCat("ipv4:127.0.0.1:", server_->bound_ports()[1]), "unix:" + path}) {
    SCOPED_TRACE(target);
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    Client client(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
    std::string response;
    const grpc::Status status = client.Unary("/t.T/Echo", target, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response, target);
  }
  server_->Shutdown(0);
  unlink(path.c_str());
}

// ---- raw HTTP/2 ----------------------------------------------------------------------------

// The limits README.md documents for geoetcd's default transport, as clients are told them.
TEST_F(H2ServerTest, RawDefaultsAreTheDocumentedLimits) {
  StartServer();
  RawConnection conn(port_);
  ASSERT_TRUE(conn.Send(kClientPreface));
  RawFrame f;
  ASSERT_EQ(conn.Read(&f), ReadResult::kFrame);
  ASSERT_EQ(f.header.type, FrameType::kSettings);
  EXPECT_EQ(SettingValue(f.payload, Setting::kMaxConcurrentStreams), 100000);
  EXPECT_EQ(SettingValue(f.payload, Setting::kMaxHeaderListSize), 64 * 1024);
  EXPECT_EQ(ServerOptions().max_receive_message_bytes, 4u << 20);  // geoetcd sets its own
}

TEST_F(H2ServerTest, RawFirstFrameIsSettings) {
  ServerOptions options;
  options.max_concurrent_streams = 77;
  options.max_header_list_bytes = 5000;
  options.stream_window = 200'000;
  StartServer(options);
  RawConnection conn(port_);
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Send(kClientPreface));
  RawFrame f;
  ASSERT_EQ(conn.Read(&f), ReadResult::kFrame);
  EXPECT_EQ(f.header.type, FrameType::kSettings);
  EXPECT_EQ(f.header.flags, 0);
  EXPECT_EQ(f.header.stream_id, 0u);
  EXPECT_EQ(SettingValue(f.payload, Setting::kMaxConcurrentStreams), 77);
  EXPECT_EQ(SettingValue(f.payload, Setting::kInitialWindowSize), 200'000);
  EXPECT_EQ(SettingValue(f.payload, Setting::kMaxHeaderListSize), 5000);
  EXPECT_EQ(SettingValue(f.payload, Setting::kEnablePush), 0);
  // Our SETTINGS is acknowledged.
  std::string out;
  AppendSettings(&out, {{Setting::kMaxFrameSize, 16384}});
  ASSERT_TRUE(conn.Send(out));
  bool acked = false;
  while (!acked && conn.Read(&f, 2000) == ReadResult::kFrame) {
    acked = f.header.type == FrameType::kSettings && (f.header.flags & flags::kAck);
  }
  EXPECT_TRUE(acked);
}

TEST_F(H2ServerTest, RawPingIsAnsweredWithTheSamePayload) {
  RawConnection& conn = StartRawSession();
  const uint8_t opaque[8] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 0xff};
  std::string out;
  AppendPing(&out, false, opaque);
  ASSERT_TRUE(conn.Send(out));
  RawFrame f;
  while (conn.Read(&f) == ReadResult::kFrame && f.header.type != FrameType::kPing) {
  }
  ASSERT_EQ(f.header.type, FrameType::kPing);
  EXPECT_EQ(f.header.flags, flags::kAck);
  EXPECT_EQ(f.header.stream_id, 0u);
  EXPECT_EQ(f.payload, std::string(reinterpret_cast<const char*>(opaque), 8));
  // A PING ACK from the client is not answered; the next PING still is.
  out.clear();
  AppendPing(&out, true, opaque);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(conn.PingPong(9));
}

TEST_F(H2ServerTest, RawBadPrefaceClosesTheConnection) {
  StartServer();
  RawConnection conn(port_);
  ASSERT_TRUE(conn.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawPrefaceInPiecesIsAccepted) {
  StartServer();
  RawConnection conn(port_);
  const std::string_view preface = kClientPreface;
  for (size_t i = 0; i < preface.size(); i += 5) {
    ASSERT_TRUE(conn.Send(preface.substr(i, 5)));
    std::this_thread::sleep_for(milliseconds(5));
  }
  std::string out;
  AppendSettings(&out, {});
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawFrameSizeBound) {
  RawConnection& conn = StartRawSession();
  // An unknown frame type is ignored, at exactly SETTINGS_MAX_FRAME_SIZE too.
  std::string out;
  AppendFrameHeader(&out, 16384, static_cast<FrameType>(0xee), 0, 0);
  out.append(16384, 'x');
  ASSERT_TRUE(conn.Send(out));
  ASSERT_TRUE(conn.PingPong());
  out.clear();
  AppendFrameHeader(&out, 16385, static_cast<FrameType>(0xee), 0, 0);
  out.append(16385, 'x');
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kFrameSizeError));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawDataOnStreamZeroIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendData(&out, 0, "abc", false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawDataOnAnIdleStreamIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendData(&out, 7, Framed("abc"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
}

TEST_F(H2ServerTest, RawHeadersOnAnEvenStreamIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 2, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
  EXPECT_TRUE(conn.WaitClosed());
}

// HEADERS below the highest stream id name a closed stream: nghttp2 ignores them (they may be
// a client's trailers racing our RST_STREAM) rather than end the connection. Nothing starts.
TEST_F(H2ServerTest, RawHeadersOnAClosedStreamAreIgnored) {
  RawConnection& conn = StartRawSession();
  const std::string m = "m";
  ASSERT_TRUE(conn.SendRequest(5, "/t.T/Echo", &m));
  RawResponse r = conn.ReadResponse(5);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  ASSERT_TRUE(conn.SendRequest(3, "/t.T/Meta", &m));
  ASSERT_TRUE(conn.PingPong());
  ASSERT_TRUE(conn.SendRequest(7, "/t.T/Echo", &m));
  RawResponse r7 = conn.ReadResponse(7);
  EXPECT_EQ(r7.Get("grpc-status"), "0");
  EXPECT_EQ(r7.Messages(), std::vector<std::string>{m});
  EXPECT_EQ(svc_.Get(svc_.meta_path), "");  // stream 3 never reached its method
}

// Before the client has acknowledged the limit, the stream over it is refused (nghttp2 counts
// it against the limit it announced); after, a client that ignores the limit it acknowledged
// loses the connection (RFC 9113 §5.1.2 allows either; gRPC clients never exceed it).
TEST_F(H2ServerTest, RawMaxConcurrentStreamsRefusesTheOneOver) {
  ServerOptions options;
  options.max_concurrent_streams = 3;
  StartServer(options);
  RawConnection conn(port_);
  std::string hello(kClientPreface);
  AppendSettings(&hello, {});
  ASSERT_TRUE(conn.Send(hello));  // and no SETTINGS ACK yet
  RawFrame settings;
  ASSERT_EQ(conn.Read(&settings), ReadResult::kFrame);
  ASSERT_EQ(settings.header.type, FrameType::kSettings);
  EXPECT_EQ(SettingValue(settings.payload, Setting::kMaxConcurrentStreams), 3);
  for (uint32_t id : {1u, 3u, 5u, 7u}) ASSERT_TRUE(conn.SendRequest(id, "/t.T/Bidi", nullptr));
  RawResponse r7 = conn.ReadResponse(7);
  EXPECT_TRUE(r7.reset);
  EXPECT_EQ(r7.reset_code, ErrorCode::kRefusedStream);
  // The third stream was accepted: it echoes.
  std::string out;
  AppendData(&out, 5, Framed("third"), false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawFrame f;
  ASSERT_EQ(conn.ReadStreamFrame(&f), ReadResult::kFrame);
  EXPECT_EQ(f.header.stream_id, 5u);
  EXPECT_EQ(f.header.type, FrameType::kHeaders);
  ASSERT_EQ(conn.ReadStreamFrame(&f), ReadResult::kFrame);
  EXPECT_EQ(f.header.type, FrameType::kData);
  EXPECT_EQ(f.payload, Framed("third"));
  // Ending stream 1 frees a slot: stream 9 is served.
  out.clear();
  AppendData(&out, 1, "", true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r1 = conn.ReadResponse(1);
  EXPECT_TRUE(r1.ended);
  EXPECT_EQ(r1.Get("grpc-status"), "0");
  ASSERT_TRUE(conn.SendRequest(9, "/t.T/Bidi", nullptr));
  out.clear();
  AppendData(&out, 9, Framed("ninth"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r9 = conn.ReadResponse(9);
  EXPECT_FALSE(r9.reset);
  EXPECT_EQ(r9.Get("grpc-status"), "0");
  EXPECT_EQ(r9.Messages(), std::vector<std::string>{"ninth"});
  // Acknowledged, the limit binds: with stream 5 still open, 11 and 13 fit; 15 ends the
  // connection.
  out.clear();
  AppendSettingsAck(&out);
  for (uint32_t id : {11u, 13u, 15u}) {
    AppendHeaders(&out, id, RequestBlock("/t.T/Bidi"), false, kDefaultMaxFrameSize);
  }
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawHeaderListBound) {
  ServerOptions options;
  options.max_header_list_bytes = 1024;
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();
  const std::string path = "/t.T/Echo";
  const size_t base = RequestListBytes(path, {{"x-pad", ""}});
  ASSERT_LT(base, 1024u);
  const Fields exact = {{"x-pad", std::string(1024 - base, 'p')}};
  ASSERT_EQ(RequestListBytes(path, exact), 1024u);
  std::string out;
  AppendHeaders(&out, 1, RequestBlock(path, exact), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("fits"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r1 = conn.ReadResponse(1);
  EXPECT_EQ(r1.Get("grpc-status"), "0");
  EXPECT_EQ(r1.Messages(), std::vector<std::string>{"fits"});

  const Fields over = {{"x-pad", std::string(1024 - base + 1, 'p')}};
  out.clear();
  AppendHeaders(&out, 3, RequestBlock(path, over), false, kDefaultMaxFrameSize);
  AppendData(&out, 3, Framed("too big"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r3 = conn.ReadResponse(3);
  EXPECT_TRUE(r3.ended);
  EXPECT_TRUE(r3.trailers.empty());  // trailers-only
  EXPECT_EQ(r3.Get(":status"), "200");
  EXPECT_EQ(r3.Get("grpc-status"), "8");
  EXPECT_TRUE(r3.data.empty());

  // The connection stays usable.
  const std::string m = "after";
  ASSERT_TRUE(conn.SendRequest(5, path, &m));
  RawResponse r5 = conn.ReadResponse(5);
  EXPECT_EQ(r5.Get("grpc-status"), "0");
  EXPECT_EQ(r5.Messages(), std::vector<std::string>{"after"});
}

TEST_F(H2ServerTest, RawConnectionWindowUpdateOfZeroIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendWindowUpdate(&out, 0, 0);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
  EXPECT_TRUE(conn.WaitClosed());
}

// RFC 9113 §6.9 makes this a stream error; nghttp2 ends the connection, which an endpoint may
// always do. The call on it is cancelled.
TEST_F(H2ServerTest, RawStreamWindowUpdateOfZeroIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  std::string out;
  AppendWindowUpdate(&out, 1, 0);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
  EXPECT_TRUE(conn.WaitClosed());
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
}

TEST_F(H2ServerTest, RawStreamWindowOverflowCancelsTheCall) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  std::string out;
  AppendWindowUpdate(&out, 1, static_cast<uint32_t>(kMaxWindow - kDefaultInitialWindow));
  ASSERT_TRUE(conn.Send(out));
  ASSERT_TRUE(conn.PingPong());  // exactly 2^31-1: fine
  out.clear();
  AppendWindowUpdate(&out, 1, 1);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_TRUE(r.reset);
  EXPECT_EQ(r.reset_code, ErrorCode::kFlowControlError);
  // The handler hears of it, as of any other reset (a relay must stop its upstream call).
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
  EXPECT_TRUE(svc_.Get(svc_.held_).at(0)->cancelled());
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawConnectionWindowOverflowBound) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendWindowUpdate(&out, 0, static_cast<uint32_t>(kMaxWindow - kDefaultInitialWindow));
  ASSERT_TRUE(conn.Send(out));
  ASSERT_TRUE(conn.PingPong());  // exactly 2^31-1: fine
  out.clear();
  AppendWindowUpdate(&out, 0, 1);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kFlowControlError));
}

TEST_F(H2ServerTest, RawInitialWindowSizeBound) {
  StartServer();
  {
    RawConnection conn(port_);
    conn.Handshake({{Setting::kInitialWindowSize, static_cast<uint32_t>(kMaxWindow)}});
    EXPECT_TRUE(conn.PingPong());
  }
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, static_cast<uint32_t>(kMaxWindow) + 1}});
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kFlowControlError));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawMaxFrameSizeSettingBounds) {
  StartServer();
  for (const uint32_t bad : {16383u, (1u << 24)}) {
    RawConnection conn(port_);
    conn.Handshake({{Setting::kMaxFrameSize, bad}});
    EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError)) << bad;
  }
  // The largest allowed: DATA frames beyond 16384 come back, none beyond the setting.
  RawConnection conn(port_);
  conn.Handshake({{Setting::kMaxFrameSize, (1u << 24) - 1},
                  {Setting::kInitialWindowSize, 1u << 20}});
  std::string out;
  AppendWindowUpdate(&out, 0, 1u << 20);
  ASSERT_TRUE(conn.Send(out));
  const std::string n = "100000";
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Big", &n));
  size_t largest = 0;
  std::string data;
  RawFrame f;
  while (conn.ReadStreamFrame(&f) == ReadResult::kFrame) {
    if (f.header.type == FrameType::kData) {
      largest = std::max<size_t>(largest, f.payload.size());
      data += f.payload;
    }
    if (f.header.flags & flags::kEndStream) break;
  }
  EXPECT_GT(largest, 16384u);
  EXPECT_EQ(data, Framed(Pattern(100000, 7)));
}

TEST_F(H2ServerTest, RawResponseWaitsForTheClientsWindow) {
  StartServer();
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, 100}});
  ASSERT_TRUE(conn.PingPong());  // our SETTINGS is in effect before the request
  const std::string n = "1000";
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Big", &n));
  RawFrame f;
  ASSERT_EQ(conn.ReadStreamFrame(&f), ReadResult::kFrame);
  ASSERT_EQ(f.header.type, FrameType::kHeaders);
  std::string data;
  const size_t total = 1000 + 5;
  int updates = 0;
  while (data.size() < total) {
    // Exactly one window's worth arrives, then nothing until the next WINDOW_UPDATE.
    const size_t want = std::min<size_t>(100, total - data.size());
    size_t got = 0;
    while (got < want) {
      ASSERT_EQ(conn.ReadStreamFrame(&f, 2000), ReadResult::kFrame) << "after " << data.size();
      ASSERT_EQ(f.header.type, FrameType::kData);
      ASSERT_EQ(f.header.stream_id, 1u);
      got += f.payload.size();
      data += f.payload;
    }
    ASSERT_EQ(got, want);
    if (data.size() == total) break;
    EXPECT_EQ(conn.ReadStreamFrame(&f, 150), ReadResult::kTimeout) << "beyond the window";
    std::string out;
    AppendWindowUpdate(&out, 1, 100);
    ASSERT_TRUE(conn.Send(out));
    ++updates;
  }
  EXPECT_EQ(updates, 10);
  EXPECT_EQ(data, Framed(Pattern(1000, 7)));
  RawResponse rest = conn.ReadResponse(1);
  EXPECT_TRUE(rest.ended);
  EXPECT_EQ(rest.Get("grpc-status"), "0");
}

TEST_F(H2ServerTest, RawInitialWindowSizeChangeReachesOpenStreams) {
  StartServer();
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, 100}});
  ASSERT_TRUE(conn.PingPong());
  const std::string n = "1000";
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Big", &n));
  std::string data;
  RawFrame f;
  while (data.size() < 100 && conn.ReadStreamFrame(&f, 2000) == ReadResult::kFrame) {
    if (f.header.type == FrameType::kData) data += f.payload;
  }
  ASSERT_EQ(data.size(), 100u);
  std::string out;
  AppendSettings(&out, {{Setting::kInitialWindowSize, 2000}});  // +1900 to stream 1
  ASSERT_TRUE(conn.Send(out));
  RawResponse rest = conn.ReadResponse(1);
  EXPECT_TRUE(rest.ended);
  EXPECT_EQ(data + rest.data, Framed(Pattern(1000, 7)));
}

TEST_F(H2ServerTest, RawConnectionWindowSharedByBlockedStreams) {
  // Three responses larger than what the connection window has left: every WINDOW_UPDATE
  // on the connection moves the blocked streams along by exactly its increment, until each
  // has its whole message.
  StartServer();
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, 1u << 20}});
  ASSERT_TRUE(conn.PingPong());
  const std::string n = "40000";
  for (uint32_t id : {1u, 3u, 5u}) ASSERT_TRUE(conn.SendRequest(id, "/t.T/Big", &n));
  constexpr size_t kTotal = 3 * (40000 + 5);
  std::map<uint32_t, std::string> data;
  std::map<uint32_t, bool> ended;
  size_t received = 0;
  // Reads until `want` DATA bytes in all, then checks that no more come within 100 ms.
  auto receive = [&](size_t want) {
    RawFrame f;
    bool quiet = false;
    while (!quiet) {
      const int timeout = received < want ? 5000 : 100;
      if (conn.ReadStreamFrame(&f, timeout) != ReadResult::kFrame) {
        quiet = true;
        continue;
      }
      if (f.header.type == FrameType::kData) {
        data[f.header.stream_id] += f.payload;
        received += f.payload.size();
      }
      if (f.header.flags & flags::kEndStream) ended[f.header.stream_id] = true;
    }
    return received;
  };
  EXPECT_EQ(receive(kDefaultInitialWindow), static_cast<size_t>(kDefaultInitialWindow));
  for (size_t i = 1; received < kTotal; ++i) {
    ASSERT_LT(i, 30u);
    std::string out;
    AppendWindowUpdate(&out, 0, 3000);
    ASSERT_TRUE(conn.Send(out));
    const size_t want = std::min<size_t>(kTotal, kDefaultInitialWindow + 3000 * i);
    ASSERT_EQ(receive(want), want) << "update " << i;
  }
  for (uint32_t id : {1u, 3u, 5u}) {
    if (!ended[id]) {
      RawResponse rest = conn.ReadResponse(id);
      EXPECT_TRUE(rest.ended) << id;
      EXPECT_EQ(rest.Get("grpc-status"), "0") << id;
    }
    EXPECT_EQ(data[id], Framed(Pattern(40000, 7))) << id;
  }
}

TEST_F(H2ServerTest, RawRequestWithoutGrpcContentTypeGets415) {
  RawConnection& conn = StartRawSession();
  const std::string m = "x";
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Echo", {}, ""), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed(m), true, kDefaultMaxFrameSize);
  AppendHeaders(&out, 3, RequestBlock("/t.T/Echo", {}, "application/json"), false,
                kDefaultMaxFrameSize);
  AppendData(&out, 3, Framed(m), true, kDefaultMaxFrameSize);
  AppendHeaders(&out, 5, RequestBlock("/t.T/Echo", {}, "application/grpc+proto"), false,
                kDefaultMaxFrameSize);
  AppendData(&out, 5, Framed(m), true, kDefaultMaxFrameSize);
  AppendHeaders(&out, 7, RequestBlock("/t.T/Echo", {}, "application/grpc", "GET"), false,
                kDefaultMaxFrameSize);
  AppendData(&out, 7, Framed(m), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  for (uint32_t id : {1u, 3u, 7u}) {
    RawResponse r = conn.ReadResponse(id);
    EXPECT_TRUE(r.ended) << id;
    EXPECT_EQ(r.Get(":status"), "415") << id;
  }
  RawResponse r5 = conn.ReadResponse(5);
  EXPECT_EQ(r5.Get(":status"), "200");
  EXPECT_EQ(r5.Get("grpc-status"), "0");
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawHeadersWithPaddingAndPriority) {
  RawConnection& conn = StartRawSession();
  const std::string block = RequestBlock("/t.T/Echo");
  std::string payload;
  payload.push_back(10);                         // pad length
  payload.append("\x80\x00\x00\x03", 4);         // exclusive, depends on stream 3
  payload.push_back(static_cast<char>(200));     // weight
  payload.append(block);
  payload.append(10, '\0');
  std::string out;
  AppendFrameHeader(&out, static_cast<uint32_t>(payload.size()), FrameType::kHeaders,
                    flags::kEndHeaders | flags::kPadded | flags::kPriority, 1);
  out.append(payload);
  // DATA with padding too.
  const std::string message = Framed("padded");
  AppendFrameHeader(&out, static_cast<uint32_t>(1 + message.size() + 3), FrameType::kData,
                    flags::kPadded | flags::kEndStream, 1);
  out.push_back(3);
  out.append(message);
  out.append(3, '\0');
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{"padded"});
  // A PRIORITY frame is accepted and ignored.
  out.clear();
  AppendFrameHeader(&out, 5, FrameType::kPriority, 0, 3);
  out.append("\x00\x00\x00\x01\x10", 5);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawHeadersSplitOverContinuation) {
  RawConnection& conn = StartRawSession();
  const std::string block = RequestBlock("/t.T/Echo", {{"x-long", std::string(300, 'v')}});
  std::string out;
  AppendHeaders(&out, 1, block, false, 100);  // HEADERS + 3 CONTINUATION
  AppendData(&out, 1, Framed("continued"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{"continued"});
}

TEST_F(H2ServerTest, RawOtherFrameInsideAHeaderBlockIsAProtocolError) {
  RawConnection& conn = StartRawSession();
  const std::string block = RequestBlock("/t.T/Echo");
  std::string out;
  AppendFrameHeader(&out, 10, FrameType::kHeaders, 0, 1);
  out.append(block.substr(0, 10));
  const uint8_t opaque[8] = {};
  AppendPing(&out, false, opaque);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kProtocolError));
}

TEST_F(H2ServerTest, RawMessageInOneByteDataFrames) {
  RawConnection& conn = StartRawSession();
  const std::string message = Framed(Pattern(100, 1));
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  for (size_t i = 0; i < message.size(); ++i) {
    AppendData(&out, 1, message.substr(i, 1), i + 1 == message.size(), kDefaultMaxFrameSize);
  }
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{Pattern(100, 1)});
}

TEST_F(H2ServerTest, RawSeveralMessagesInOneDataFrame) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Bidi"), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("one") + Framed("") + Framed("three"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), (std::vector<std::string>{"one", "", "three"}));
}

TEST_F(H2ServerTest, RawRequestEndingInsideAMessageIsInternal) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("0123456789").substr(0, 8), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.Get("grpc-status"), "13");
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawUnaryWithoutAMessageIsInternal) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Echo", nullptr, /*end_stream_on_headers=*/true));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "13");
  // Same with the END_STREAM on an empty DATA frame.
  std::string out;
  AppendHeaders(&out, 3, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  AppendData(&out, 3, "", true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  r = conn.ReadResponse(3);
  EXPECT_EQ(r.Get("grpc-status"), "13");
}

TEST_F(H2ServerTest, RawCompressedMessageIsUnimplemented) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("zz", 1), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "12");
}

TEST_F(H2ServerTest, RawClientTrailersHalfClose) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Bidi"), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("before trailers"), false, kDefaultMaxFrameSize);
  std::string trailers;
  HpackEncoder::Encode("x-trailer", "1", &trailers);
  AppendHeaders(&out, 1, trailers, true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{"before trailers"});
}

TEST_F(H2ServerTest, RawResponseHeadersAndTrailers) {
  RawConnection& conn = StartRawSession();
  const std::string m = "hi";
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Echo", &m));
  RawResponse r = conn.ReadResponse(1);
  ASSERT_TRUE(r.ended);
  ASSERT_EQ(r.headers.size(), 2u);
  EXPECT_EQ(r.headers[0].name, ":status");
  EXPECT_EQ(r.headers[0].value, "200");
  EXPECT_EQ(r.headers[1].name, "content-type");
  EXPECT_EQ(r.headers[1].value, "application/grpc");
  ASSERT_EQ(r.trailers.size(), 1u);  // OK carries no grpc-message
  EXPECT_EQ(r.trailers[0].name, "grpc-status");
  EXPECT_EQ(r.trailers[0].value, "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{"hi"});
}

// A client that lowers SETTINGS_HEADER_TABLE_SIZE gets a table size update leading the next
// header block (RFC 7541 4.2), once; strict decoders (nghttp2) require it.
TEST_F(H2ServerTest, RawLoweredHeaderTableSizeIsAcknowledgedInTheNextBlock) {
  RawConnection& conn = StartRawSession();
  std::string settings;
  AppendSettings(&settings, {{Setting::kHeaderTableSize, 0}});
  ASSERT_TRUE(conn.Send(settings));
  std::vector<uint8_t> first_octets;
  for (uint32_t id : {1u, 3u}) {
    const std::string m = "hi";
    ASSERT_TRUE(conn.SendRequest(id, "/t.T/Echo", &m));
    RawFrame frame;
    while (true) {
      ASSERT_EQ(conn.Read(&frame), ReadResult::kFrame);
      if (frame.header.type == FrameType::kHeaders && frame.header.stream_id == id) break;
    }
    ASSERT_FALSE(frame.payload.empty());
    first_octets.push_back(static_cast<uint8_t>(frame.payload[0]));
    HpackDecoder decoder(0);
    std::vector<HeaderField> fields;
    ASSERT_TRUE(decoder.Decode(frame.payload, 1 << 20, &fields).ok());
    ASSERT_FALSE(fields.empty());
    EXPECT_EQ(fields[0].name, ":status");
  }
  EXPECT_EQ(first_octets[0], 0x20);  // size update to 0
  EXPECT_NE(first_octets[1], 0x20);  // only once
}

TEST_F(H2ServerTest, RawLongStatusMessageUsesContinuation) {
  RawConnection& conn = StartRawSession();
  const std::string message(20000, 'e');
  const std::string request = "9 " + message;
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Status", &request));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.Get("grpc-status"), "9");
  EXPECT_EQ(r.Get("grpc-message"), message);
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawResponseBeforeTheRequestEndsResetsWithNoError) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Many"), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("3"), false, kDefaultMaxFrameSize);  // no END_STREAM
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  ASSERT_TRUE(r.ended);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), (std::vector<std::string>{"m0", "m1", "m2"}));
  RawFrame f;
  ASSERT_EQ(conn.ReadStreamFrame(&f), ReadResult::kFrame);
  EXPECT_EQ(f.header.type, FrameType::kRstStream);
  EXPECT_EQ(f.header.stream_id, 1u);
  EXPECT_EQ(ReadU32(reinterpret_cast<const uint8_t*>(f.payload.data())),
            static_cast<uint32_t>(ErrorCode::kNoError));
  // What the client had in flight for the stream is dropped quietly.
  out.clear();
  AppendData(&out, 1, Framed("late"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(conn.PingPong());
  const std::string m = "still here";
  ASSERT_TRUE(conn.SendRequest(3, "/t.T/Echo", &m));
  EXPECT_EQ(conn.ReadResponse(3).Messages(), std::vector<std::string>{m});
}

// RFC 9113 §5.1 makes this a stream error STREAM_CLOSED; nghttp2 ends the connection with it.
TEST_F(H2ServerTest, RawDataAfterEndStreamIsStreamClosed) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr, /*end_stream_on_headers=*/true));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  std::string out;
  AppendData(&out, 1, Framed("x"), false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kStreamClosed));
  EXPECT_TRUE(conn.WaitClosed());
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
}

TEST_F(H2ServerTest, RawStreamingCallWithEndStreamOnHeaders) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Bidi", nullptr, /*end_stream_on_headers=*/true));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_TRUE(r.ended);
  EXPECT_TRUE(r.trailers.empty());
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_TRUE(r.data.empty());
}

TEST_F(H2ServerTest, RawRequestRespectingSmallServerWindows) {
  ServerOptions options;
  options.stream_window = 1000;
  options.connection_window = 3000;  // below the default: no initial WINDOW_UPDATE
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();
  EXPECT_EQ(SettingValue(conn.server_settings(), Setting::kInitialWindowSize), 1000);
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Bidi", nullptr));
  // Send 10 messages of 995 bytes, never beyond the windows the server grants.
  int64_t stream_window = 1000, conn_window = 65535;
  std::string echoed;
  for (int i = 0; i < 10; ++i) {
    const std::string message = Framed(Pattern(995, static_cast<uint32_t>(i)));
    size_t sent = 0;
    while (sent < message.size()) {
      const int64_t can =
          std::min<int64_t>({stream_window, conn_window, int64_t(message.size() - sent)});
      if (can > 0) {
        std::string out;
        AppendData(&out, 1, message.substr(sent, static_cast<size_t>(can)), false,
                   kDefaultMaxFrameSize);
        ASSERT_TRUE(conn.Send(out));
        sent += static_cast<size_t>(can);
        stream_window -= can;
        conn_window -= can;
        continue;
      }
      RawFrame f;
      ASSERT_EQ(conn.Read(&f, 2000), ReadResult::kFrame) << "stalled at message " << i;
      if (f.header.type == FrameType::kWindowUpdate) {
        const uint32_t inc = ReadU32(reinterpret_cast<const uint8_t*>(f.payload.data()));
        (f.header.stream_id == 0 ? conn_window : stream_window) += inc;
      } else if (f.header.type == FrameType::kData) {
        echoed += f.payload;
      }
    }
  }
  std::string out;
  AppendData(&out, 1, "", true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  std::vector<std::string> messages;
  ASSERT_TRUE(Unframe(echoed + r.data, &messages));
  ASSERT_EQ(messages.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(messages[i] == Pattern(995, static_cast<uint32_t>(i)));
}

TEST_F(H2ServerTest, RawRstStreamReachesOnCancel) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  std::string out;
  AppendRstStream(&out, 1, ErrorCode::kCancel);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
  EXPECT_TRUE(conn.PingPong());
}

TEST_F(H2ServerTest, RawRstStreamOnAnIdleStreamIsIgnored) {
  // gRPC core clients send these when a call is cancelled before its HEADERS went out
  // (grpc/grpc#19655); the other calls on the connection must not pay for it.
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendRstStream(&out, 9, ErrorCode::kCancel);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_TRUE(conn.PingPong());
  const std::string m = "after reset";
  ASSERT_TRUE(conn.SendRequest(11, "/t.T/Echo", &m));
  RawResponse r = conn.ReadResponse(11);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{m});
}

// The filter in front of nghttp2 cuts exactly the RST_STREAM frames on idle streams, whatever
// the reads look like: every split of the input gives the same bytes through.
TEST(H2HelpersTest, IdleResetFilterDropsOnlyResetsOfIdleStreams) {
  std::string in(kClientPreface);
  AppendSettings(&in, {});
  std::string want = in;
  std::string drop;
  AppendRstStream(&drop, 9, ErrorCode::kCancel);  // idle: no HEADERS on 9 yet
  in += drop;
  std::string keep;
  AppendHeaders(&keep, 9, RequestBlock("/t.T/Echo"), false, kDefaultMaxFrameSize);
  AppendData(&keep, 9, Framed(std::string(40, 'd')), false, kDefaultMaxFrameSize);
  AppendRstStream(&keep, 9, ErrorCode::kCancel);  // open now: it passes
  AppendRstStream(&keep, 4, ErrorCode::kCancel);  // even: nghttp2's to judge
  in += keep;
  want += keep;
  AppendRstStream(&in, 11, ErrorCode::kCancel);
  for (size_t step : {in.size(), size_t{1}, size_t{4}, size_t{10}}) {
    IdleResetFilter filter;
    std::string out;
    for (size_t pos = 0; pos < in.size(); pos += step) {
      std::vector<std::string_view> pieces;
      filter.Filter(std::string_view(in).substr(pos, step), &pieces);
      for (std::string_view piece : pieces) out.append(piece);
    }
    EXPECT_EQ(out, want) << "reads of " << step << " bytes";
  }
}

TEST_F(H2ServerTest, RawDisconnectCancelsOpenCalls) {
  StartServer();
  {
    RawConnection conn(port_);
    conn.Handshake();
    ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr));
    ASSERT_TRUE(conn.SendRequest(3, "/t.T/Hang", nullptr));
    ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 2; }));
  }
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 2; }));
}

TEST_F(H2ServerTest, RawShutdownSendsGoAwayAndRefusesNewStreams) {
  RawConnection& conn = StartRawSession();
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Hang", nullptr));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  std::thread shutdown([&] { server_->Shutdown(1000); });
  uint32_t last = 0;
  EXPECT_EQ(conn.ReadGoAway(&last), static_cast<int64_t>(ErrorCode::kNoError));
  EXPECT_EQ(last, 1u);
  EXPECT_TRUE(conn.SendRequest(3, "/t.T/Echo", nullptr));
  RawResponse r = conn.ReadResponse(3);
  EXPECT_TRUE(r.reset);
  EXPECT_EQ(r.reset_code, ErrorCode::kRefusedStream);
  shutdown.join();
  EXPECT_TRUE(conn.WaitClosed());
  EXPECT_EQ(svc_.Get(svc_.cancels), 1);
}

// ---- request header validation (RFC 9113 §8.2-8.3) -----------------------------------------

// A header block of exactly `fields`, in order.
std::string BlockOf(const Fields& fields) {
  std::string block;
  for (const auto& [name, value] : fields) HpackEncoder::Encode(name, value, &block);
  return block;
}

// Regression: one such field on a relayed method made gRPC C++ abort the whole process
// (native_frontend relayed it as metadata). Each must reset only its own stream.
TEST_F(H2ServerTest, RawMalformedRequestHeadersResetTheStream) {
  RawConnection& conn = StartRawSession();
  const Fields pseudo = {{":method", "POST"}, {":scheme", "http"}, {":path", "/t.T/Echo"},
                         {":authority", "test"}};
  const Fields grpc = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  std::vector<Fields> blocks;
  for (const Fields& extra : std::vector<Fields>{
           {{"User-Agent", "x"}},
           {{"x y", "1"}},
           {{"x:y", "1"}},
           {{"", "1"}},
           {{"x\x7f", "1"}},
           {{"x\xc3\xa9", "1"}},
           {{"x-v", std::string("a\0b", 3)}},
           {{"x-v", "a\rb"}},
           {{"x-v", "a\nb"}},
           {{"x-v", " leading"}},
           {{"x-v", "trailing\t"}},
           {{"connection", "close"}},
           {{"keep-alive", "1"}},
           {{"proxy-connection", "1"}},
           {{"transfer-encoding", "chunked"}},
           {{"upgrade", "h2c"}},
           {{"te", "gzip"}},
       }) {
    Fields f = pseudo;
    f.insert(f.end(), grpc.begin(), grpc.end());
    f.insert(f.end(), extra.begin(), extra.end());
    blocks.push_back(f);
  }
  blocks.push_back({{":method", "POST"}, {":scheme", "http"}, {":path", "/t.T/Echo"},
                    {":bogus", "1"}});
  blocks.push_back({{":method", "POST"}, {":scheme", "http"}, {":path", "/t.T/Echo"},
                    {":status", "200"}});
  blocks.push_back({{":method", "POST"}, {":path", "/t.T/Echo"}, {":scheme", "http"},
                    {":path", "/t.T/Echo"}});
  blocks.push_back({{":method", "POST"}, {":scheme", "http"}, {"content-type", "application/grpc"},
                    {":path", "/t.T/Echo"}});
  blocks.push_back({{":method", "POST"}, {":path", "/t.T/Echo"}});
  blocks.push_back({{":scheme", "http"}, {":path", "/t.T/Echo"}});
  blocks.push_back({{":method", "POST"}, {":scheme", "http"}, {":path", ""}});
  uint32_t id = 1;
  for (const Fields& block : blocks) {
    std::string out;
    AppendHeaders(&out, id, BlockOf(block), false, kDefaultMaxFrameSize);
    AppendData(&out, id, Framed("m"), true, kDefaultMaxFrameSize);
    ASSERT_TRUE(conn.Send(out));
    RawResponse r = conn.ReadResponse(id);
    EXPECT_TRUE(r.reset) << "block " << id / 2;
    EXPECT_EQ(r.reset_code, ErrorCode::kProtocolError) << "block " << id / 2;
    id += 2;
  }
  ASSERT_TRUE(conn.PingPong());
  const std::string m = "still serving";
  ASSERT_TRUE(conn.SendRequest(id, "/t.T/Echo", &m));
  RawResponse r = conn.ReadResponse(id);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{m});
}

// What RFC 9113 allows but gRPC metadata does not still reaches the method: the check
// belongs to whoever relays metadata to gRPC (IsGrpcMetadata).
TEST_F(H2ServerTest, RawWellFormedUnusualFieldsReachTheMethod) {
  RawConnection& conn = StartRawSession();
  const Fields extra = {{"x-obs", "caf\xc3\xa9"}, {"x-tab", "a\tb"}, {"x{y}", "1"},
                        {"x-empty", ""}};
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Meta", extra), false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed(""), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  std::vector<HeaderField> meta = svc_.Get(svc_.meta);
  for (const auto& [name, value] : extra) {
    EXPECT_TRUE(std::any_of(meta.begin(), meta.end(), [&](const HeaderField& f) {
      return f.name == name && f.value == value;
    })) << name;
  }
}

// Regression: etcdctl 3.4 sends its endpoint URL as :authority ("http://host:port"), which
// nghttp2's own HTTP checks reset as not an RFC 3986 authority; etcd's server takes it.
TEST_F(H2ServerTest, RawAuthorityWithAUrlIsServed) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1,
                BlockOf({{":method", "POST"}, {":scheme", "http"}, {":path", "/t.T/Echo"},
                         {":authority", "http://127.0.0.1:2379"},
                         {"content-type", "application/grpc"}, {"te", "trailers"}}),
                false, kDefaultMaxFrameSize);
  AppendData(&out, 1, Framed("url"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_FALSE(r.reset);
  EXPECT_EQ(r.Get("grpc-status"), "0");
  EXPECT_EQ(r.Messages(), std::vector<std::string>{"url"});
}

TEST_F(H2ServerTest, RawPseudoHeaderInTrailersResetsTheStream) {
  RawConnection& conn = StartRawSession();
  std::string out;
  AppendHeaders(&out, 1, RequestBlock("/t.T/Hang"), false, kDefaultMaxFrameSize);
  AppendHeaders(&out, 1, BlockOf({{":path", "/x"}}), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r = conn.ReadResponse(1);
  EXPECT_TRUE(r.reset);
  EXPECT_EQ(r.reset_code, ErrorCode::kProtocolError);
  EXPECT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
  EXPECT_TRUE(conn.PingPong());
}

TEST(H2HelpersTest, MalformedReasonAcceptsWhatGrpcClientsSend) {
  const std::vector<HeaderField> request = {
      {":method", "POST"}, {":scheme", "http"}, {":path", "/a.B/C"}, {":authority", "h:1"},
      {"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "grpc-go/1.5"},
      {"grpc-timeout", "5S"}, {"x-bin", "AP8"}};  // -bin values travel in base64
  EXPECT_EQ(MalformedReason(request, HeaderBlockKind::kRequest), "");
  EXPECT_EQ(MalformedReason({{":method", "CONNECT"}, {":authority", "h:1"}},
                            HeaderBlockKind::kRequest), "");
  EXPECT_EQ(MalformedReason({{"x-trailer", "1"}}, HeaderBlockKind::kTrailers), "");
  EXPECT_NE(MalformedReason({}, HeaderBlockKind::kRequest), "");
}

TEST(H2HelpersTest, IsGrpcMetadata) {
  EXPECT_TRUE(IsGrpcMetadata("x-request-id_1.2", "printable ~ text"));
  EXPECT_TRUE(IsGrpcMetadata("x-bin", std::string("\0\xff", 2)));  // binary: any bytes
  EXPECT_TRUE(IsGrpcMetadata("x", ""));
  EXPECT_FALSE(IsGrpcMetadata("", "x"));
  EXPECT_FALSE(IsGrpcMetadata("User-Agent", "x"));
  EXPECT_FALSE(IsGrpcMetadata("x{y}", "x"));
  EXPECT_FALSE(IsGrpcMetadata(":path", "/x"));
  EXPECT_FALSE(IsGrpcMetadata("x", "caf\xc3\xa9"));
  EXPECT_FALSE(IsGrpcMetadata("x", "a\tb"));
  EXPECT_FALSE(IsGrpcMetadata("x", "\x7f"));
}


// ---- limits a hostile client meets (issue 16) ----------------------------------------------

TEST_F(H2ServerTest, RawResetFreesOutputBlockedOnFlowControl) {
  // The client grants no stream window, so the echo waits for one; its RST_STREAM must let
  // go of the call and its backlog at once, not when a WINDOW_UPDATE pumps the queue.
  StartServer();
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, 0}});
  const std::string big(100'000, 'b');
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Bidi", nullptr));
  std::string out;
  AppendData(&out, 1, Framed(big), false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawFrame f;  // the response's HEADERS go out; its DATA waits for a window
  ASSERT_EQ(conn.ReadStreamFrame(&f), ReadResult::kFrame);
  ASSERT_EQ(f.header.type, FrameType::kHeaders);
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.calls.size() == 1; }));
  out.clear();
  AppendRstStream(&out, 1, ErrorCode::kCancel);
  ASSERT_TRUE(conn.Send(out));
  ASSERT_TRUE(conn.PingPong(2));
  EXPECT_TRUE(AllStreamingCallsReleased(2000));
  EXPECT_TRUE(conn.PingPong(3));  // the connection stays
}

TEST_F(H2ServerTest, RawConnectionHeaderBytesBound) {
  // Unary calls keep their headers until their message arrives; the bound is on what one
  // connection keeps that way. Three such calls fit, the fourth is refused.
  const std::string path = "/t.T/Echo";
  // RequestListBytes less the pseudo-headers the call does not keep (:method, :scheme,
  // :authority); :path is kept.
  const size_t kept = RequestListBytes(path) - (7 + 4 + 32) - (7 + 4 + 32) - (10 + 4 + 32);
  ServerOptions options;
  options.max_connection_header_bytes = static_cast<uint32_t>(3 * kept);
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();
  for (uint32_t id : {1u, 3u, 5u, 7u}) ASSERT_TRUE(conn.SendRequest(id, path, nullptr));
  RawResponse r7 = conn.ReadResponse(7);
  EXPECT_TRUE(r7.reset);
  EXPECT_EQ(r7.reset_code, ErrorCode::kRefusedStream);
  // The message of stream 1 starts its method, which frees its headers: stream 9 fits.
  std::string out;
  AppendData(&out, 1, Framed("first"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r1 = conn.ReadResponse(1);
  EXPECT_EQ(r1.Get("grpc-status"), "0");
  const std::string m = "ninth";
  ASSERT_TRUE(conn.SendRequest(9, path, &m));
  RawResponse r9 = conn.ReadResponse(9);
  EXPECT_FALSE(r9.reset);
  EXPECT_EQ(r9.Get("grpc-status"), "0");
  EXPECT_EQ(r9.Messages(), std::vector<std::string>{m});
  // A streaming call's headers are freed as it starts: once it has (its echo came back),
  // another fits next to the two parked ones. (Headers that arrive in the same read count
  // until their calls start.)
  ASSERT_TRUE(conn.SendRequest(11, "/t.T/Bidi", nullptr));
  out.clear();
  AppendData(&out, 11, Framed("eleven"), false, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawFrame echo;
  ASSERT_EQ(conn.ReadStreamFrame(&echo), ReadResult::kFrame);  // HEADERS
  ASSERT_EQ(conn.ReadStreamFrame(&echo), ReadResult::kFrame);
  EXPECT_EQ(echo.payload, Framed("eleven"));
  ASSERT_TRUE(conn.SendRequest(13, "/t.T/Bidi", nullptr));
  out.clear();
  AppendData(&out, 13, Framed("thirteen"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r13 = conn.ReadResponse(13);
  EXPECT_FALSE(r13.reset);
  EXPECT_EQ(r13.Messages(), std::vector<std::string>{"thirteen"});
}

TEST_F(H2ServerTest, RawBlockedOutputBound) {
  // The client grants no stream window, so every answer waits whole. At the bound on what
  // waits so, new streams are refused until a window lets some of it out.
  const std::string size = "10000";
  const size_t waiting = 5 + 10000;  // one answer, framed
  ServerOptions options;
  options.max_blocked_output_bytes = static_cast<uint32_t>(2 * waiting);
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake({{Setting::kInitialWindowSize, 0}});
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Big", &size));
  ASSERT_TRUE(conn.SendRequest(3, "/t.T/Big", &size));  // now at the bound
  ASSERT_TRUE(conn.SendRequest(5, "/t.T/Big", &size));
  RawResponse r5 = conn.ReadResponse(5);
  EXPECT_TRUE(r5.reset);
  EXPECT_EQ(r5.reset_code, ErrorCode::kRefusedStream);
  // A window for stream 1 lets its answer out: below the bound, stream 7 is served.
  std::string out;
  AppendWindowUpdate(&out, 1, static_cast<uint32_t>(waiting));
  ASSERT_TRUE(conn.Send(out));
  RawResponse r1 = conn.ReadResponse(1);
  EXPECT_EQ(r1.Get("grpc-status"), "0");
  EXPECT_EQ(r1.Messages(), std::vector<std::string>{Pattern(10000, 7)});
  ASSERT_TRUE(conn.SendRequest(7, "/t.T/Big", &size));
  out.clear();
  AppendWindowUpdate(&out, 7, static_cast<uint32_t>(waiting));
  ASSERT_TRUE(conn.Send(out));
  RawResponse r7 = conn.ReadResponse(7);
  EXPECT_FALSE(r7.reset);
  EXPECT_EQ(r7.Get("grpc-status"), "0");
}

TEST_F(H2ServerTest, RawDataBeyondTheStreamWindowIsAFlowControlError) {
  ServerOptions options;
  options.stream_window = 1000;
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();  // acknowledges the server's SETTINGS: the 1000-byte window applies
  ASSERT_TRUE(conn.PingPong());
  // Exactly the window: echoed.
  const std::string fits(1000 - 5, 'f');
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Bidi", nullptr));
  std::string out;
  AppendData(&out, 1, Framed(fits), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r1 = conn.ReadResponse(1);
  EXPECT_FALSE(r1.reset);
  EXPECT_EQ(r1.Messages(), std::vector<std::string>{fits});
  // One byte more: RST_STREAM(FLOW_CONTROL_ERROR), the connection stays.
  ASSERT_TRUE(conn.SendRequest(3, "/t.T/Bidi", nullptr));
  out.clear();
  AppendData(&out, 3, Framed(fits + "x"), true, kDefaultMaxFrameSize);
  ASSERT_TRUE(conn.Send(out));
  RawResponse r3 = conn.ReadResponse(3);
  EXPECT_TRUE(r3.reset);
  EXPECT_EQ(r3.reset_code, ErrorCode::kFlowControlError);
  EXPECT_TRUE(conn.PingPong(2));
}

TEST_F(H2ServerTest, RawHandshakeTimeout) {
  ServerOptions options;
  options.handshake_timeout_ms = 400;
  StartServer(options);
  const int64_t start_ms = MonotonicMs();
  RawConnection slow(port_);  // half a preface, then nothing
  ASSERT_TRUE(slow.Send(kClientPreface.substr(0, 10)));
  RawConnection done(port_);  // the whole handshake, late but in time
  std::this_thread::sleep_for(milliseconds(200));
  done.Handshake();
  EXPECT_TRUE(slow.WaitClosed(3000));
  EXPECT_GE(MonotonicMs() - start_ms, 400 - 5);  // not before its deadline
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_TRUE(done.PingPong());
}

TEST_F(H2ServerTest, RawIdleTimeoutClosesConnectionsWithoutStreams) {
  ServerOptions options;
  options.idle_timeout_ms = 400;
  StartServer(options);
  RawConnection idle(port_);
  idle.Handshake();
  const int64_t idle_from_ms = MonotonicMs();
  RawConnection busy(port_);
  busy.Handshake();
  ASSERT_TRUE(busy.SendRequest(1, "/t.T/Hang", nullptr));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.started == 1; }));
  uint32_t last_stream = 99;
  EXPECT_EQ(idle.ReadGoAway(&last_stream, 3000), static_cast<int64_t>(ErrorCode::kNoError));
  EXPECT_GE(MonotonicMs() - idle_from_ms, 400 - 5);
  EXPECT_EQ(last_stream, 0u);
  EXPECT_TRUE(idle.WaitClosed(2000));
  // The connection with an open stream outlives the timeout, then goes idle once it ends.
  EXPECT_TRUE(busy.PingPong());
  std::string out;
  AppendRstStream(&out, 1, ErrorCode::kCancel);
  ASSERT_TRUE(busy.Send(out));
  ASSERT_TRUE(svc_.WaitFor([&] { return svc_.cancels == 1; }));
  const int64_t busy_idle_from_ms = MonotonicMs();
  EXPECT_EQ(busy.ReadGoAway(&last_stream, 3000), static_cast<int64_t>(ErrorCode::kNoError));
  EXPECT_GE(MonotonicMs() - busy_idle_from_ms, 400 - 5);
  EXPECT_EQ(last_stream, 1u);
}

TEST_F(H2ServerTest, RawTooManyPingsGetEnhanceYourCalm) {
  StartServer();  // defaults: 2 strikes of pings sooner than 5 s apart
  RawConnection conn(port_);
  conn.Handshake();
  // The first ping is no strike, the next two are; a response between pings clears them.
  for (uint8_t i = 0; i < 3; ++i) ASSERT_TRUE(conn.PingPong(i));
  const std::string m = "resets the strikes";
  ASSERT_TRUE(conn.SendRequest(1, "/t.T/Echo", &m));
  EXPECT_EQ(conn.ReadResponse(1).Get("grpc-status"), "0");
  for (uint8_t i = 10; i < 13; ++i) ASSERT_TRUE(conn.PingPong(i));
  // The third strike.
  uint8_t opaque[8] = {0};
  std::string out;
  AppendPing(&out, false, opaque);
  ASSERT_TRUE(conn.Send(out));
  EXPECT_EQ(conn.ReadGoAway(), static_cast<int64_t>(ErrorCode::kEnhanceYourCalm));
  EXPECT_TRUE(conn.WaitClosed());
}

TEST_F(H2ServerTest, RawPingsFurtherApartThanTheMinimumAreFine) {
  ServerOptions options;
  options.ping_interval_min_ms = 100;
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();
  for (uint8_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(conn.PingPong(i)) << int{i};
    std::this_thread::sleep_for(milliseconds(120));
  }
}

TEST_F(H2ServerTest, RawClientThatNeverReadsIsNotReadEither) {
  // Each SETTINGS is answered with an ACK the client never reads: once the server has
  // max_pending_output_bytes queued it stops reading, so the client's sends block, and it
  // resumes once the client drains its socket.
  ServerOptions options;
  options.max_pending_output_bytes = 64 * 1024;
  StartServer(options);
  RawConnection conn(port_);
  conn.Handshake();
  std::string settings;
  for (int i = 0; i < 4096; ++i) AppendSettings(&settings, {});  // 9 bytes each
  const size_t kSendMax = size_t{64} << 20;  // the server would have queued 64 MiB of ACKs
  size_t sent = 0;
  int64_t blocked_since_ms = -1;
  while (sent < kSendMax) {
    // The stream is the same 9-byte frame over and over: after a partial send, go on from
    // where it stopped inside the frame.
    const std::string_view rest = std::string_view(settings).substr(sent % 9);
    const ssize_t n = send(conn.fd(), rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      blocked_since_ms = -1;
      continue;
    }
    ASSERT_TRUE(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
    if (blocked_since_ms < 0) blocked_since_ms = MonotonicMs();
    if (MonotonicMs() - blocked_since_ms > 500) break;  // the server stopped reading
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_LT(sent, kSendMax) << "the server kept reading a client that never reads";
  // Draining lets the server read the rest; every SETTINGS sent gets its ACK.
  size_t acks = 0;
  RawFrame f;
  while (conn.Read(&f, 1000) == ReadResult::kFrame) {
    if (f.header.type == FrameType::kSettings && (f.header.flags & flags::kAck)) ++acks;
  }
  EXPECT_EQ(acks, sent / 9 + 1);  // and the handshake's
  const size_t cut = sent % 9;  // the last frame's bytes already sent
  if (cut != 0) {
    ASSERT_TRUE(conn.Send(std::string_view(settings).substr(cut, 9 - cut)));
  }
  EXPECT_TRUE(conn.PingPong(7));
}

}  // namespace
}  // namespace geoetcd::h2
