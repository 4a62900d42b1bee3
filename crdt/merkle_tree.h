// MerkleTree: a fixed-shape hash tree over one account's registers, the digest that regions
// gossip and descend to find where their keyspaces differ (ARCHITECTURE.md §2).
//
// Shape: kMerkleFanout (16) children per node and `depth` levels below the root, so
// 16^depth leaves ("buckets"); level 0 is the root, level `depth` the leaves. A key lives in
// the leaf given by the top 4*depth bits of xxhash64(key, kMerkleBucketSeed), so the ancestor
// of a key's leaf at level l is BucketOf(key, l), and node i at level l has the children
// 16*i .. 16*i+15 at level l+1. The shape depends only on the depth, never on the keys: two
// regions' trees of the same depth are comparable node by node.
//
// Hashes:
//   entry(key, h) = xxhash64(LE64(fp1) | LE64(fp2) | LE64(h), kMerkleEntrySeed), where
//                   (fp1, fp2) is the key's 128-bit fingerprint (xxhash64 with two seeds);
//   leaf          = sum mod 2^64 of the entries of its keys (0 for an empty leaf);
//   inner node    = xxhash64(LE64(child 0) | ... | LE64(child 15), kMerkleInnerSeed).
// The leaf sum makes insert, replace and remove O(1) and order-independent; hashing the
// (key, register hash) pair means equal register hashes under different keys never cancel,
// and a register moved to another key changes the leaf. Inner hashes are recomputed lazily:
// a change marks its leaf's ancestors dirty, and Root()/NodeHash()/Children() recompute only
// dirty nodes.
//
// Memory: the tree stores neither keys nor values, only per key a 24-byte entry (fingerprint
// and register hash) in its leaf's sorted vector, plus 8 bytes per node. The cost is that
// keys are identified by their 128-bit fingerprint: two keys with equal fingerprints (a
// ~2^-128 chance per pair for non-adversarial keys) would share one entry. Such a collision
// can hide or invent a difference between two trees; it cannot change any keyspace.
//
// Thread-compatible: no method is safe concurrently with a mutation, and the const methods
// write the lazy hash cache, so even concurrent const calls need external synchronization.
// Copyable (a copy is a snapshot, e.g. to answer a repair at one revision).
#ifndef GEOETCD_CRDT_MERKLE_TREE_H_
#define GEOETCD_CRDT_MERKLE_TREE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/types/span.h"

namespace geoetcd {

constexpr int kMerkleFanout = 16;
constexpr int kMerkleFanoutBits = 4;
// 16^4 = 65,536 leaves: about 15 keys per leaf at 1M keys.
constexpr int kMerkleDepthDefault = 4;
constexpr int kMerkleDepthMin = 1;
// 16^5 = 1,048,576 leaves (about 32 MB of empty leaves); deeper trees cost more than they
// save at any keyspace this server holds.
constexpr int kMerkleDepthMax = 5;
// Seeds: part of the digest on the wire. Changing one is a protocol change.
constexpr uint64_t kMerkleBucketSeed = 0x6765'6f6d'6b6c'0001ULL;
constexpr uint64_t kMerkleKeyCheckSeed = 0x6765'6f6d'6b6c'0002ULL;
constexpr uint64_t kMerkleEntrySeed = 0x6765'6f6d'6b6c'0003ULL;
constexpr uint64_t kMerkleInnerSeed = 0x6765'6f6d'6b6c'0004ULL;

class MerkleTree {
 public:
  // REQUIRES: kMerkleDepthMin <= depth <= kMerkleDepthMax (CHECKed).
  explicit MerkleTree(int depth = kMerkleDepthDefault);

  MerkleTree(const MerkleTree&) = default;
  MerkleTree& operator=(const MerkleTree&) = default;
  MerkleTree(MerkleTree&&) = default;
  MerkleTree& operator=(MerkleTree&&) = default;

