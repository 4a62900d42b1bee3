// The etcd KV semantics of one account over its Keyspace: Range, Put, DeleteRange, Txn and
// Compact exactly as etcd 3.5 applies them (server/etcdserver/apply.go), including the
// validation order and error vocabulary. Synchronous and port-free: the Node decides when
// a commit is durable and when a response may be released.
//
// A mutation applies to the in-memory keyspace immediately and appends its durable records
// to the caller's WriteBatch; the caller must make that batch durable before answering.
//
// Not thread-safe: lives on the Node's thread.
#ifndef GEOETCD_CORE_KV_STORE_H_
#define GEOETCD_CORE_KV_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/hlc.h"
#include "core/keyspace.h"
#include "core/ports.h"
#include "crdt/merkle_tree.h"
#include "crdt/register.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd {

struct KvLimits {
  // etcd's --max-txn-ops: the most ops in any one of compare/success/failure.
  int64_t txn_ops_max = 128;
};

// The stamp the write region gives a commit. When `log` is set, the commit also records
// its changes there (the ops of the replicated log entry, core/node.h) and sets its
// revision: applying those ops to the same state elsewhere (KvStore::ApplyOps) reproduces
// the commit exactly.
struct CommitStamp {
  uint64_t epoch = 1;
  Hlc hlc = 0;
  // The region that sequenced the commit: with `hlc`, the stamp of every register it writes.
  uint64_t origin = 0;
  LogEntry* log = nullptr;
};

// Attaches and detaches keys to leases; owned by the lease subsystem.
class LeaseIndex {
 public:
  virtual ~LeaseIndex() = default;
  virtual bool Exists(int64_t lease_id) const = 0;
  virtual void Attach(int64_t lease_id, const std::string& key) = 0;
  virtual void Detach(int64_t lease_id, const std::string& key) = 0;
};

// Sees every commit's changes as etcd watch events, when the commit is staged (before it is
// durable): the watch hub holds them until the Node reports the revision durable.
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  // Asked when a commit opens; when false, the commit builds no events and OnCommit is not
  // called for it (nobody watches, so the copies would be wasted).
  virtual bool WantsEvents() const = 0;
  // The changes of the commit at `revision`, in op order. A PUT carries the new version and,
  // unless it created the key, prev_kv = the version it replaced; a DELETE carries only key
  // and mod_revision (as etcd's) and prev_kv = the deleted version.
  virtual void OnCommit(int64_t revision, std::vector<mvccpb::Event> events) = 0;
};

// Static request checks etcd performs in its gRPC layer (v3rpc/key.go), before sequencing.
absl::Status CheckRangeRequest(const etcdserverpb::RangeRequest& r);
absl::Status CheckPutRequest(const etcdserverpb::PutRequest& r);
absl::Status CheckDeleteRequest(const etcdserverpb::DeleteRangeRequest& r);
absl::Status CheckTxnRequest(const etcdserverpb::TxnRequest& r, int64_t txn_ops_max);

class KvStore {
 public:
  KvStore(std::string account, KvLimits limits, LeaseIndex* leases);
  KvStore(const KvStore&) = delete;
  KvStore& operator=(const KvStore&) = delete;

  const std::string& account() const { return account_; }
  // Not owned; nullptr (the default) reports nothing. Must outlive this store.
  void set_commit_observer(CommitObserver* observer) { observer_ = observer; }
  const Keyspace& keyspace() const { return keyspace_; }
  int64_t revision() const { return keyspace_.revision(); }
  int64_t compact_revision() const { return keyspace_.compact_revision(); }

