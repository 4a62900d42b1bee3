// etcdserverpb.Lease over gRPC. Unary calls go straight to the Node; KeepAlive is a
// bidirectional stream answered one request at a time (read, renew, write, read again), so
// a client that floods keep-alives is paced by its own reads and nothing buffers.
#ifndef GEOETCD_GATEWAY_LEASE_SERVICE_H_
#define GEOETCD_GATEWAY_LEASE_SERVICE_H_

#include "core/node.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd {

class LeaseService final : public etcdserverpb::Lease::CallbackService {
 public:
  LeaseService(Node* node, Executor* executor) : node_(node), executor_(executor) {}

  grpc::ServerUnaryReactor* LeaseGrant(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::LeaseGrantRequest* req,
                                       etcdserverpb::LeaseGrantResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseRevoke(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseRevokeRequest* req,
                                        etcdserverpb::LeaseRevokeResponse* resp) override;
  grpc::ServerBidiReactor<etcdserverpb::LeaseKeepAliveRequest,
                          etcdserverpb::LeaseKeepAliveResponse>*
  LeaseKeepAlive(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* LeaseTimeToLive(grpc::CallbackServerContext* ctx,
                                            const etcdserverpb::LeaseTimeToLiveRequest* req,
                                            etcdserverpb::LeaseTimeToLiveResponse* resp) override;
  grpc::ServerUnaryReactor* LeaseLeases(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::LeaseLeasesRequest* req,
                                        etcdserverpb::LeaseLeasesResponse* resp) override;

 private:
  Node* node_;
  Executor* executor_;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_LEASE_SERVICE_H_
