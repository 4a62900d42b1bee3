// Node: one region's event-driven state machine. It owns the accounts' keyspaces, sequences
// the mutations of the accounts it is the write region of, applies the replicated log of
// the others, and touches the world only through its ports.
//
// Regions (ARCHITECTURE.md §2): every account has one write region W. A mutation that
// reaches this region while W is another one is forwarded to W over the Transport and
// answered here once this region has applied (made durable) the log index W's answer
// depends on, so the client reads its own write here. W appends every commit to the
// account's log (LogEntry, geoetcd/storage.proto) and streams the durable log to every
// region in index order; a region applies entries contiguously and acknowledges what it
// holds. A linearizable Range away from W first learns W's durable index (a read index,
// shared by the reads waiting meanwhile); a serializable one is answered from this region's
// durable state at once. Regions also gossip digests with a random peer and pull missing
// entries from whichever peer has them, so a region cut off from W catches up through a
// third one. Peer messages are geoetcd.PeerMessage (geoetcd/peer.proto).
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

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/auto_compactor.h"
#include "core/hlc.h"
#include "core/injected_bugs.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/ports.h"
#include "core/random.h"
#include "core/watch_hub.h"
#include "crdt/anti_entropy.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "geoetcd/peer.pb.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd {

// When the write region acknowledges a write (ARCHITECTURE.md §1, an account's write
// quorum): once it is durable at W (`local`), at a majority of the regions, or at all of
// them. A write whose quorum is not reached within forward_timeout_ms gets etcd's "request
// timed out" (it stays applied at W and is acknowledged by nobody; as with etcd, its
// outcome is then unknown to the client).
enum class WriteQuorum { kLocal, kMajority, kAll };
const char* WriteQuorumName(WriteQuorum q);

// One region of the deployment, as --initial-cluster names it.
struct RegionInfo {
  uint64_t id = 0;  // the member id: also the Transport address
  std::string name;
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
  // Every region of the deployment, this one included; empty means this region alone.
  std::vector<RegionInfo> regions;
  // The write region (member id) of the account `default`; 0 means this region.
  uint64_t write_region = 0;
  // The write quorum of the account `default`. The server starts a deployment of several
  // regions with kMajority (a drop-in etcd cluster loses no acknowledged write).
  WriteQuorum write_quorum = WriteQuorum::kLocal;
  // A forwarded mutation or read index not answered within this gets etcd's "request timed
  // out"; unanswered ones are sent again every forward_retry_ms meanwhile (W executes each
  // forward at most once).
  int64_t forward_timeout_ms = 5000;
  int64_t forward_retry_ms = 500;
  // The replication clock: heartbeats and retries run every tick; W resends from what a
  // region acknowledged when it made no progress for retransmit_ms.
  int64_t replication_tick_ms = 50;
  int64_t retransmit_ms = 500;
  // Anti-entropy: a digest to a random peer this often.
  int64_t gossip_interval_ms = 1000;
  // Replication flow control: bytes of log entries per message, and bytes sent to one
  // region beyond what it has acknowledged.
  int64_t append_bytes_max = 1 << 20;
  int64_t replication_window_bytes = 8 << 20;
  // Recent log entries kept in memory for streaming; older ones are read from storage.
  int64_t log_tail_bytes_max = 64 << 20;
  // W truncates its log below the compaction point, except what a region that is at most
  // this many entries behind still needs; a region further behind (down, or cut off for
  // long) then catches up by Merkle repair (core/node_repair.cc) instead of holding W's log
  // without bound. etcd keeps 5,000 entries for a slow follower after a snapshot.
  int64_t log_catchup_entries_max = 100000;
  // Forwards awaiting W's answer, beyond which new ones get TooManyRequests.
  int64_t forwards_pending_max = 20000;
  // Forwards this region remembers having executed (W's at-most-once table).
  int64_t forward_dedup_max = 100000;
  // Levels of the register tree gossiped between regions (crdt/merkle_tree.h): 16^depth
  // leaves. The simulator's keyspaces are tiny and use a small one.
  int merkle_depth = kMerkleDepthDefault;
  // Called when a Merkle repair is staged for install: once that batch is durable (and after
  // a crash from then on) the account holds another region's state at `revision`, its
  // compaction point (for tests and logs; may be empty).
  std::function<void(const std::string& account, int64_t revision)> on_repaired;
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
  // Set for a request a peer forwarded: it is never forwarded again.
  bool forwarded = false;
};

