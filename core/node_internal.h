// Definitions shared by the Node's translation units (node.cc, node_lease.cc). Not part of
// the Node's interface.
#ifndef GEOETCD_CORE_NODE_INTERNAL_H_
#define GEOETCD_CORE_NODE_INTERNAL_H_

#include <memory>
#include <string>
#include <utility>

#include "core/errors.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/node.h"
#include "core/quota.h"
#include "core/watch_hub.h"

namespace geoetcd {

// W's view of one other region's copy of an account's log.
struct PeerProgress {
  uint64_t next_index = 1;   // the next entry to send
  uint64_t match_index = 0;  // the region applied everything up to here
  uint64_t durable_index = 0;
  int64_t last_progress_ms = 0;  // when match_index last advanced (or we went back)
  // The last go-back on a gap report: from which index, and when. Later reports of the same
  // hole (the rest of the lost window arriving) are ignored for retransmit_ms.
  uint64_t resent_from = 0;
  int64_t resent_ms = 0;
  // Messages in flight: (last index in it, bytes), ascending; bounded by
  // replication_window_bytes.
  std::deque<std::pair<uint64_t, int64_t>> inflight;
  int64_t inflight_bytes = 0;
};

struct PendingRead {
  RequestContext ctx;
  etcdserverpb::RangeRequest req;
  Reply<etcdserverpb::RangeResponse> reply;
  int64_t deadline_ms = 0;
};

struct Node::ReadBatch {
  std::vector<PendingRead> reads;
  int64_t sent_ms = 0;
};

struct Node::PendingForward {
  uint64_t id = 0;
  std::string account;
  PeerMessage message;  // the Forward, as sent
  int64_t deadline_ms = 0;
  int64_t sent_ms = 0;
  bool answered = false;  // W answered; waiting to apply its index
  std::function<void(absl::StatusOr<std::string>)> done;  // the serialized response
};

struct Node::Account {
  Account(const std::string& name, const KvLimits& limits, int64_t lease_ttl_min_s)
      : lessor(lease_ttl_min_s), kv(name, limits, &lessor) {}
  const std::string& name() const { return kv.account(); }
  Lessor lessor;
  KvStore kv;
  int64_t durable_rev = 1;  // reads are served here
  int64_t sealed_rev = 1;   // head revision when the in-flight batch was sealed
  int64_t pending_compact_rev = -1;
  std::unique_ptr<AutoCompactor> auto_compactor;  // null unless auto compaction is on
  AlarmSet alarms;
  // The bytes counted against the space quota (core/quota.h).
  int64_t used_bytes() const {
    return kv.keyspace().stored_bytes() +
           static_cast<int64_t>(lessor.size()) * kLeaseOverheadBytes;
  }
  std::unique_ptr<WatchHub> watches;  // declared after kv: destroyed before it

  // --- The replicated log (LogEntry). Indexes are dense from 1; the tail holds the newest
  // entries, contiguous and ending at head_index.
  uint64_t write_region = 0;  // member id
  uint64_t epoch = 1;
  uint64_t head_index = 0;     // staged (applied in memory)
  uint64_t sealed_index = 0;   // head when the in-flight batch was sealed
  uint64_t durable_index = 0;  // durable; reads and answers wait for this
  uint64_t first_index = 1;    // the oldest entry the log still holds
  std::deque<LogEntry> tail;
  int64_t tail_bytes = 0;
  std::multimap<uint64_t, std::function<void()>> index_waiters;
  // At W: every other region's progress.
  std::map<uint64_t, PeerProgress> peers;
  // Away from W: linearizable reads waiting for a read index.
  std::vector<PendingRead> unsent_reads;
  std::map<uint64_t, Node::ReadBatch> inflight_reads;  // by read index request id
  int64_t last_pull_ms = -1;
  // Away from W: the newest durable index an Append (W's, or a peer's answering a pull)
  // announced; what this region's lag is measured against.
  uint64_t announced_durable_index = 0;
  // The write region's digest, at this region's applied index, carried another register
  // tree root: this region's state is not W's for the same log (a bug, a damaged disk).
  // It then refuses reads with etcd's "corrupt cluster" and reports the CORRUPT alarm,
  // until a restart (which detects it again at W's next digest, or repairs it once Merkle
  // repair exists).
  bool diverged = false;
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
