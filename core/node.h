// Node: one region's event-driven state machine. It owns the accounts' keyspaces and
// sequences their mutations, and touches the world only through its ports.
//
// Threading: calls into the Node must be serialized with one another and with the callbacks
// the executor runs: make them on the executor's thread, or from a thread that excludes it
// meanwhile (the gateway holds its executor's state mutex). Every reply callback runs on
// the executor, never inline from the call that caused it.
//
// Durability: a mutation is applied to memory at once but answered only after its commit
// is durable. Requests that arrive while a storage write is in flight join the next batch
// (group commit). Reads are served at the durable revision, so no reply ever exposes state
// a crash could take back.
#ifndef GEOETCD_CORE_NODE_H_
#define GEOETCD_CORE_NODE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/auto_compactor.h"
#include "core/hlc.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/ports.h"
#include "core/random.h"
#include "core/watch_hub.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd {

// Deliberately wrong behaviours, set only by the simulator (`geoetcd-sim --inject-bug`) to
// prove that its checkers catch them. Production code never sets any of these.
struct InjectedBugs {
  // Replies to mutations before their commit is durable.
  bool ack_before_fsync = false;
  // Serves Range one revision behind the durable revision.
  bool stale_linearizable_read = false;
  // Synced watchers lose the first event of every revision divisible by 10 (WatchHub).
  bool skip_watch_event = false;
  // Recovery ignores the newest durable commit, so the next write reuses its revision.
  bool reuse_revision_after_crash = false;
  // A multi-op Txn is persisted by two separately synced storage writes, so a crash
  // between them persists part of it.
  bool txn_not_atomic = false;
  // A lease's revoke or expiry deletes its keys one commit (revision) per key.
  bool lease_revoke_not_atomic = false;
};

struct NodeOptions {
  std::string name = "default";
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  // etcd's --max-request-bytes: the largest mutation accepted.
  int64_t request_bytes_max = 1572864;
  int64_t txn_ops_max = 128;
  // Requests waiting for durability, beyond which new mutations get TooManyRequests.
  int64_t pending_requests_max = 20000;
  // etcd's --experimental-watch-progress-notify-interval (raised to 100 ms if below).
  int64_t watch_progress_notify_interval_ms = 10 * 60 * 1000;
  // Lease expiry: the shortest TTL granted, how often expiry is checked, and how many
  // leases one check revokes at most (etcd revokes up to 1000 per second).
  int64_t lease_ttl_min_s = 2;
  int64_t lease_tick_ms = 500;
  int64_t lease_revokes_per_tick_max = 500;
  // etcd's --auto-compaction-mode/--auto-compaction-retention (off by default).
  AutoCompactionPolicy auto_compaction;
  // etcd's --quota-backend-bytes, per account: the used bytes (core/quota.h) a write may
  // bring an account to before it is refused and NOSPACE is raised. Negative: no quota.
  int64_t quota_bytes = int64_t{2} << 30;
  // Called once if storage fails: the node stops serving (fail-stop). Defaults to abort.
  std::function<void(const absl::Status&)> on_fatal;
  InjectedBugs bugs;
};

struct Ports {
  Clock* clock = nullptr;
  Executor* executor = nullptr;
  Transport* transport = nullptr;  // unused with one region
  Storage* storage = nullptr;
};

// Per-request facts the gateway resolved from the call.
struct RequestContext {
  std::string account = "default";
};

template <typename T>
using Reply = std::function<void(absl::StatusOr<T>)>;

class Node {
 public:
  static constexpr const char* kDefaultAccount = "default";

  Node(NodeOptions options, Ports ports, Random random);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Loads every account from storage. Must succeed before any request.
  absl::Status Start();

  void Range(const RequestContext& ctx, const etcdserverpb::RangeRequest& req,
             Reply<etcdserverpb::RangeResponse> reply);
  // Range answered in place, at the durable revision. Unlike every other method it may run
  // on any thread, provided the caller excludes the Node's thread meanwhile (the gateway
  // holds its executor's state mutex shared); it reads the Node and changes nothing.
  absl::StatusOr<etcdserverpb::RangeResponse> ReadRange(
      const RequestContext& ctx, const etcdserverpb::RangeRequest& req) const;
  void Put(const RequestContext& ctx, const etcdserverpb::PutRequest& req,
           Reply<etcdserverpb::PutResponse> reply);
  void DeleteRange(const RequestContext& ctx, const etcdserverpb::DeleteRangeRequest& req,
                   Reply<etcdserverpb::DeleteRangeResponse> reply);
  void Txn(const RequestContext& ctx, const etcdserverpb::TxnRequest& req,
           Reply<etcdserverpb::TxnResponse> reply);
  void Compact(const RequestContext& ctx, const etcdserverpb::CompactionRequest& req,
               Reply<etcdserverpb::CompactionResponse> reply);

  // --- Watch (etcdserverpb.Watch): a stream multiplexes watchers of one account; see
  // core/watch_hub.h for the semantics and the sink contract. Responses go to the sink on
  // this thread, never inline from the call that caused them.
  absl::StatusOr<uint64_t> OpenWatchStream(const RequestContext& ctx, WatchSink sink);
  // A create, cancel or progress request on the stream (handled in order, posted).
  void WatchRequest(uint64_t stream_id, const etcdserverpb::WatchRequest& req);
  // The stream's buffer has room again after its sink refused a response.
  void ResumeWatchStream(uint64_t stream_id);
  // Removes the stream and its watchers; the sink is not called after this returns.
  void CloseWatchStream(uint64_t stream_id);
  // The account's watchers, for tests and metrics (nullptr if no such account).
  const WatchHub* watch_hub(const std::string& account = kDefaultAccount) const;