// Counters of the region protocol (for metrics and tests).
struct PeerStats {
  uint64_t sent = 0;
  uint64_t received = 0;
  uint64_t dropped_unparsable = 0;
  uint64_t dropped_foreign = 0;       // another cluster id, or an unknown region
  uint64_t dropped_future_epoch = 0;  // an epoch this region has not reached
  uint64_t forwards_sent = 0;
  uint64_t forwards_executed = 0;
  uint64_t forwards_deduplicated = 0;
  uint64_t forward_timeouts = 0;
  uint64_t entries_applied = 0;
  uint64_t entries_sent = 0;
  uint64_t pulls_sent = 0;
  uint64_t read_index_rounds = 0;
  // Digests from a region at this region's applied index whose register tree differs: the
  // two hold different states for one log prefix (a bug or a corrupted disk). When the
  // sender is the write region this region refuses reads ("etcdserver: corrupt cluster")
  // and reports etcd's CORRUPT alarm in Status.
  uint64_t digests_diverged = 0;
  // Serialized bytes of anti-entropy messages sent: digests, pulls, the entries sent in
  // answer to a pull, and Merkle repair requests and replies (not W's replication stream).
  uint64_t antientropy_bytes_sent = 0;
  // Merkle repair: runs this region started, installed and gave up (a source that went
  // away or refused, no progress within forward_timeout_ms, a root that did not match),
  // the bytes of repair replies it received, and sessions it served as a source.
  uint64_t repairs_started = 0;
  uint64_t repairs_completed = 0;
  uint64_t repairs_abandoned = 0;
  uint64_t repair_bytes_received = 0;
  uint64_t repair_registers_received = 0;
  uint64_t repair_sessions_served = 0;
};

// The sizes of the Node's storage writes (group commit): how many log entries each held.
struct GroupCommitStats {
  // buckets[i] counts writes of at most 2^i entries (and more than 2^(i-1)); the last one
  // counts writes of more than 2^(kBuckets - 1).
  static constexpr int kBuckets = 14;
  std::array<uint64_t, kBuckets + 1> buckets{};
  uint64_t writes = 0;
  uint64_t entries = 0;
};

// One account as metrics see it (Node::account_stats()).
struct AccountStats {
  std::string name;
  uint64_t write_region = 0;
  uint64_t epoch = 0;
  uint64_t durable_index = 0;
  uint64_t applied_index = 0;
  int64_t revision = 0;
  int64_t live_keys = 0;
  bool diverged = false;
  // Log entries a region lacks of what the write region has made durable, by member id. At
  // W: every other region, from its acknowledgements. Elsewhere: this region only, against
  // the newest durable index W (or a peer relaying it) announced.
  std::map<uint64_t, uint64_t> lag_entries;
  // At W only, for every other region: how old (by W's clock) the oldest entry it lacks is,
  // 0 when it lacks none. When that entry has left W's in-memory tail, how long the region
  // has made no progress (a lower bound).
  std::map<uint64_t, int64_t> lag_ms;
};

template <typename T>
using Reply = std::function<void(absl::StatusOr<T>)>;

