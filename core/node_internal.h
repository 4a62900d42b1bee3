// Definitions shared by the Node's translation units (node*.cc). Not part of the Node's
// interface.
#ifndef GEOETCD_CORE_NODE_INTERNAL_H_
#define GEOETCD_CORE_NODE_INTERNAL_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "core/account.h"
#include "core/errors.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/node.h"
#include "core/quota.h"
#include "core/watch_hub.h"
#include "crdt/anti_entropy.h"
#include "crdt/merkle_tree.h"

namespace geoetcd {

struct Node::PendingForward {
  uint64_t id = 0;
  std::string account;
  PeerMessage message;  // the Forward, as sent
  int64_t deadline_ms = 0;
  int64_t sent_ms = 0;
  bool answered = false;  // W answered; waiting to apply its index
  std::function<void(absl::StatusOr<std::string>)> done;  // the serialized response
};

// Replies through the executor so a reply never runs inside the call that caused it.
template <typename T>
void PostReply(Executor* executor, Reply<T> reply, absl::StatusOr<T> result) {
  executor->Post([reply = std::move(reply), result = std::move(result)]() mutable {
    reply(std::move(result));
  });
}

// The Forward field of each request type a region forwards to the write region.
inline void SetForwardRequest(Forward* f, const etcdserverpb::PutRequest& r) {
  *f->mutable_put() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::DeleteRangeRequest& r) {
  *f->mutable_delete_range() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::TxnRequest& r) {
  *f->mutable_txn() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::CompactionRequest& r) {
  *f->mutable_compaction() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::LeaseGrantRequest& r) {
  *f->mutable_lease_grant() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::LeaseRevokeRequest& r) {
  *f->mutable_lease_revoke() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::LeaseKeepAliveRequest& r) {
  *f->mutable_lease_keep_alive() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::LeaseTimeToLiveRequest& r) {
  *f->mutable_lease_time_to_live() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::LeaseLeasesRequest& r) {
  *f->mutable_lease_leases() = r;
}
inline void SetForwardRequest(Forward* f, const etcdserverpb::AlarmRequest& r) {
  *f->mutable_alarm() = r;
}

template <typename Resp, typename Req>
bool Node::RouteToWriteRegion(const RequestContext& ctx, const Req& req, Reply<Resp>& reply) {
  Account* account = FindAccount(ctx.account);
  if (account == nullptr || IsWriteRegion(account)) return false;
  if (ctx.forwarded) {
    // Two regions that disagree on who the write region is: never bounce a request on.
    PostReply<Resp>(ports_.executor, std::move(reply), errors::NotLeader());
    return true;
  }
  if (static_cast<int64_t>(pending_forwards_.size()) >= options_.forwards_pending_max) {
    PostReply<Resp>(ports_.executor, std::move(reply), errors::TooManyRequests());
    return true;
  }
  auto pending = std::make_unique<PendingForward>();
  pending->id = ++next_forward_id_;
  pending->account = ctx.account;
  pending->message.mutable_forward()->set_id(pending->id);
  SetForwardRequest(pending->message.mutable_forward(), req);
  pending->deadline_ms = ports_.clock->MonotonicMs() + options_.forward_timeout_ms;
  pending->done = [reply = std::move(reply)](absl::StatusOr<std::string> bytes) {
    if (!bytes.ok()) return reply(bytes.status());
    Resp resp;
    if (!resp.ParseFromString(*bytes)) return reply(errors::Corrupt());
    reply(std::move(resp));
  };
  PendingForward& sent = *pending;
  pending_forwards_[sent.id] = std::move(pending);
  ++peer_stats_.forwards_sent;
  SendForward(sent);
  return true;
}

}  // namespace geoetcd

#endif  // GEOETCD_CORE_NODE_INTERNAL_H_
