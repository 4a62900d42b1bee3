#include "gateway/lease_service.h"

#include <atomic>
#include <mutex>

#include "gateway/kv_service.h"

namespace geoetcd {
namespace {

using KeepAliveReactor = grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                                                 etcdserverpb::LeaseKeepAliveResponse>;

class KeepAliveStream final : public KeepAliveReactor {
 public:
  KeepAliveStream(Node* node, Executor* executor, RequestContext rc)
      : node_(node), executor_(executor), rc_(std::move(rc)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    Ref();
    executor_->Post([this] {
      node_->LeaseKeepAlive(rc_, request_, [this](auto result) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!done_) {
            if (!result.ok()) {
              Finish(ToGrpcStatus(result.status()));
            } else {
              response_ = std::move(*result);
              StartWrite(&response_);
            }
          }
        }
        Unref();
      });
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;  // a Node reply still in flight must not touch the finished call
    }
    Unref();
  }

 private:
  // The reactor is deleted once gRPC is done with it and no Node callback is pending.
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  Node* node_;
  Executor* executor_;
  RequestContext rc_;
  etcdserverpb::LeaseKeepAliveRequest request_;
  etcdserverpb::LeaseKeepAliveResponse response_;
  std::atomic<int> refs_{1};  // held by gRPC until OnDone
  std::mutex mu_;
  bool done_ = false;
};

}  // namespace

grpc::ServerUnaryReactor* LeaseService::LeaseGrant(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::LeaseGrantRequest* req,
                                                   etcdserverpb::LeaseGrantResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::LeaseGrant);
}

grpc::ServerUnaryReactor* LeaseService::LeaseRevoke(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::LeaseRevokeRequest* req,
                                                    etcdserverpb::LeaseRevokeResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::LeaseRevoke);
}

KeepAliveReactor* LeaseService::LeaseKeepAlive(grpc::CallbackServerContext* ctx) {
  return new KeepAliveStream(node_, executor_, ResolveRequestContext(ctx));
}

grpc::ServerUnaryReactor* LeaseService::LeaseTimeToLive(
    grpc::CallbackServerContext* ctx, const etcdserverpb::LeaseTimeToLiveRequest* req,
    etcdserverpb::LeaseTimeToLiveResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::LeaseTimeToLive);
}

grpc::ServerUnaryReactor* LeaseService::LeaseLeases(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::LeaseLeasesRequest* req,
                                                    etcdserverpb::LeaseLeasesResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::LeaseLeases);
}

}  // namespace geoetcd