  // --- Lease (etcdserverpb.Lease), kept at the account's write region; see core/lessor.h.
  // Grants and revokes are durable before they are answered; keep-alives are not persisted
  // (a restart grants every lease its full TTL again, as etcd without checkpoints).
  void LeaseGrant(const RequestContext& ctx, const etcdserverpb::LeaseGrantRequest& req,
                  Reply<etcdserverpb::LeaseGrantResponse> reply);
  void LeaseRevoke(const RequestContext& ctx, const etcdserverpb::LeaseRevokeRequest& req,
                   Reply<etcdserverpb::LeaseRevokeResponse> reply);
  void LeaseKeepAlive(const RequestContext& ctx, const etcdserverpb::LeaseKeepAliveRequest& req,
                      Reply<etcdserverpb::LeaseKeepAliveResponse> reply);
  void LeaseTimeToLive(const RequestContext& ctx,
                       const etcdserverpb::LeaseTimeToLiveRequest& req,
                       Reply<etcdserverpb::LeaseTimeToLiveResponse> reply);
  void LeaseLeases(const RequestContext& ctx, const etcdserverpb::LeaseLeasesRequest& req,
                   Reply<etcdserverpb::LeaseLeasesResponse> reply);

  // --- Maintenance facts the gateway reports (Status, Hash, HashKV).
  void HashKV(const RequestContext& ctx, const etcdserverpb::HashKVRequest& req,
              Reply<etcdserverpb::HashKVResponse> reply);

  // --- Alarms (etcdserverpb.Maintenance/Alarm) of the account; see core/quota.h. GET lists
  // them, ACTIVATE raises NOSPACE (or NONE) as etcd does, DEACTIVATE disarms; changes are
  // durable before the reply. Raising CORRUPT is Unimplemented. As in etcd, the response
  // carries no header.
  void Alarm(const RequestContext& ctx, const etcdserverpb::AlarmRequest& req,
             Reply<etcdserverpb::AlarmResponse> reply);
  // The account's active alarms (for Status `errors`), and its used bytes against the quota.
  std::vector<etcdserverpb::AlarmMember> alarms(
      const std::string& account = kDefaultAccount) const;
  int64_t used_bytes(const std::string& account = kDefaultAccount) const;

  // Fills cluster_id, member_id and raft_term (the epoch) of a response header.
  void FillHeader(etcdserverpb::ResponseHeader* header) const;

  // Observability (for Status/metrics and tests).
  int64_t durable_revision(const std::string& account = kDefaultAccount) const;
  int64_t head_revision(const std::string& account = kDefaultAccount) const;
  int64_t compact_revision(const std::string& account = kDefaultAccount) const;
  uint64_t storage_writes() const { return storage_writes_; }
  bool failed() const { return !fatal_.ok(); }
  const NodeOptions& options() const { return options_; }

  // Checks every component's invariants; aborts on violation.
  void CheckInvariants() const;

 private:
  struct Account;
  struct Waiter {
    uint64_t batch_seq;  // runs once this batch is durable
    std::function<void()> fn;
  };

  Account* FindAccount(const std::string& name);
  // Stopped after a storage failure; NotFound for an unknown account.
  absl::Status CheckServing(const Account* account) const;
  // Gives a freshly loaded account its watch hub and makes its commits feed it.
  void AttachWatchHub(Account* account);
  WatchHub* FindWatchStream(uint64_t stream_id);
  // Runs `mutate` for a write request after the shared checks; replies once durable.
  template <typename Resp, typename Req, typename Fn>
  void Mutate(const RequestContext& ctx, const Req& req, Reply<Resp> reply, Fn mutate);
  // Queues `fn` to run once everything staged so far is durable.
  void AfterDurable(std::function<void()> fn);
  void MaybeWrite();
  void OnWriteDone(uint64_t seq, absl::Status status);
  void Fail(const absl::Status& status);
  CommitStamp NextStamp();
  // The space quota for a write costing `cost_bytes` (core/quota.h): NoSpace when refused,
  // raising NOSPACE (durably, in the next batch) when the write would exceed the quota.
  absl::Status AdmitWrite(Account* account, int64_t cost_bytes);
  absl::Status RecoverAlarms(Account* account);
  // Stages the account's alarm record into the open batch.
  void StageAlarms(Account* account);
  // Loads the account's leases from storage; each gets its full TTL from now.
  absl::Status RecoverLeases(Account* account);
  // Revokes leases whose TTL ran out, then re-arms itself (every lease_tick_ms).
  void ExpireLeases();
  // Deletes the lease's keys in one commit and its record; returns the revision after.
  int64_t RevokeLease(Account* account, int64_t id);
  // Runs the auto-compaction policy of every account, then re-arms itself.
  void AutoCompact();

  NodeOptions options_;
  Ports ports_;
  Random random_;
  HlcClock hlc_;
  uint64_t epoch_ = 1;
  std::map<std::string, std::unique_ptr<Account>> accounts_;
  std::map<uint64_t, std::string> watch_streams_;  // stream id -> account
  uint64_t next_watch_stream_id_ = 1;

  // Group commit state: `staged_` collects the next batch while `in_flight_` is written.
  WriteBatch staged_;
  uint64_t staged_seq_ = 1;     // the batch sequence the next staged work belongs to
  bool in_flight_ = false;
  uint64_t durable_seq_ = 0;    // every batch up to this one is durable
  std::deque<Waiter> waiters_;  // ascending batch_seq
  uint64_t storage_writes_ = 0;
  // InjectedBugs::txn_not_atomic: where the staged batch is cut into two storage writes
  // (0: not cut).
  size_t bug_split_at_ = 0;
  absl::Status fatal_ = absl::OkStatus();
  bool started_ = false;
  Executor::TimerId lease_timer_ = 0;
  Executor::TimerId compaction_timer_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_NODE_H_
