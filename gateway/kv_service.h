// etcdserverpb.KV over gRPC's callback API. Mutations are handed to the Node on its executor
// and finished by the Node's reply. Range is answered on the calling gRPC thread while it
// holds the executor's state mutex shared, so reads scale over gRPC's threads and never
// wait in the Node's queue behind writes.
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

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_KV_SERVICE_H_
