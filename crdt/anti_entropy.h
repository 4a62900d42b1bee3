// Anti-entropy between two regions' copies of one account (ARCHITECTURE.md §2, §7): the
// gossiped Digest, the decision which side is behind, and Merkle repair as a pair of pure,
// message-driven state machines with no I/O, clock or randomness:
//
//   repairer (behind)                                   source
//   MerkleRepair::Start()        -- NodesRequest ---->  MerkleRepairSource::OnNodesRequest()
//   MerkleRepair::OnNodes()      <-- NodesResponse ---
//     descends only into children whose hashes differ; at the leaf level lists buckets
//                                -- BucketRequest --->  MerkleRepairSource::OnBucketRequest()
//   MerkleRepair::OnBucket()     <-- BucketResponse --  (keys and register hashes)
//     compares per key; asks for the registers whose hashes differ
//                                -- RegistersRequest ->  MerkleRepairSource::OnRegistersRequest()
//   MerkleRepair::OnRegisters()  <-- RegistersResponse
//     yields RepairChanges (and conflicts) for the caller to apply to its keyspace
//
// So a repair ships one root-to-leaf path of hashes per differing bucket, the keys and hashes
// of those buckets, and only the registers that differ.
//
// Repair semantics (decided here, see ARCHITECTURE.md §7): a repair ends at the source's
// state at one revision. For every bucket whose hashes differ, the repairer adopts the
// source's registers exactly: keys the source lacks are removed, the others take the
// source's register. Where the local register would have won the LWW merge (it is newer by
// stamp, e.g. a write of a fenced old epoch past the fork point), it is still replaced, and
// reported as a RepairConflict so the caller can re-submit it to the write region as a new
// commit or surface it. RepairMode::kMergeLww instead keeps the merge winner for keys on
// both sides and keeps keys the source lacks (a CRDT union); the repaired tree then equals
// the source's only if the source lacks no local key and no conflict was reported.
//
// One revision: the source answers every request of a session from one view (a copy of its
// MerkleTree and its MVCC registers at `revision`); every message carries the session and
// the revision, the source refuses a revision it is not serving, and the repairer ignores
// replies of another session or revision. Duplicated, reordered or replayed replies are
// ignored once their node, bucket part or key batch is no longer outstanding, so they cannot
// corrupt state; malformed ones fail the repair (the caller starts a new session).
//
// Bounds: at most kMerkleIndicesPerRequestMax nodes per nodes request (a response is then
// at most 256 * 16 * 8 bytes of hashes plus framing); at most kMerkleKeysPerRequestMax keys
// and kMerkleRequestKeyBytesMax key bytes per registers request; at most
// kMerkleResponseBytesMax bytes of entries or registers per response (larger buckets and
// batches are split, and a single register larger than the budget travels alone); at most
// kRepairBucketsInFlightMax buckets in progress at once, the rest queued (the queue is
// bounded by the number of leaves).
//
// Not thread-safe; both classes live on the Node's thread.
#ifndef GEOETCD_CRDT_ANTI_ENTROPY_H_
#define GEOETCD_CRDT_ANTI_ENTROPY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crdt/merkle_tree.h"
#include "crdt/register.h"
#include "geoetcd/anti_entropy.pb.h"

namespace geoetcd {

constexpr size_t kMerkleIndicesPerRequestMax = 256;
constexpr size_t kMerkleKeysPerRequestMax = 256;
constexpr size_t kMerkleRequestKeyBytesMax = size_t{1} << 20;  // 1 MiB of keys
// Registers, or keys plus 8-byte hashes, per response.
constexpr size_t kMerkleResponseBytesMax = size_t{1} << 20;  // 1 MiB
constexpr size_t kRepairBucketsInFlightMax = 64;

// ---------------------------------------------------------------------------------------
// Digest

// One account's position at one region; what regions gossip.
struct Digest {
  uint64_t epoch = 0;
  int64_t applied_index = 0;  // contiguous prefix of the commit stream applied
  int64_t revision = 0;       // the account's revision after that prefix
  int64_t compact_revision = 0;
  uint64_t merkle_root = 0;

