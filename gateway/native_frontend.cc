#include "gateway/native_frontend.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <time.h>

#include <deque>
#include <mutex>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "core/node.h"
#include "core/watch_buffer.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "gateway/h2/request_headers.h"
#include "gateway/rpc_metrics.h"
#include "gateway/system_ports.h"

namespace geoetcd {
namespace {

constexpr int kCodeCanceled = 1;
constexpr int kCodeInternal = 13;
constexpr int kCodeResourceExhausted = 8;

void FinishWithStatus(const h2::CallPtr& call, const absl::Status& status) {
  call->Finish(static_cast<int>(status.code()),
               std::string_view(status.message().data(), status.message().size()));
}

// A natively served call in grpc_server_started_total (at construction) and
// grpc_server_handled_total (Handled, once per call). Copyable into the reply callback.
class CountedCall {
 public:
  CountedCall(RpcMetrics* rpc, std::string_view path)
      : method_(rpc != nullptr
                    ? rpc->Find(absl::string_view(path.data(), path.size()), RpcMetrics::kUnary)
                    : nullptr) {
    RpcMetrics::Started(method_);
  }
  void Handled(int code) const { RpcMetrics::Handled(method_, code); }

 private:
  RpcMetrics::Method* method_;  // null: not counted
};

// Parses one request message; a malformed one ends the call with INTERNAL, as gRPC does.
template <typename Req>
bool ParseRequest(const h2::CallPtr& call, std::string_view bytes, Req* req) {
  if (req->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return true;
  call->Finish(kCodeInternal, "grpc: error unmarshalling request");
  return false;
}

// A mutation: parsed on the I/O thread and applied under the exclusive state lock, answered
// by the Node once durable (from the executor's thread).
template <typename Req, typename Resp>
h2::UnaryMethod Mutation(Node* node, AsioExecutor* executor, RpcMetrics* rpc,
                         void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>)) {
  return [node, executor, method, rpc](const h2::CallPtr& call, std::string_view bytes,
                                       const h2::CallStart& start) {
    CountedCall counted(rpc, start.path);
    Req req;
    if (!ParseRequest(call, bytes, &req)) return counted.Handled(kCodeInternal);
    const RequestContext rc;
    absl::MutexLock lock(&executor->state_mutex());
    (node->*method)(rc, req, [call, counted](absl::StatusOr<Resp> result) {
      counted.Handled(static_cast<int>(result.status().code()));
      if (!result.ok()) return FinishWithStatus(call, result.status());
      call->Reply(result->SerializeAsString());
    });
  };
}

h2::UnaryMethod RangeMethod(Node* node, AsioExecutor* executor, RpcMetrics* rpc) {
  return [node, executor, rpc](const h2::CallPtr& call, std::string_view bytes,
                               const h2::CallStart& start) {
    CountedCall counted(rpc, start.path);
    etcdserverpb::RangeRequest req;
    if (!ParseRequest(call, bytes, &req)) return counted.Handled(kCodeInternal);
    const RequestContext rc;
    absl::StatusOr<etcdserverpb::RangeResponse> result;
    bool in_place = false;
    {
      absl::ReaderMutexLock lock(&executor->state_mutex());
      in_place = node->ReadsInPlace(rc, req);
      if (in_place) result = node->ReadRange(rc, req);
    }
    if (!in_place) {
      // A linearizable read away from the write region waits for a read index.
      absl::MutexLock lock(&executor->state_mutex());
      node->Range(rc, req, [call, counted](absl::StatusOr<etcdserverpb::RangeResponse> r) {
        counted.Handled(static_cast<int>(r.status().code()));
        if (!r.ok()) return FinishWithStatus(call, r.status());
        call->Reply(r->SerializeAsString());
      });
      return;
    }
    counted.Handled(static_cast<int>(result.status().code()));
    if (!result.ok()) return FinishWithStatus(call, result.status());
    call->Reply(result->SerializeAsString());
  };
}

// etcd's Watch on the native transport. The Node's sink queues responses in a
// WatchStreamBuffer (core/watch_buffer.h: the same bounds and refusal policy as the gRPC C++
// service), and the queue moves into the HTTP/2 stream while the client's flow-control
// window holds back less than kLowWater bytes; below that the transport calls back and the
// queue drains further. A client that stops reading therefore fills the buffer and the hub
// stops sending it events until it catches up, as on the gRPC C++ transport.
class NativeWatch final : public h2::CallHandler {
 public:
  static constexpr size_t kLowWater = 64 * 1024;
  static constexpr size_t kFanOutFlushConnections = 8;

  static constexpr const char* kPath = "/etcdserverpb.Watch/Watch";

