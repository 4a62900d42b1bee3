// One account's state in one region (ARCHITECTURE.md §1): its keyspace and register tree,
// lessor, watch hub, quota and alarms, its replicated log and replication progress, and its
// Merkle repair sessions. The Node (core/node.h) owns one per account and holds only the
// ports, group commit and routing between them. Internal to core/: every field lives on
// the Node's thread.
#ifndef GEOETCD_CORE_ACCOUNT_H_
#define GEOETCD_CORE_ACCOUNT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/auto_compactor.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/node.h"
#include "core/quota.h"
#include "core/watch_hub.h"
#include "crdt/anti_entropy.h"
#include "crdt/merkle_tree.h"
#include "geoetcd/peer.pb.h"

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

struct ReadBatch {
  std::vector<PendingRead> reads;
  int64_t sent_ms = 0;
};


// Merkle repair (node_repair.cc), the source's side: one session it serves, fixed at the
// durable state it had when the session opened.
struct RepairServe {
  uint64_t peer = 0;
  uint64_t session = 0;
  bool ready = false;  // the target is durable and RepairOpened went out
  uint64_t index = 0;
  int64_t revision = 0;
  int64_t compact_revision = 0;
  uint64_t epoch = 0;
  std::optional<MerkleTree> tree;  // the register tree at `index`
  std::vector<LeaseRecord> leases;
  AlarmList alarms;
  LogEntry entry;  // the log entry at `index`
  // The keys that existed at `revision`, by (leaf, key), built at the first bucket request.
  // They point into the keyspace's map, which erases a key only when it compacts or
  // installs a repair; either ends every session (compact_revision changes, or serving is
  // cleared).
  std::vector<std::pair<uint64_t, const std::string*>> keys;
  bool keys_built = false;
  int64_t last_used_ms = 0;
};

// Merkle repair, the repairer's side: the run against one source. Changes accumulate in an
// overlay over the local keyspace (and a copy of its tree) and are installed in one atomic
// batch at the end, so a crash mid-repair leaves the region where it was.
struct RepairRun {
  enum class Phase { kOpening, kDescending, kState, kInstalling };
  uint64_t source = 0;
  uint64_t session = 0;
  Phase phase = Phase::kOpening;
  RepairOpened target;
  std::optional<MerkleTree> tree;  // the local tree with the overlay applied
  // The local keys at the start, by (leaf, key); pointers into the keyspace's map, which
  // changes under a run only by applying an entry, and that abandons the run.
  std::vector<std::pair<uint64_t, const std::string*>> local_keys;
  // The adopted registers (nullopt: the key goes), by leaf then key.
  std::map<uint64_t, std::map<std::string, std::optional<Register>>> overlay;
  std::unique_ptr<MerkleRepair> repair;
  std::vector<LeaseRecord> leases;
  RepairState state;  // alarms and entry, from the last state reply
  // Requests not answered yet, by what they ask for; resent every forward_retry_ms.
  std::map<std::string, RepairRequest> outstanding;
  int64_t compact_revision_at_start = 0;
  int64_t started_ms = 0;
  int64_t last_progress_ms = 0;
  int64_t last_sent_ms = 0;
  uint64_t bytes_received = 0;
};

struct Account {
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
  // At W: the write quorum, the highest index durable at that quorum of regions (the
  // committed index: read indexes report it), and the acknowledgements waiting for it, by
  // index, with their deadlines.
  WriteQuorum write_quorum = WriteQuorum::kLocal;
  uint64_t committed_index = 0;
  struct CommitWaiter {
    int64_t deadline_ms;
    std::function<void(absl::Status)> fn;
  };
  std::multimap<uint64_t, CommitWaiter> commit_waiters;
  // Away from W: linearizable reads waiting for a read index.
  std::vector<PendingRead> unsent_reads;
  std::map<uint64_t, ReadBatch> inflight_reads;  // by read index request id
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
  // Merkle repair (node_repair.cc): this region's own run, and the sessions it serves as a
  // source (at most one per other region).
  std::unique_ptr<RepairRun> repair;
  int64_t repair_retry_after_ms = 0;  // after a run was abandoned, the next starts no sooner
  std::vector<std::unique_ptr<RepairServe>> serving;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_ACCOUNT_H_