  friend bool operator==(const Digest& a, const Digest& b) {
    return a.epoch == b.epoch && a.applied_index == b.applied_index &&
           a.revision == b.revision && a.compact_revision == b.compact_revision &&
           a.merkle_root == b.merkle_root;
  }
};

AntiEntropyDigest DigestToProto(const Digest& d);
Digest DigestFromProto(const AntiEntropyDigest& p);

enum class DigestRelation {
  kInSync,        // same position, same root
  kLocalBehind,   // remote is at a later (epoch, applied_index)
  kRemoteBehind,  // local is at a later (epoch, applied_index)
  kDiverged,      // same position, different roots: logs cannot explain it
};
enum class CatchUpMethod {
  kNone,
  kLog,           // the side behind pulls the missing commits from the other
  kMerkleRepair,  // the side behind (or, when diverged, the caller's choice) repairs
};
struct DigestComparison {
  DigestRelation relation = DigestRelation::kInSync;
  CatchUpMethod method = CatchUpMethod::kNone;
  friend bool operator==(const DigestComparison& a, const DigestComparison& b) {
    return a.relation == b.relation && a.method == b.method;
  }
};

// Which side is behind, and how it catches up. Positions are ordered by (epoch,
// applied_index): a later epoch is ahead whatever its index (its commits supersede the old
// epoch's past the fork point). The side behind can pull the log only if the other side still
// holds the commits after its revision (behind.revision >= ahead.compact_revision);
// otherwise it must repair by Merkle descent. Equal positions with different roots are
// kDiverged with kMerkleRepair: which side repairs is the caller's policy (e.g. the one
// that is not the write region). Pure; symmetric: swapping the arguments swaps
// kLocalBehind and kRemoteBehind.
DigestComparison CompareDigests(const Digest& local, const Digest& remote);

// ---------------------------------------------------------------------------------------
// Repair

// Lists the registers of leaf `bucket` whose key is greater than `after_key` (all of them
// for an empty after_key), in ascending key order (bytes compared unsigned), calling
// `visit` for each until it returns false. Both sides supply one over their own keyspace;
// it must agree with the MerkleTree it is paired with (same registers, same depth).
using RegisterVisitor = std::function<bool(const Register&)>;
using BucketLister =
    std::function<void(uint64_t bucket, std::string_view after_key, const RegisterVisitor&)>;
// The register of `key`, or nullopt if the keyspace has none. Must agree with the lister.
using RegisterReader = std::function<std::optional<Register>(std::string_view key)>;

// A side's keyspace as the repair sees it.
struct RepairKeyspace {
  const MerkleTree* tree = nullptr;
  BucketLister list;
  RegisterReader read;
};

// One change for the repairer's keyspace: `after` is the key's new register, or nullopt to
// remove the key (and its register) entirely.
struct RepairChange {
  std::string key;
  std::optional<Register> after;
};

// A key whose local register would win the LWW merge against the source's.
struct RepairConflict {
  Register local;
  Register source;
};

enum class RepairMode {
  kAdoptSource,  // end at the source's state (the default; the repaired root equals it)
  kMergeLww,     // keep merge winners and local-only keys
};

struct RepairStats {
  uint64_t node_requests = 0;
  uint64_t nodes_compared = 0;  // nodes whose 16 children were compared
  uint64_t bucket_requests = 0;
  uint64_t key_hashes_received = 0;
  uint64_t register_requests = 0;
  uint64_t registers_received = 0;
  uint64_t changes = 0;
  uint64_t conflicts = 0;
  uint64_t ignored_messages = 0;  // other session/revision, or no longer outstanding
};

// What the repairer wants next and what it learned.
struct RepairStep {
  std::vector<MerkleNodesRequest> node_requests;
  std::vector<MerkleBucketRequest> bucket_requests;
  std::vector<MerkleRegistersRequest> register_requests;
  std::vector<RepairChange> changes;
  std::vector<RepairConflict> conflicts;
};

// The repairer side of one repair session against one source at one revision.
class MerkleRepair {
 public:
  // `local` describes the repairer's keyspace; its tree and callbacks must outlive this
  // object. The caller applies the changes of each step (to keyspace and tree) before
  // feeding the next response: later steps read the local keyspace again. `session` tells
  // this repair's messages apart; `source_revision` is the revision the source serves (from
  // its digest). REQUIRES: local.tree, local.list and local.read are set.
  MerkleRepair(RepairKeyspace local, uint64_t session, int64_t source_revision,
               RepairMode mode = RepairMode::kAdoptSource);

  // The first request: the root's children. REQUIRES: called once, before anything else.
  MerkleNodesRequest Start();

  // Compares the source's child hashes with the local tree; returns the next requests.
  // Error (and failed()) on a malformed response of this session (wrong level, child count).
  [[nodiscard]] absl::StatusOr<RepairStep> OnNodes(const MerkleNodesResponse& response);

