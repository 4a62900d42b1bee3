#include "crdt/merkle_tree.h"

#include <algorithm>

#include "core/check.h"
#include "xxhash.h"

namespace geoetcd {
namespace {

void StoreLe64(uint64_t v, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace

MerkleTree::MerkleTree(int depth) : depth_(depth) {
  CHECK(depth >= kMerkleDepthMin && depth <= kMerkleDepthMax);
  leaves_.resize(NodesAt(depth_));
  hashes_.resize(depth_ + 1);
  dirty_.resize(depth_);
  for (int level = 0; level <= depth_; ++level) hashes_[level].assign(NodesAt(level), 0);
  // Every inner node starts dirty, so the first Root() computes the empty tree's hashes.
  for (int level = 0; level < depth_; ++level) dirty_[level].assign(NodesAt(level), true);
}

uint64_t MerkleTree::BucketOf(std::string_view key, int level) {
  CHECK(level >= 0 && level <= kMerkleDepthMax);
  if (level == 0) return 0;
  return XXH64(key.data(), key.size(), kMerkleBucketSeed) >> (64 - kMerkleFanoutBits * level);
}

uint64_t MerkleTree::CombineChildren(absl::Span<const uint64_t> children) {
  CHECK(children.size() == kMerkleFanout);
  unsigned char bytes[8 * kMerkleFanout];
  for (int i = 0; i < kMerkleFanout; ++i) StoreLe64(children[i], bytes + 8 * i);
  return XXH64(bytes, sizeof(bytes), kMerkleInnerSeed);
}

uint64_t MerkleTree::EmptyRoot(int depth) {
  CHECK(depth >= kMerkleDepthMin && depth <= kMerkleDepthMax);
  uint64_t h = 0;  // an empty leaf
  for (int level = depth - 1; level >= 0; --level) {
    const std::vector<uint64_t> children(kMerkleFanout, h);
    h = CombineChildren(children);
  }
  return h;
}

MerkleTree::Fingerprint MerkleTree::FingerprintOf(std::string_view key) {
  return Fingerprint{XXH64(key.data(), key.size(), kMerkleBucketSeed),
                     XXH64(key.data(), key.size(), kMerkleKeyCheckSeed)};
}

uint64_t MerkleTree::EntryHash(const Entry& e) {
  unsigned char bytes[24];
  StoreLe64(e.fp.bucket_hash, bytes);
  StoreLe64(e.fp.check_hash, bytes + 8);
  StoreLe64(e.register_hash, bytes + 16);
  return XXH64(bytes, sizeof(bytes), kMerkleEntrySeed);
}

uint64_t MerkleTree::LeafOf(const Fingerprint& fp) const {
  return fp.bucket_hash >> (64 - kMerkleFanoutBits * depth_);
}

void MerkleTree::Set(std::string_view key, uint64_t register_hash) {
  const Fingerprint fp = FingerprintOf(key);
  const uint64_t leaf = LeafOf(fp);
  std::vector<Entry>& entries = leaves_[leaf];
  auto it = std::lower_bound(entries.begin(), entries.end(), fp,
                             [](const Entry& e, const Fingerprint& f) { return e.fp < f; });
  uint64_t& leaf_hash = hashes_[depth_][leaf];
  if (it != entries.end() && it->fp == fp) {
    if (it->register_hash == register_hash) return;
    leaf_hash -= EntryHash(*it);
    it->register_hash = register_hash;
    leaf_hash += EntryHash(*it);
  } else {
    it = entries.insert(it, Entry{fp, register_hash});
    leaf_hash += EntryHash(*it);
    ++size_;
  }
  MarkDirty(leaf);
}

void MerkleTree::Remove(std::string_view key) {
  const Fingerprint fp = FingerprintOf(key);
  const uint64_t leaf = LeafOf(fp);
  std::vector<Entry>& entries = leaves_[leaf];
  auto it = std::lower_bound(entries.begin(), entries.end(), fp,
                             [](const Entry& e, const Fingerprint& f) { return e.fp < f; });
  if (it == entries.end() || !(it->fp == fp)) return;
  hashes_[depth_][leaf] -= EntryHash(*it);
  entries.erase(it);
  --size_;
  MarkDirty(leaf);
}

std::optional<uint64_t> MerkleTree::Get(std::string_view key) const {
  const Fingerprint fp = FingerprintOf(key);
  const std::vector<Entry>& entries = leaves_[LeafOf(fp)];
  auto it = std::lower_bound(entries.begin(), entries.end(), fp,
                             [](const Entry& e, const Fingerprint& f) { return e.fp < f; });
  if (it == entries.end() || !(it->fp == fp)) return std::nullopt;
  return it->register_hash;
}

void MerkleTree::Clear() {
  *this = MerkleTree(depth_);
}

void MerkleTree::MarkDirty(uint64_t leaf) {
  uint64_t index = leaf;
  for (int level = depth_ - 1; level >= 0; --level) {
    index >>= kMerkleFanoutBits;
    if (dirty_[level][index]) return;
    dirty_[level][index] = true;
  }
}

void MerkleTree::Clean(int level, uint64_t index) const {
  if (level == depth_ || !dirty_[level][index]) return;
  uint64_t children[kMerkleFanout];
  const uint64_t first = index << kMerkleFanoutBits;
  for (int c = 0; c < kMerkleFanout; ++c) {
    Clean(level + 1, first + c);
    children[c] = hashes_[level + 1][first + c];
  }
  hashes_[level][index] = CombineChildren(children);
  dirty_[level][index] = false;
}

uint64_t MerkleTree::NodeHash(int level, uint64_t index) const {
  CHECK(level >= 0 && level <= depth_ && index < NodesAt(level));
  Clean(level, index);
  return hashes_[level][index];
}

std::vector<uint64_t> MerkleTree::Children(int level, uint64_t index) const {
  CHECK(level >= 0 && level < depth_ && index < NodesAt(level));
  Clean(level, index);
  const uint64_t first = index << kMerkleFanoutBits;
  return std::vector<uint64_t>(hashes_[level + 1].begin() + first,
                               hashes_[level + 1].begin() + first + kMerkleFanout);
}

size_t MerkleTree::BucketSize(uint64_t bucket) const {
  CHECK(bucket < NodesAt(depth_));
  return leaves_[bucket].size();
}

size_t MerkleTree::MemoryBytes() const {
  size_t bytes = sizeof(*this) + leaves_.capacity() * sizeof(std::vector<Entry>);
  for (const std::vector<Entry>& entries : leaves_) bytes += entries.capacity() * sizeof(Entry);
  for (const std::vector<uint64_t>& level : hashes_) bytes += level.capacity() * sizeof(uint64_t);
  for (const std::vector<bool>& level : dirty_) bytes += level.capacity() / 8;
  return bytes;
}

void MerkleTree::CheckInvariants() const {
  CHECK(leaves_.size() == NodesAt(depth_));
  std::vector<uint64_t> fresh(NodesAt(depth_));
  size_t count = 0;
  for (uint64_t leaf = 0; leaf < leaves_.size(); ++leaf) {
    uint64_t sum = 0;
    const std::vector<Entry>& entries = leaves_[leaf];
    for (size_t i = 0; i < entries.size(); ++i) {
      CHECK(LeafOf(entries[i].fp) == leaf);
      if (i > 0) CHECK(entries[i - 1].fp < entries[i].fp);
      sum += EntryHash(entries[i]);
    }
    CHECK(sum == hashes_[depth_][leaf]);
    fresh[leaf] = sum;
    count += entries.size();
  }
  CHECK(count == size_);
  for (int level = depth_ - 1; level >= 0; --level) {
    std::vector<uint64_t> above(NodesAt(level));
    for (uint64_t i = 0; i < above.size(); ++i) {
      above[i] = CombineChildren(
          absl::MakeConstSpan(fresh.data() + (i << kMerkleFanoutBits), kMerkleFanout));
      if (!dirty_[level][i]) CHECK(hashes_[level][i] == above[i]);
      if (level > 0 && dirty_[level][i]) CHECK(dirty_[level - 1][i >> kMerkleFanoutBits]);
    }
    fresh = std::move(above);
  }
  // The lazy path must land where the from-scratch one does.
  CHECK(Root() == fresh[0]);
}

}  // namespace geoetcd