  static std::shared_ptr<h2::CallHandler> Start(Node* node, AsioExecutor* executor,
                                                RpcMetrics* rpc, const h2::CallPtr& call) {
    auto watch = std::shared_ptr<NativeWatch>(new NativeWatch(node, executor, rpc, call));
    if (rpc != nullptr) rpc->Started(kPath, RpcMetrics::kBidiStream);
    std::weak_ptr<NativeWatch> weak = watch;
    call->SetOnWritable(kLowWater, [weak] {
      if (auto w = weak.lock()) w->OnWritable();
    });
    std::shared_ptr<Outbound> out = watch->out_;
    absl::MutexLock lock(&executor->state_mutex());
    absl::StatusOr<uint64_t> id = node->OpenWatchStream(
        RequestContext(), [out](etcdserverpb::WatchResponse resp) {
          return out->Offer(std::move(resp));
        });
    if (!id.ok()) {
      FinishWithStatus(call, id.status());
      watch->CountHandled(static_cast<int>(id.status().code()));
      return watch;
    }
    watch->stream_id_ = *id;
    return watch;
  }

  void OnMessage(std::string_view message) override {
    etcdserverpb::WatchRequest req;
    if (!ParseRequest(out_->call, message, &req)) {
      Close();
      return;
    }
    if (stream_id_ == 0) return;
    absl::MutexLock lock(&executor_->state_mutex());
    node_->WatchRequest(stream_id_, req);
  }
  // etcd keeps sending on a half-closed watch stream until the client goes away.
  void OnHalfClose() override {}
  void OnCancel() override { Close(); }

 private:
  // Shared by the Node's sink and this handler; outlives either.
  struct Outbound {
    explicit Outbound(h2::CallPtr c) : call(std::move(c)) {}
    const h2::CallPtr call;
    std::mutex mu;
    WatchStreamBuffer buffer;

    // The Node's sink (state mutex held).
    bool Offer(etcdserverpb::WatchResponse resp) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (!buffer.Offer(std::move(resp))) return false;
        DrainLocked();
      }
      // One put fans out to every watcher in one executor task; send as it goes rather
      // than after the last watcher's response is built.
      h2::FlushDeferredIfMany(kFanOutFlushConnections);
      return true;
    }
    void DrainLocked() {
      while (!buffer.empty() && call->blocked_bytes() < kLowWater) {
        if (!call->Write(buffer.Pop().SerializeAsString())) {
          while (!buffer.empty()) buffer.Pop();  // the stream is gone
        }
      }
    }
  };

  NativeWatch(Node* node, AsioExecutor* executor, RpcMetrics* rpc, h2::CallPtr call)
      : node_(node),
        executor_(executor),
        rpc_(rpc),
        out_(std::make_shared<Outbound>(std::move(call))) {}

  // A watch stream ends when the client cancels it or goes away: Canceled, as
  // go-grpc-prometheus counts etcd's.
  void CountHandled(int code) {
    if (rpc_ == nullptr || handled_) return;
    handled_ = true;
    rpc_->Handled(kPath, RpcMetrics::kBidiStream, code);
  }

  void OnWritable() {
    bool resume;
    {
      std::lock_guard<std::mutex> lock(out_->mu);
      out_->DrainLocked();
      resume = out_->buffer.TakeResume();
    }
    if (resume && stream_id_ != 0) {
      executor_->Post([node = node_, id = stream_id_] { node->ResumeWatchStream(id); });
    }
  }

  void Close() {
    CountHandled(kCodeCanceled);
    if (stream_id_ == 0) return;
    const uint64_t id = stream_id_;
    stream_id_ = 0;
    executor_->Post([node = node_, id] { node->CloseWatchStream(id); });
  }

  Node* const node_;
  AsioExecutor* const executor_;
  RpcMetrics* const rpc_;
  const std::shared_ptr<Outbound> out_;
  uint64_t stream_id_ = 0;  // the Node's id; 0 once closed (I/O thread)
  bool handled_ = false;    // counted in grpc_server_handled_total (I/O thread)
};

// Headers that are the transport's business, not metadata a service reads, and those gRPC
// C++ would refuse as metadata (it aborts the process on them, and HTTP/2 allows some).
bool Forwardable(const std::string& name, const std::string& value) {
  if (!h2::IsGrpcMetadata(name, value)) return false;
  if (name.rfind("grpc-", 0) == 0) return false;
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "-bin") == 0) return false;
  return name != "content-type" && name != "te" && name != "user-agent" && name != "host" &&
         name != "connection";
}

std::chrono::system_clock::time_point ToSystemDeadline(int64_t monotonic_ns) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const int64_t now = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
  return std::chrono::system_clock::now() + std::chrono::nanoseconds(monotonic_ns - now);
}