struct Account;       // core/account.h
struct PeerProgress;  // core/account.h
struct ReadBatch;     // core/account.h

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
  // REQUIRES: ReadsInPlace(ctx, req); otherwise only Range() can answer it.
  absl::StatusOr<etcdserverpb::RangeResponse> ReadRange(
      const RequestContext& ctx, const etcdserverpb::RangeRequest& req) const;
  // True when ReadRange can answer: a serializable read, a read at the account's write
  // region, or one that fails at once. Same threading rule as ReadRange.
  bool ReadsInPlace(const RequestContext& ctx, const etcdserverpb::RangeRequest& req) const;
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
  // The account's keyspace, for the simulator's checkers (nullptr if no such account).
  const Keyspace* keyspace(const std::string& account = kDefaultAccount) const;

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
  uint64_t member_id() const { return options_.member_id; }
  // The account's write region (member id); 0 for an unknown account.
  uint64_t write_region(const std::string& account = kDefaultAccount) const;
  uint64_t durable_index(const std::string& account = kDefaultAccount) const;
  uint64_t applied_index(const std::string& account = kDefaultAccount) const;
  const PeerStats& peer_stats() const { return peer_stats_; }
  const GroupCommitStats& group_commit_stats() const { return group_commit_stats_; }
  // Every account, ordered by name.
  std::vector<AccountStats> account_stats() const;
  // The canonical hash of the account's live keys at `rev` (as HashKV), and its newest log
  // entries, for the simulator's convergence checker. REQUIRES: the account exists.
  uint64_t KvHashAt(const std::string& account, int64_t rev) const;
  const std::deque<LogEntry>& log_tail(const std::string& account = kDefaultAccount) const;
  int64_t durable_revision(const std::string& account = kDefaultAccount) const;
  int64_t head_revision(const std::string& account = kDefaultAccount) const;
  int64_t compact_revision(const std::string& account = kDefaultAccount) const;
  // The root of the account's register tree at its applied index; 0 with one region (no
  // tree is kept) or an unknown account.
  uint64_t merkle_root(const std::string& account = kDefaultAccount) const;
  uint64_t storage_writes() const { return storage_writes_; }
  bool failed() const { return !fatal_.ok(); }
  const NodeOptions& options() const { return options_; }

  // Checks every component's invariants; aborts on violation.
  void CheckInvariants() const;
  // Checks that every account's register tree matches its keyspace (slower: O(keys)).
  void CheckRegisterTrees() const;

 private:
  struct Waiter {
    uint64_t batch_seq;  // runs once this batch is durable
    std::function<void()> fn;
  };

  struct PendingForward;

  Account* FindAccount(const std::string& name);
  bool IsWriteRegion(const Account* account) const;
  // --- Log (node_log.cc): every change of an account is one LogEntry, staged with it.
  // Fills in the entry's index, epoch and origin, stages it and keeps it in the tail.
  void StageEntry(Account* account, LogEntry entry);
  // Applies an entry sequenced elsewhere. REQUIRES: entry.index() == head index + 1.
  absl::Status ApplyEntry(Account* account, const LogEntry& entry);
  absl::Status RecoverLog(Account* account);
  // Entries (from_index ...] up to `to_index`, at most append_bytes_max bytes (at least one
  // entry), from the tail or storage.
  std::vector<LogEntry> ReadEntries(Account* account, uint64_t from_index, uint64_t to_index);
  // W: where its log may start: below the compaction point, and only what every region
  // has made durable.
  uint64_t LogTruncationPoint(Account* account);
  // Drops the log below `keep_from` (never the newest entry).
  void TruncateLog(Account* account, uint64_t keep_from);
  // Runs `fn` once the account's durable index reaches `index`.
  void WhenDurable(Account* account, uint64_t index, std::function<void()> fn);
  // --- Regions (node_region.cc).
  // `antientropy`: counts the message in PeerStats::antientropy_bytes_sent (digests, pulls
  // and repair messages always count).
  void Send(uint64_t to, const std::string& account, PeerMessage message,
            bool antientropy = false);
  void OnPeerMessage(uint64_t from, std::string payload);
  // Forwards a mutation to the account's write region when this region is not it; true
  // when it did (the reply then comes from W's answer).
  template <typename Resp, typename Req>
  bool RouteToWriteRegion(const RequestContext& ctx, const Req& req, Reply<Resp>& reply);
  void SendForward(PendingForward& pending);
  void HandleForward(uint64_t from, Account* account, const Forward& forward);
  // Runs a forwarded request as if a client of this region had sent it.
  void Dispatch(const RequestContext& ctx, const Forward& forward,
                std::function<void(absl::Status, std::string)> answer);
  void HandleForwardReply(Account* account, const ForwardReply& reply);
  void HandleAppend(uint64_t from, Account* account, const Append& append);
  void HandleAppendAck(uint64_t from, Account* account, const AppendAck& ack);
  void HandleReadIndex(uint64_t from, Account* account, const ReadIndexRequest& req);
  void HandleReadIndexReply(Account* account, const ReadIndexReply& reply);
  void HandleDigest(uint64_t from, Account* account, const GossipDigest& digest);
  void HandlePull(uint64_t from, Account* account, const PullRequest& pull);
  // W: sends each region what it may of the durable log.
  void Replicate(Account* account);
  void ReplicateTo(Account* account, uint64_t peer, bool heartbeat);
  void SendAck(uint64_t to, Account* account, bool gap = false);
  void SendReadIndex(Account* account);
  void ServeReadBatch(Account* account, ReadBatch batch);
  void Tick();
  void Gossip();
  // --- Merkle repair (node_repair.cc).
  // Starts a repair from `from`, whose log no longer reaches back to this region's position,
  // unless one is running or this region is the write region.
  void MaybeStartRepair(uint64_t from, Account* account);
  void AbandonRepair(Account* account);
  void HandleRepair(uint64_t from, Account* account, const RepairRequest& req);
  void HandleRepairReply(uint64_t from, Account* account, const RepairReply& reply);
  // Sends a request of the account's run and remembers it under `what` until answered.
  void SendRepairRequest(Account* account, std::string what, RepairRequest req);
  void RepairRunDescended(Account* account, absl::StatusOr<RepairStep> step);
  // Resends unanswered requests; abandons a run without progress for forward_timeout_ms;
  // forgets served sessions idle that long.
  void RepairTick(Account* account, int64_t now);
  void InstallRepair(Account* account);
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
  // At W: fn(OK) once everything staged so far is durable here and the account's staged
  // log is durable at its write quorum; fn(Timeout) if that takes forward_timeout_ms.
  // Elsewhere, and under a local quorum, as AfterDurable.
  void AfterCommitted(Account* account, std::function<void(absl::Status)> fn);
  // At W: recomputes the account's committed index from its own and the regions' durable
  // indexes and runs the commit waiters it satisfies.
  void UpdateCommitted(Account* account);
  void MaybeWrite();
  void RecordGroupCommit(uint64_t entries);
  // account_stats(): the age of the oldest entry `progress`'s region lacks.
  int64_t OldestMissingAgeMs(const Account& account, const PeerProgress& progress) const;
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
  PeerStats peer_stats_;
  // Forwards this region sent and awaits; ids start at a random base per incarnation.
  std::map<uint64_t, std::unique_ptr<PendingForward>> pending_forwards_;
  uint64_t next_forward_id_ = 0;
  // W's at-most-once table: (origin, id) -> the answer, or null while executing.
  std::map<std::pair<uint64_t, uint64_t>, std::unique_ptr<ForwardReply>> forwards_seen_;
  std::deque<std::pair<uint64_t, uint64_t>> forwards_seen_order_;
  // The forward being executed right now (HandleForward's call into a method, or the
  // deferred half of one, as a compaction's): entries staged meanwhile record it.
  std::pair<uint64_t, uint64_t> executing_forward_{0, 0};
  // Forwards whose execution staged a log entry and that are not answered yet: the entry
  // itself records them, so no marker is needed.
  std::set<std::pair<uint64_t, uint64_t>> forwards_logged_;
  absl::Status RecoverForwardMarkers();
  // Remembers that a forward was executed, with its answer when there is one.
  void RememberForward(std::pair<uint64_t, uint64_t> key, std::unique_ptr<ForwardReply> reply);
  uint64_t next_read_index_id_ = 1;
  uint64_t read_index_id_base_ = 1;  // this incarnation's first read index id
  Executor::TimerId tick_timer_ = 0;
  int64_t last_gossip_ms_ = 0;
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
  GroupCommitStats group_commit_stats_;
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