  int depth() const { return depth_; }
  // Number of nodes at `level`: 16^level.
  static uint64_t NodesAt(int level) { return uint64_t{1} << (kMerkleFanoutBits * level); }
  // The node at `level` whose subtree holds `key`; at level == depth, its leaf.
  // REQUIRES: 0 <= level <= kMerkleDepthMax.
  static uint64_t BucketOf(std::string_view key, int level);
  // The inner-node hash of 16 child hashes. REQUIRES: children.size() == kMerkleFanout.
  static uint64_t CombineChildren(absl::Span<const uint64_t> children);
  // Root of a tree of this depth with no keys.
  static uint64_t EmptyRoot(int depth);

  // Inserts `key` with `register_hash` (normally RegisterHash() of the key's register), or
  // replaces its hash. O(keys in the leaf) for the sorted insert, O(1) hash update.
  void Set(std::string_view key, uint64_t register_hash);
  // Removes `key`; no-op if absent.
  void Remove(std::string_view key);
  // The register hash stored for `key`, if any.
  std::optional<uint64_t> Get(std::string_view key) const;
  // Number of keys.
  size_t size() const { return size_; }
  // Removes every key; keeps the depth.
  void Clear();

  uint64_t Root() const { return NodeHash(0, 0); }
  // REQUIRES: 0 <= level <= depth(), index < NodesAt(level) (CHECKed).
  uint64_t NodeHash(int level, uint64_t index) const;
  // The kMerkleFanout hashes of the children of (level, index), in child order.
  // REQUIRES: 0 <= level < depth(), index < NodesAt(level) (CHECKed).
  std::vector<uint64_t> Children(int level, uint64_t index) const;
  // Number of keys in leaf `bucket`. REQUIRES: bucket < NodesAt(depth()).
  size_t BucketSize(uint64_t bucket) const;
  // Heap and inline bytes held by the tree (entries, leaf vectors, node hashes, dirty bits).
  size_t MemoryBytes() const;

  // Recomputes every leaf and inner hash from the stored entries and CHECKs that each cached
  // value agrees, that entries are sorted, unique and in their key's leaf, that size() is
  // their count, and that every dirty node's parent is dirty. O(keys + nodes).
  void CheckInvariants() const;

 private:
  struct Fingerprint {
    uint64_t bucket_hash;  // xxhash64(key, kMerkleBucketSeed): the top bits pick the leaf
    uint64_t check_hash;   // xxhash64(key, kMerkleKeyCheckSeed)
    friend bool operator<(const Fingerprint& a, const Fingerprint& b) {
      return a.bucket_hash != b.bucket_hash ? a.bucket_hash < b.bucket_hash
                                            : a.check_hash < b.check_hash;
    }
    friend bool operator==(const Fingerprint& a, const Fingerprint& b) {
      return a.bucket_hash == b.bucket_hash && a.check_hash == b.check_hash;
    }
  };
  struct Entry {
    Fingerprint fp;
    uint64_t register_hash;
  };

  static Fingerprint FingerprintOf(std::string_view key);
  static uint64_t EntryHash(const Entry& e);
  uint64_t LeafOf(const Fingerprint& fp) const;
  // Marks the ancestors of `leaf` dirty, stopping at the first already dirty one (its own
  // ancestors are dirty already: a dirty node's parent is always dirty).
  void MarkDirty(uint64_t leaf);
  // Recomputes (level, index) and its dirty descendants.
  void Clean(int level, uint64_t index) const;

  int depth_;
  size_t size_ = 0;
  // leaves_[i]: entries of leaf i, ascending by fingerprint.
  std::vector<std::vector<Entry>> leaves_;
  // hashes_[l][i]: hash of node i at level l, l in [0, depth]. Leaf hashes are always
  // current; inner ones are current unless dirty_[l][i].
  mutable std::vector<std::vector<uint64_t>> hashes_;
  mutable std::vector<std::vector<bool>> dirty_;  // levels 0 .. depth-1
};

}  // namespace geoetcd

#endif  // GEOETCD_CRDT_MERKLE_TREE_H_