  // Compares one part of a bucket's keys and hashes with the local registers of the same key
  // range. Returns removals (kAdoptSource), the registers requests for keys that differ or
  // are missing locally, and the request for the bucket's next part. Error (and failed()) if
  // keys are not in the bucket, not ascending past after_key, or the continuation is wrong.
  [[nodiscard]] absl::StatusOr<RepairStep> OnBucket(const MerkleBucketResponse& response);

  // Reconciles the fetched registers with the local ones: changes and conflicts, a request
  // for keys the response left out, and newly admitted buckets once a bucket is complete.
  // Error (and failed()) if a register does not decode or is not the key asked for.
  [[nodiscard]] absl::StatusOr<RepairStep> OnRegisters(const MerkleRegistersResponse& response);

  // True once every outstanding request was answered and nothing is queued. If the caller's
  // root still differs from source_root() then, a tree disagreed with its lister, the
  // source did not hold its revision, or two keys share a fingerprint (merkle_tree.h):
  // start a new session from a fresh digest rather than looping.
  bool done() const;
  bool failed() const { return failed_; }
  // The source's root, known once the level-0 response arrived. After the caller applied
  // every change of a kAdoptSource repair, its tree's Root() equals it.
  std::optional<uint64_t> source_root() const { return source_root_; }
  const RepairStats& stats() const { return stats_; }

 private:
  struct BucketProgress {
    // The after_key of the part awaited; nullopt once the last part arrived.
    std::optional<std::string> awaited_part = std::string();
    int register_requests_outstanding = 0;
  };

  absl::Status Fail(absl::Status status);
  // Moves queued buckets into progress, up to kRepairBucketsInFlightMax.
  void AdmitBuckets(RepairStep* step);
  // Erases a finished bucket and admits the next.
  void MaybeFinishBucket(uint64_t bucket, RepairStep* step);
  MerkleBucketRequest BucketRequest(uint64_t bucket, std::string after_key) const;
  // Splits `keys` (ascending) into bounded registers requests.
  void RequestRegisters(uint64_t bucket, std::vector<std::string> keys, RepairStep* step);
  // Emits the change/conflict for one key given its local and source registers (either may
  // be absent, not both).
  void Reconcile(const std::string& key, const Register* local, const Register* source,
                 RepairStep* step);

  RepairKeyspace local_;
  const uint64_t session_;
  const int64_t revision_;
  const RepairMode mode_;
  bool started_ = false;
  bool failed_ = false;
  std::optional<uint64_t> source_root_;
  // Outstanding node requests: (level, index).
  std::set<std::pair<int, uint64_t>> pending_nodes_;
  std::map<uint64_t, BucketProgress> buckets_in_progress_;
  // Differing buckets not yet listed, ascending within each level response.
  std::deque<uint64_t> buckets_queued_;
  // Outstanding registers requests: id -> (bucket, keys).
  std::map<uint64_t, std::pair<uint64_t, std::vector<std::string>>> pending_registers_;
  uint64_t next_request_id_ = 1;
  RepairStats stats_;
};

// The source side: answers requests from its tree and its registers, at one revision.
class MerkleRepairSource {
 public:
  // `source`'s tree and callbacks must outlive this object and stay at `revision` while it
  // answers (see the file comment); a MerkleTree copy is a cheap snapshot.
  // REQUIRES: source.tree, source.list and source.read are set.
  MerkleRepairSource(RepairKeyspace source, int64_t revision);

  // FailedPrecondition if a request names another revision; InvalidArgument if its depth
  // differs, or it breaks the bounds and shapes of proto/geoetcd/anti_entropy.proto (level
  // not an inner level; no, too many, out-of-range or unordered indices or keys; bucket out
  // of range; a key not in the bucket).
  [[nodiscard]] absl::StatusOr<MerkleNodesResponse> OnNodesRequest(
      const MerkleNodesRequest& request) const;
  [[nodiscard]] absl::StatusOr<MerkleBucketResponse> OnBucketRequest(
      const MerkleBucketRequest& request) const;
  [[nodiscard]] absl::StatusOr<MerkleRegistersResponse> OnRegistersRequest(
      const MerkleRegistersRequest& request) const;

 private:
  absl::Status CheckSession(int64_t revision, uint32_t depth) const;

  RepairKeyspace source_;
  const int64_t revision_;
};

}  // namespace geoetcd

#endif  // GEOETCD_CRDT_ANTI_ENTROPY_H_
