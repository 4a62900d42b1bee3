// etcdserverpb.Maintenance, Cluster and Auth. What geoetcd does not provide answers with a
// clear Unimplemented status (see README "Compatibility").
#ifndef GEOETCD_GATEWAY_ADMIN_SERVICES_H_
#define GEOETCD_GATEWAY_ADMIN_SERVICES_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/node.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "gateway/config.h"

namespace geoetcd {

class SnapshotStreamer;
class Storage;

// The etcd release geoetcd reports in StatusResponse.version. Kubernetes turns on
// progress-notify based consistent reads from 3.5.13.
inline constexpr const char* kEtcdCompatibleVersion = "3.5.17";

class MaintenanceService final : public etcdserverpb::Maintenance::CallbackService {
 public:
  // `snapshots` serves Snapshot calls and must outlive the gRPC server.
  MaintenanceService(Node* node, Executor* executor, Storage* storage,
                     SnapshotStreamer* snapshots)
      : node_(node), executor_(executor), storage_(storage), snapshots_(snapshots) {}

  grpc::ServerUnaryReactor* Alarm(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::AlarmRequest* req,
                                  etcdserverpb::AlarmResponse* resp) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::StatusRequest* req,
                                   etcdserverpb::StatusResponse* resp) override;
  grpc::ServerUnaryReactor* Defragment(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::DefragmentRequest* req,
                                       etcdserverpb::DefragmentResponse* resp) override;
  grpc::ServerUnaryReactor* Hash(grpc::CallbackServerContext* ctx,
                                 const etcdserverpb::HashRequest* req,
                                 etcdserverpb::HashResponse* resp) override;
  grpc::ServerUnaryReactor* HashKV(grpc::CallbackServerContext* ctx,
                                   const etcdserverpb::HashKVRequest* req,
                                   etcdserverpb::HashKVResponse* resp) override;
  grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* Snapshot(
      grpc::CallbackServerContext* ctx, const etcdserverpb::SnapshotRequest* req) override;
  grpc::ServerUnaryReactor* MoveLeader(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MoveLeaderRequest* req,
                                       etcdserverpb::MoveLeaderResponse* resp) override;
  grpc::ServerUnaryReactor* Downgrade(grpc::CallbackServerContext* ctx,
                                      const etcdserverpb::DowngradeRequest* req,
                                      etcdserverpb::DowngradeResponse* resp) override;

 private:
  Node* node_;
  Executor* executor_;
  Storage* storage_;
  SnapshotStreamer* snapshots_;
};

class ClusterService final : public etcdserverpb::Cluster::CallbackService {
 public:
  // The client URLs other regions advertised (they learn each other's over the peer
  // protocol), by member id; called from gRPC threads. A member missing from the answer
  // (not heard from yet) is listed without client URLs, as etcd lists a member that has not
  // published its attributes.
  using PeerClientUrls = std::function<std::map<uint64_t, std::vector<std::string>>()>;

  ClusterService(Node* node, Executor* executor, std::vector<etcdserverpb::Member> members,
                 PeerClientUrls peer_client_urls = nullptr)
      : node_(node),
        executor_(executor),
        members_(std::move(members)),
        peer_client_urls_(std::move(peer_client_urls)) {}

  grpc::ServerUnaryReactor* MemberAdd(grpc::CallbackServerContext* ctx,
                                      const etcdserverpb::MemberAddRequest* req,
                                      etcdserverpb::MemberAddResponse* resp) override;
  grpc::ServerUnaryReactor* MemberRemove(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberRemoveRequest* req,
                                         etcdserverpb::MemberRemoveResponse* resp) override;
  grpc::ServerUnaryReactor* MemberUpdate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::MemberUpdateRequest* req,
                                         etcdserverpb::MemberUpdateResponse* resp) override;
  grpc::ServerUnaryReactor* MemberList(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::MemberListRequest* req,
                                       etcdserverpb::MemberListResponse* resp) override;
  grpc::ServerUnaryReactor* MemberPromote(grpc::CallbackServerContext* ctx,
                                          const etcdserverpb::MemberPromoteRequest* req,
                                          etcdserverpb::MemberPromoteResponse* resp) override;

 private:
  bool IsMember(uint64_t id) const;

  Node* node_;
  Executor* executor_;
  std::vector<etcdserverpb::Member> members_;
  PeerClientUrls peer_client_urls_;
};

// Auth is not implemented: AuthStatus reports it disabled and Authenticate answers etcd's
// "authentication is not enabled", exactly as an etcd without auth does; changing users,
// roles or enabling auth is Unimplemented.
class AuthService final : public etcdserverpb::Auth::CallbackService {
 public:
  explicit AuthService(Node* node) : node_(node) {}
  grpc::ServerUnaryReactor* AuthStatus(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::AuthStatusRequest* req,
                                       etcdserverpb::AuthStatusResponse* resp) override;
  grpc::ServerUnaryReactor* Authenticate(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::AuthenticateRequest* req,
                                         etcdserverpb::AuthenticateResponse* resp) override;
  grpc::ServerUnaryReactor* AuthEnable(grpc::CallbackServerContext* ctx,
                                       const etcdserverpb::AuthEnableRequest* req,
                                       etcdserverpb::AuthEnableResponse* resp) override;

 private:
  Node* node_;
};

// The members of --initial-cluster, with this member's client URLs.
std::vector<etcdserverpb::Member> InitialMembers(const ServerConfig& config);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_ADMIN_SERVICES_H_
