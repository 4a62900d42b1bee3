#include "gateway/watch_service.h"

#include <memory>
#include <mutex>
#include <utility>

#include "core/watch_buffer.h"
#include "gateway/grpc_status.h"
#include "gateway/kv_service.h"

namespace geoetcd {
namespace {

using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

// What etcd returns when a watch stream ends because the client went away.
grpc::Status WatchCanceled() {
  return grpc::Status(grpc::StatusCode::CANCELLED, "etcdserver: watch canceled");
}

class WatchReactor final : public grpc::ServerBidiReactor<WatchRequest, WatchResponse> {
 public:
  WatchReactor(Node* node, Executor* executor, RequestContext rc)
      : node_(node), executor_(executor), out_(std::make_shared<Outbound>()) {
    out_->reactor = this;
    std::shared_ptr<Outbound> out = out_;
    executor_->Post([node, out, rc = std::move(rc)] {
      auto id = node->OpenWatchStream(rc, [out](WatchResponse resp) {
        return out->Offer(std::move(resp));
      });
      std::lock_guard<std::mutex> lock(out->mu);
      if (!id.ok()) return out->FinishLocked(ToGrpcStatus(id.status()));
      out->stream_id = *id;
    });
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    // !ok: the client half-closed (or the call broke). etcd keeps sending on a half-closed
    // stream until the client goes away, so only OnCancel ends it.
    if (!ok) return;
    std::shared_ptr<Outbound> out = out_;
    executor_->Post([node = node_, out, req = request_] {
      if (out->stream_id != 0) node->WatchRequest(out->stream_id, req);
    });
    std::lock_guard<std::mutex> lock(out_->mu);
    if (out_->finished) return;
    // Backpressure: a client that does not read its responses cannot add requests either.
    if (out_->buffer.full()) {
      out_->read_paused = true;
      return;
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(out_->mu);
    out_->writing = false;
    if (!ok) return out_->FinishLocked(WatchCanceled());
    out_->MaybeWriteLocked();
    if (out_->buffer.TakeResume()) {
      std::shared_ptr<Outbound> out = out_;
      executor_->Post([node = node_, out] {
        if (out->stream_id != 0) node->ResumeWatchStream(out->stream_id);
      });
    }
    if (out_->read_paused && !out_->buffer.full() && !out_->finished) {
      out_->read_paused = false;
      StartRead(&request_);
    }
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(out_->mu);
    out_->FinishLocked(WatchCanceled());
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(out_->mu);
      out_->reactor = nullptr;
      out_->finished = true;
    }
    std::shared_ptr<Outbound> out = out_;
    executor_->Post([node = node_, out] {
      if (out->stream_id != 0) node->CloseWatchStream(out->stream_id);
    });
    delete this;
  }

 private:
  // What the Node's sink shares with the reactor; it outlives the reactor until the Node
  // closes the stream.
  struct Outbound {
    std::mutex mu;
    WatchReactor* reactor = nullptr;  // null once OnDone ran
    WatchStreamBuffer buffer;
    WatchResponse writing_now;  // the one response being written
    bool writing = false;
    bool finished = false;
    bool read_paused = false;
    uint64_t stream_id = 0;  // the Node's id; touched only on the executor thread

    // The Node's sink, on the executor thread.
    bool Offer(WatchResponse resp) {
      std::lock_guard<std::mutex> lock(mu);
      if (finished) return true;  // nobody will read it; dropping is harmless
      if (!buffer.Offer(std::move(resp))) return false;
      MaybeWriteLocked();
      return true;
    }
    void MaybeWriteLocked() {
      if (writing || finished || buffer.empty()) return;
      writing_now = buffer.Pop();
      writing = true;
      // More responses queued behind this one: let gRPC hold it and send them together,
      // one sendmsg for the lot instead of one per response. The last one queued goes
      // without the hint and flushes them all. (A fan-out of 10,000 watchers spent a third
      // of the server's CPU in sendmsg before this.)
      grpc::WriteOptions options;
      if (!buffer.empty()) options.set_buffer_hint();
      reactor->StartWrite(&writing_now, options);
    }
    void FinishLocked(const grpc::Status& status) {
      if (finished) return;
      finished = true;
      reactor->Finish(status);
    }
  };

  Node* node_;
  Executor* executor_;
  std::shared_ptr<Outbound> out_;
  WatchRequest request_;
};

}  // namespace

grpc::ServerBidiReactor<WatchRequest, WatchResponse>* WatchService::Watch(
    grpc::CallbackServerContext* ctx) {
  return new WatchReactor(node_, executor_, ResolveRequestContext(ctx));
}

}  // namespace geoetcd