  // Reads at `current_rev`, the newest revision the caller may expose (its durable
  // revision). header.revision is current_rev, as etcd reports its current revision.
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& r,
                                                    int64_t current_rev) const;

  absl::StatusOr<etcdserverpb::PutResponse> Put(const etcdserverpb::PutRequest& r,
                                                const CommitStamp& stamp, WriteBatch* batch);
  absl::StatusOr<etcdserverpb::DeleteRangeResponse> DeleteRange(
      const etcdserverpb::DeleteRangeRequest& r, const CommitStamp& stamp, WriteBatch* batch);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& r,
                                                const CommitStamp& stamp, WriteBatch* batch);
  // Deletes every key attached to a lease in one commit (keys in sorted order, as etcd).
  // Returns the revision of the commit, or the unchanged revision if no key was attached.
  int64_t DeleteKeys(const std::vector<std::string>& keys, const CommitStamp& stamp,
                     WriteBatch* batch);

  // Replays the KV ops of a log entry sequenced elsewhere, as one commit (nothing if it has
  // no ops). Corrupt when the ops do not fit this state (a delete of a key that is not
  // live), which means this region's history diverged from the write region's; the store
  // is then unchanged only if the first op failed, so the caller must treat it as fatal.
  absl::StatusOr<int64_t> ApplyOps(const LogEntry& entry, const CommitStamp& stamp,
                                   WriteBatch* batch);

  // etcd's compaction checks: ErrCompacted when rev <= the compaction point (or a pending
  // one), ErrFutureRev when rev > revision().
  absl::Status CheckCompact(int64_t rev, int64_t pending_compact_rev) const;
  // Compacts the in-memory index and appends the storage deletions and the new compaction
  // point to `batch`.
  void Compact(int64_t rev, WriteBatch* batch);

  // Rebuilds the keyspace from storage. Returns the number of key versions loaded.
  // `bug_forget_newest_commit` is InjectedBugs::reuse_revision_after_crash (core/node.h):
  // the newest commit's records are skipped, so its revision is issued again.
  absl::StatusOr<int64_t> Recover(const Storage& storage, bool bug_forget_newest_commit = false);

  // A canonical hash of the live keys at `rev` (xxhash64 of a fixed encoding).
  uint64_t HashAt(int64_t rev) const;

  // --- Registers (crdt/register.h) for anti-entropy between regions. Once enabled, a
  // Merkle tree over every key's register (its newest version, tombstones included) is
  // kept in step with every commit, compaction and recovery; regions that applied the same
  // log hold equal trees. Enabling builds it from the current keyspace.
  void EnableMerkle(int depth = kMerkleDepthDefault);
  // nullptr unless enabled.
  const MerkleTree* merkle() const { return merkle_.get(); }
  // The register `v` (a version of `key`) stands for, and the version a register stands for.
  static Register RegisterOf(const std::string& key, const KeyVersion& v);
  static KeyVersion VersionOf(const Register& r);

  // --- Repair (core/node_repair.cc): the store becomes another region's registers at
  // `revision` (Keyspace::InstallRegisters), in two halves so the durable copy is written
  // before memory changes: StageInstall appends to `batch` the storage changes (every
  // superseded version and every changed register removed, the new registers written, the
  // commit records dropped, the compaction point set to `revision`); once that batch is
  // durable, Install makes the same change in memory and in the register tree. The store
  // must not change in between. REQUIRES: no commit open; every register's key is its map
  // key and its mod_revision <= revision.
  void StageInstall(int64_t revision,
                    const std::map<std::string, std::optional<Register>>& changes,
                    WriteBatch* batch) const;
  void Install(int64_t revision, const std::map<std::string, std::optional<Register>>& changes);

  void CheckInvariants() const { keyspace_.CheckInvariants(); }
  // That the Merkle tree (if kept) holds exactly every key's current register hash: O(keys)
  // register encodings, so callers run it less often than CheckInvariants.
  void CheckRegisterTree() const;

 private:
  struct TxnPath {
    bool succeeded = false;
    std::vector<TxnPath> nested;  // one per nested txn in the chosen branch, in order
  };
  class Commit;  // stages the records of one commit

  TxnPath EvaluatePath(const etcdserverpb::TxnRequest& r) const;
  bool EvaluateCompare(const etcdserverpb::Compare& c) const;
  absl::Status CheckTxnOps(const etcdserverpb::TxnRequest& r, const TxnPath& path) const;
  absl::Status CheckPutOp(const etcdserverpb::PutRequest& r) const;
  absl::Status CheckRangeRevision(int64_t revision) const;

  etcdserverpb::RangeResponse RangeAt(const etcdserverpb::RangeRequest& r, int64_t read_rev) const;
  etcdserverpb::PutResponse ApplyPut(const etcdserverpb::PutRequest& r, Commit* commit);
  etcdserverpb::DeleteRangeResponse ApplyDelete(const etcdserverpb::DeleteRangeRequest& r,
                                                Commit* commit);
  void ApplyTxn(const etcdserverpb::TxnRequest& r, const TxnPath& path, Commit* commit,
                etcdserverpb::TxnResponse* out);
  void AppendMeta(WriteBatch* batch) const;

  std::string account_;
  KvLimits limits_;
  LeaseIndex* leases_;
  CommitObserver* observer_ = nullptr;
  Keyspace keyspace_;
  std::unique_ptr<MerkleTree> merkle_;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_KV_STORE_H_
