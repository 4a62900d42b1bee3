#include "gateway/admin_services.h"

#include <algorithm>

#include "core/errors.h"
#include "core/quota.h"
#include "gateway/grpc_status.h"
#include "gateway/kv_service.h"
#include "gateway/server.h"
#include "gateway/snapshot_stream.h"

namespace geoetcd {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

// Runs `fill` on the Node's thread (where its state may be read) and finishes the call.
template <typename Fn>
grpc::ServerUnaryReactor* OnNodeThread(Executor* executor, grpc::CallbackServerContext* ctx,
                                       Fn fill) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  executor->Post([reactor, fill] { reactor->Finish(ToGrpcStatus(fill())); });
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* MaintenanceService::Alarm(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::AlarmRequest* req,
                                                    etcdserverpb::AlarmResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::Alarm);
}

grpc::ServerUnaryReactor* MaintenanceService::Status(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::StatusRequest* req,
                                                     etcdserverpb::StatusResponse* resp) {
  return OnNodeThread(executor_, ctx, [this, resp] {
    node_->FillHeader(resp->mutable_header());
    const int64_t rev = node_->durable_revision();
    resp->mutable_header()->set_revision(rev);
    resp->set_version(kEtcdCompatibleVersion);
    // dbSizeInUse is the logical size the space quota compares (core/quota.h). dbSize is
    // what RocksDB holds on disk, or that logical size when larger (compression): like
    // etcd's, it never falls below dbSizeInUse, and dbSize against --quota-backend-bytes
    // shows how near NOSPACE is.
    const int64_t used = node_->used_bytes();
    resp->set_dbsize(std::max(storage_->ApproximateSizeBytes(), used));
    resp->set_dbsizeinuse(used);
    // etcd lists every active alarm in `errors`, as gogoproto prints an AlarmMember.
    for (const auto& alarm : node_->alarms()) resp->add_errors(AlarmText(alarm));
    // The "leader" is the write region of the account `default`, where every mutation is
    // sequenced. Raft indexes map to this region's durable revision and the term to the
    // write region's epoch (docs/operations.md).
    resp->set_leader(node_->write_region());
    resp->set_raftindex(static_cast<uint64_t>(rev));
    resp->set_raftappliedindex(static_cast<uint64_t>(rev));
    resp->set_raftterm(resp->header().raft_term());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MaintenanceService::Defragment(
    grpc::CallbackServerContext* ctx, const etcdserverpb::DefragmentRequest* req,
    etcdserverpb::DefragmentResponse* resp) {
  // RocksDB compaction reclaims deleted space; it is thread-safe and runs on this gRPC
  // thread so the Node keeps serving meanwhile.
  // etcd answers an empty DefragmentResponse (no header), and so does geoetcd.
  return FinishNow(ctx, storage_->CompactRange("", ""));
}

grpc::ServerUnaryReactor* MaintenanceService::Hash(grpc::CallbackServerContext* ctx,
                                                   const etcdserverpb::HashRequest* req,
                                                   etcdserverpb::HashResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  executor_->Post([this, reactor, resp, rc = ResolveRequestContext(ctx)] {
    node_->HashKV(rc, etcdserverpb::HashKVRequest(), [reactor, resp](auto result) {
      if (result.ok()) {
        *resp->mutable_header() = result->header();
        resp->set_hash(result->hash());
      }
      reactor->Finish(ToGrpcStatus(result.status()));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* MaintenanceService::HashKV(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::HashKVRequest* req,
                                                     etcdserverpb::HashKVResponse* resp) {
  return DispatchUnary(node_, executor_, ctx, req, resp, &Node::HashKV);
}

grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* MaintenanceService::Snapshot(
    grpc::CallbackServerContext* ctx, const etcdserverpb::SnapshotRequest* req) {
  return snapshots_->Start(ctx);
}

grpc::ServerUnaryReactor* MaintenanceService::MoveLeader(
    grpc::CallbackServerContext* ctx, const etcdserverpb::MoveLeaderRequest* req,
    etcdserverpb::MoveLeaderResponse* resp) {
  return FinishNow(ctx, errors::Unimplemented("move-leader (the write region is per account)"));
}

grpc::ServerUnaryReactor* MaintenanceService::Downgrade(grpc::CallbackServerContext* ctx,
                                                        const etcdserverpb::DowngradeRequest* req,
                                                        etcdserverpb::DowngradeResponse* resp) {
  return FinishNow(ctx, errors::Unimplemented("downgrade"));
}

namespace {

absl::Status MembershipFixed() {
  return errors::Unimplemented(
      "membership change (regions are fixed by --initial-cluster in this version)");
}

}  // namespace

bool ClusterService::IsMember(uint64_t id) const {
  for (const auto& m : members_) {
    if (m.id() == id) return true;
  }
  return false;
}

grpc::ServerUnaryReactor* ClusterService::MemberAdd(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::MemberAddRequest* req,
                                                    etcdserverpb::MemberAddResponse* resp) {
  return FinishNow(ctx, MembershipFixed());
}

// Remove, Update and Promote name a member: an ID that is not one gets etcd's own answer
// (clients such as etcdctl recognize it); only a real change is refused as unimplemented.
grpc::ServerUnaryReactor* ClusterService::MemberRemove(
    grpc::CallbackServerContext* ctx, const etcdserverpb::MemberRemoveRequest* req,
    etcdserverpb::MemberRemoveResponse* resp) {
  return FinishNow(ctx, IsMember(req->id()) ? MembershipFixed() : errors::MemberNotFound());
}

grpc::ServerUnaryReactor* ClusterService::MemberUpdate(
    grpc::CallbackServerContext* ctx, const etcdserverpb::MemberUpdateRequest* req,
    etcdserverpb::MemberUpdateResponse* resp) {
  return FinishNow(ctx, IsMember(req->id()) ? MembershipFixed() : errors::MemberNotFound());
}

grpc::ServerUnaryReactor* ClusterService::MemberPromote(
    grpc::CallbackServerContext* ctx, const etcdserverpb::MemberPromoteRequest* req,
    etcdserverpb::MemberPromoteResponse* resp) {
  // Every region is a voting member (there are no learners), so promoting one is what
  // etcd refuses for a voting member.
  return FinishNow(ctx,
                   IsMember(req->id()) ? errors::MemberNotLearner() : errors::MemberNotFound());
}

grpc::ServerUnaryReactor* ClusterService::MemberList(grpc::CallbackServerContext* ctx,
                                                     const etcdserverpb::MemberListRequest* req,
                                                     etcdserverpb::MemberListResponse* resp) {
  std::map<uint64_t, std::vector<std::string>> learned;
  if (peer_client_urls_) learned = peer_client_urls_();
  return OnNodeThread(executor_, ctx, [this, resp, learned = std::move(learned)] {
    // etcd's Cluster service fills cluster, member and term but never the revision.
    node_->FillHeader(resp->mutable_header());
    for (const auto& m : members_) {
      etcdserverpb::Member* member = resp->add_members();
      *member = m;
      auto it = learned.find(m.id());
      if (member->clienturls().empty() && it != learned.end()) {
        for (const auto& url : it->second) member->add_clienturls(url);
      }
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AuthService::AuthStatus(grpc::CallbackServerContext* ctx,
                                                  const etcdserverpb::AuthStatusRequest* req,
                                                  etcdserverpb::AuthStatusResponse* resp) {
  node_->FillHeader(resp->mutable_header());
  resp->set_enabled(false);
  return FinishNow(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthService::Authenticate(grpc::CallbackServerContext* ctx,
                                                    const etcdserverpb::AuthenticateRequest* req,
                                                    etcdserverpb::AuthenticateResponse* resp) {
  return FinishNow(ctx, errors::AuthNotEnabled());
}

grpc::ServerUnaryReactor* AuthService::AuthEnable(grpc::CallbackServerContext* ctx,
                                                  const etcdserverpb::AuthEnableRequest* req,
                                                  etcdserverpb::AuthEnableResponse* resp) {
  return FinishNow(ctx, errors::Unimplemented("auth"));
}

std::vector<etcdserverpb::Member> InitialMembers(const ServerConfig& config) {
  std::vector<etcdserverpb::Member> members;
  auto parsed = ParseInitialCluster(config.initial_cluster);
  if (!parsed.ok()) return members;
  for (const auto& m : *parsed) {
    ServerConfig as_member = config;
    as_member.name = m.name;
    as_member.initial_advertise_peer_urls = m.peer_urls;
    etcdserverpb::Member member;
    member.set_id(ComputeMemberId(as_member));
    member.set_name(m.name);
    for (const auto& url : m.peer_urls) member.add_peerurls(url);
    if (m.name == config.name) {
      for (const auto& url : config.advertise_client_urls) member.add_clienturls(url);
    }
    members.push_back(std::move(member));
  }
  return members;
}

}  // namespace geoetcd