// Relays one call to the gRPC C++ services over the in-process channel: request messages
// go up as they arrive, response messages come back as the service writes them, and the
// service's status ends the HTTP/2 stream. Backpressure: while the client's flow-control
// window holds back more than kHighWater bytes, no further response is read from the
// service, so a slow watcher slows its Watch stream exactly as on gRPC C++'s transport.
class ProxyCall final : public h2::CallHandler,
                        public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  static constexpr size_t kHighWater = 256 * 1024;
  // Request messages queued for the service before the client must be told off.
  static constexpr size_t kMaxQueuedRequests = 4096;

  static std::shared_ptr<h2::CallHandler> Start(grpc::GenericStub* stub, const h2::CallPtr& call,
                                                const h2::CallStart& start) {
    auto proxy = std::shared_ptr<ProxyCall>(new ProxyCall(call));
    proxy->self_ = proxy;
    for (const h2::HeaderField& f : start.metadata()) {
      if (Forwardable(f.name, f.value)) proxy->ctx_.AddMetadata(f.name, f.value);
    }
    if (start.deadline_ns != 0) proxy->ctx_.set_deadline(ToSystemDeadline(start.deadline_ns));
    std::weak_ptr<ProxyCall> weak = proxy;
    call->SetOnWritable(kHighWater, [weak] {
      if (auto p = weak.lock()) p->ResumeReading();
    });
    stub->PrepareBidiStreamingCall(&proxy->ctx_, std::string(start.path), grpc::StubOptions(),
                                   proxy.get());
    proxy->StartRead(&proxy->response_);
    proxy->StartCall();
    return proxy;
  }

  // ---- from the client (the I/O thread) ----
  void OnMessage(std::string_view message) override {
    grpc::Slice slice(message.data(), message.size());
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    if (pending_.size() >= kMaxQueuedRequests) {
      call_->Finish(kCodeResourceExhausted, "too many request messages queued on one stream");
      ctx_.TryCancel();
      return;
    }
    pending_.emplace_back(&slice, 1);
    if (!writing_) WriteNextLocked();
  }
  void OnHalfClose() override {
    std::lock_guard<std::mutex> lock(mu_);
    half_closed_ = true;
    if (!writing_ && !done_) StartWritesDone();
  }
  void OnCancel() override { ctx_.TryCancel(); }

  // ---- from the service (gRPC's threads) ----
  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok || done_) return;
    if (!pending_.empty()) {
      WriteNextLocked();
    } else if (half_closed_) {
      StartWritesDone();
    }
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // the service finished; OnDone follows
    std::string bytes;
    {
      std::vector<grpc::Slice> slices;
      if (response_.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    call_->Write(bytes);
    if (call_->blocked_bytes() >= kHighWater) {
      read_paused_ = true;
      return;
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      call_->Finish(status.error_code(), status.error_message());
    }
    self_.reset();  // may delete this
  }

 private:
  explicit ProxyCall(h2::CallPtr call) : call_(std::move(call)) {}

  void ResumeReading() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!read_paused_ || done_) return;
    read_paused_ = false;
    StartRead(&response_);
  }
  void WriteNextLocked() {
    writing_ = true;
    writing_buffer_ = std::move(pending_.front());
    pending_.pop_front();
    StartWrite(&writing_buffer_);
  }

  const h2::CallPtr call_;
  std::shared_ptr<ProxyCall> self_;  // alive until OnDone
  grpc::ClientContext ctx_;
  grpc::ByteBuffer response_;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> pending_;
  grpc::ByteBuffer writing_buffer_;
  bool writing_ = false;
  bool half_closed_ = false;
  bool read_paused_ = false;
  bool done_ = false;
};

}  // namespace

NativeFrontend::NativeFrontend(Node* node, AsioExecutor* executor,
                               std::shared_ptr<grpc::Channel> upstream, h2::ServerOptions options,
                               RpcMetrics* rpc)
    : upstream_(std::move(upstream)),
      stub_(std::make_unique<grpc::GenericStub>(upstream_)),
      server_(options) {
  server_.AddUnary("/etcdserverpb.KV/Range", RangeMethod(node, executor, rpc));
  server_.AddUnary("/etcdserverpb.KV/Put", Mutation(node, executor, rpc, &Node::Put));
  server_.AddUnary("/etcdserverpb.KV/DeleteRange",
                   Mutation(node, executor, rpc, &Node::DeleteRange));
  server_.AddUnary("/etcdserverpb.KV/Txn", Mutation(node, executor, rpc, &Node::Txn));
  server_.AddUnary("/etcdserverpb.KV/Compact", Mutation(node, executor, rpc, &Node::Compact));
  server_.AddStreaming("/etcdserverpb.Watch/Watch",
                        [node, executor, rpc](const h2::CallPtr& call, const h2::CallStart&) {
                          return NativeWatch::Start(node, executor, rpc, call);
                        });
  grpc::GenericStub* stub = stub_.get();
  server_.SetFallback([stub](const h2::CallPtr& call, const h2::CallStart& start) {
    return ProxyCall::Start(stub, call, start);
  });
}

NativeFrontend::~NativeFrontend() { Shutdown(0); }

absl::Status NativeFrontend::Start(const std::vector<std::string>& addresses) {
  return server_.Start(addresses);
}

void NativeFrontend::Shutdown(int64_t grace_ms) { server_.Shutdown(grace_ms); }

}  // namespace geoetcd
