// etcdserverpb.KV over gRPC's callback API. Both paths run on the calling gRPC thread under
// the executor's state mutex rather than queueing for the Node's thread: mutations hold it
// exclusively and are finished by the Node's reply once durable; Range holds it shared and
// answers in place, so reads run in parallel and never wait behind writes.
#ifndef GEOETCD_GATEWAY_KV_SERVICE_H_
#define GEOETCD_GATEWAY_KV_SERVICE_H_

#include "core/node.h"
#include "gateway/grpc_status.h"
#include "gateway/system_ports.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd {

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  KvService(Node* node, AsioExecutor* executor) : node_(node), executor_(executor) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* req,
                                  etcdserverpb::RangeResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::DeleteRangeRequest* req,
                                        etcdserverpb::DeleteRangeResponse* resp) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::CompactionRequest* req,
                                    etcdserverpb::CompactionResponse* resp) override;

 private:
  Node* node_;
  AsioExecutor* executor_;
};

// Resolves the account and other per-call facts from gRPC metadata.
RequestContext ResolveRequestContext(const grpc::CallbackServerContext* ctx);

// Posts `method` to the Node's executor and finishes the unary call with its reply.
template <typename Req, typename Resp>
grpc::ServerUnaryReactor* DispatchUnary(
    Node* node, Executor* executor, grpc::CallbackServerContext* ctx, const Req* req,
    Resp* resp, void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>)) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  executor->Post([node, req, resp, reactor, method, rc = ResolveRequestContext(ctx)] {
    (node->*method)(rc, *req, [resp, reactor](absl::StatusOr<Resp> result) {
      if (result.ok()) *resp = std::move(*result);
      reactor->Finish(ToGrpcStatus(result.status()));
    });
  });
  return reactor;
}

// Calls `method` on this gRPC thread while holding the executor's state mutex, so the Node
// sees it exactly as if the executor had run it, without a hop to the Node's thread and
// back. The Node's reply still arrives on the executor (never inline) and finishes the call.
template <typename Req, typename Resp>
grpc::ServerUnaryReactor* CallUnaryLocked(
    Node* node, AsioExecutor* executor, grpc::CallbackServerContext* ctx, const Req* req,
    Resp* resp, void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>)) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const RequestContext rc = ResolveRequestContext(ctx);
  absl::MutexLock lock(&executor->state_mutex());
  (node->*method)(rc, *req, [resp, reactor](absl::StatusOr<Resp> result) {
    if (result.ok()) *resp = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
  });
  return reactor;
}

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_KV_SERVICE_H_
