#include "gateway/kv_service.h"

namespace geoetcd {

RequestContext ResolveRequestContext(const grpc::CallbackServerContext* ctx) {
  RequestContext rc;
  return rc;
}

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::RangeRequest* req,
                                           etcdserverpb::RangeResponse* resp) {
  const RequestContext rc = ResolveRequestContext(ctx);
  absl::StatusOr<etcdserverpb::RangeResponse> result;
  bool in_place = false;
  {
    absl::ReaderMutexLock lock(&executor_->state_mutex());
    in_place = node_->ReadsInPlace(rc, *req);
    if (in_place) result = node_->ReadRange(rc, *req);
  }
  // A linearizable read away from the write region waits for a read index.
  if (!in_place) return CallUnaryLocked(node_, executor_, ctx, req, resp, &Node::Range);
  if (result.ok()) *resp = *std::move(result);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(result.status()));
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::PutRequest* req,
                                         etcdserverpb::PutResponse* resp) {
  return CallUnaryLocked(node_, executor_, ctx, req, resp, &Node::Put);
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* ctx,
                                                 const etcdserverpb::DeleteRangeRequest* req,
                                                 etcdserverpb::DeleteRangeResponse* resp) {
  return CallUnaryLocked(node_, executor_, ctx, req, resp, &Node::DeleteRange);
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::TxnRequest* req,
                                         etcdserverpb::TxnResponse* resp) {
  return CallUnaryLocked(node_, executor_, ctx, req, resp, &Node::Txn);
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* ctx,
                                             const etcdserverpb::CompactionRequest* req,
                                             etcdserverpb::CompactionResponse* resp) {
  return CallUnaryLocked(node_, executor_, ctx, req, resp, &Node::Compact);
}

}  // namespace geoetcd
