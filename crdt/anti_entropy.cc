#include "crdt/anti_entropy.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace geoetcd {

AntiEntropyDigest DigestToProto(const Digest& d) {
  AntiEntropyDigest p;
  p.set_epoch(d.epoch);
  p.set_applied_index(d.applied_index);
  p.set_revision(d.revision);
  p.set_compact_revision(d.compact_revision);
  p.set_merkle_root(d.merkle_root);
  return p;
}

Digest DigestFromProto(const AntiEntropyDigest& p) {
  Digest d;
  d.epoch = p.epoch();
  d.applied_index = p.applied_index();
  d.revision = p.revision();
  d.compact_revision = p.compact_revision();
  d.merkle_root = p.merkle_root();
  return d;
}

DigestComparison CompareDigests(const Digest& local, const Digest& remote) {
  const std::pair<uint64_t, int64_t> l{local.epoch, local.applied_index};
  const std::pair<uint64_t, int64_t> r{remote.epoch, remote.applied_index};
  if (l == r) {
    if (local.merkle_root == remote.merkle_root) return {};
    return {DigestRelation::kDiverged, CatchUpMethod::kMerkleRepair};
  }
  const bool local_behind = l < r;
  const Digest& behind = local_behind ? local : remote;
  const Digest& ahead = local_behind ? remote : local;
  // The ahead side's log starts after its compact revision.
  const CatchUpMethod method = behind.revision >= ahead.compact_revision
                                   ? CatchUpMethod::kLog
                                   : CatchUpMethod::kMerkleRepair;
  return {local_behind ? DigestRelation::kLocalBehind : DigestRelation::kRemoteBehind, method};
}

// ---------------------------------------------------------------------------------------
// MerkleRepair

MerkleRepair::MerkleRepair(const MerkleTree* local_tree, BucketLister local_lister,
                           uint64_t session, int64_t source_revision, RepairMode mode)
    : tree_(local_tree),
      lister_(std::move(local_lister)),
      session_(session),
      revision_(source_revision),
      mode_(mode) {
  CHECK(tree_ != nullptr);
}

MerkleNodesRequest MerkleRepair::Start() {
  CHECK(!started_);
  started_ = true;
  MerkleNodesRequest request;
  request.set_session(session_);
  request.set_revision(revision_);
  request.set_depth(tree_->depth());
  request.set_level(0);
  request.add_indices(0);
  pending_nodes_.insert({0, 0});
  ++stats_.node_requests;
  return request;
}

bool MerkleRepair::done() const {
  return started_ && !failed_ && pending_nodes_.empty() && buckets_in_flight_.empty() &&
         buckets_queued_.empty();
}

absl::Status MerkleRepair::Fail(absl::Status status) {
  failed_ = true;
  return status;
}

MerkleBucketRequest MerkleRepair::BucketRequest(uint64_t bucket, std::string after_key) const {
  MerkleBucketRequest request;
  request.set_session(session_);
  request.set_revision(revision_);
  request.set_depth(tree_->depth());
  request.set_bucket(bucket);
  request.set_after_key(std::move(after_key));
  return request;
}

void MerkleRepair::AdmitBuckets(RepairStep* step) {
  while (!buckets_queued_.empty() && buckets_in_flight_.size() < kRepairBucketsInFlightMax) {
    const uint64_t bucket = buckets_queued_.front();
    buckets_queued_.pop_front();
    buckets_in_flight_[bucket] = "";
    step->bucket_requests.push_back(BucketRequest(bucket, ""));
    ++stats_.bucket_requests;
  }
}

absl::StatusOr<RepairStep> MerkleRepair::OnNodes(const MerkleNodesResponse& response) {
  if (failed_) return absl::FailedPreconditionError("merkle repair already failed");
  RepairStep step;
  if (response.session() != session_ || response.revision() != revision_) {
    ++stats_.ignored_messages;
    return step;
  }
  const int level = static_cast<int>(response.level());
  if (response.level() >= static_cast<uint32_t>(tree_->depth())) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("merkle nodes response at level ", response.level(), " of a tree of depth ",
                     tree_->depth())));
  }
  // Ordered, so requests are built in index order whatever order the nodes arrived in.
  std::set<uint64_t> next_level;
  std::vector<uint64_t> differing_buckets;
  for (const MerkleNode& node : response.nodes()) {
    if (pending_nodes_.count({level, node.index()}) == 0) {
      ++stats_.ignored_messages;  // a duplicate, or never asked
      continue;
    }
    if (node.child_hashes_size() != kMerkleFanout) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "merkle node ", level, "/", node.index(), " has ", node.child_hashes_size(),
          " children, want ", kMerkleFanout)));
    }
    pending_nodes_.erase({level, node.index()});
    ++stats_.nodes_compared;
    if (level == 0) source_root_ = MerkleTree::CombineChildren(node.child_hashes());
    const uint64_t first = node.index() << kMerkleFanoutBits;
    for (int c = 0; c < kMerkleFanout; ++c) {
      const uint64_t child = first + c;
      if (tree_->NodeHash(level + 1, child) == node.child_hashes(c)) continue;
      if (level + 1 == tree_->depth()) {
        differing_buckets.push_back(child);
      } else {
        next_level.insert(child);
      }
    }
  }
  for (auto it = next_level.begin(); it != next_level.end();) {
    MerkleNodesRequest request;
    request.set_session(session_);
    request.set_revision(revision_);
    request.set_depth(tree_->depth());
    request.set_level(level + 1);
    for (; it != next_level.end() &&
           static_cast<size_t>(request.indices_size()) < kMerkleIndicesPerRequestMax;
         ++it) {
      request.add_indices(*it);
      pending_nodes_.insert({level + 1, *it});
    }
    step.node_requests.push_back(std::move(request));
    ++stats_.node_requests;
  }
  for (uint64_t bucket : differing_buckets) buckets_queued_.push_back(bucket);
  AdmitBuckets(&step);
  return step;
}

void MerkleRepair::Reconcile(const std::string& key, const Register* local,
                             const Register* source, RepairStep* step) {
  if (source == nullptr) {
    // Only here: the source has no register for the key (never written, or its tombstone
    // collected). Adopting the source means forgetting the key.
    if (mode_ == RepairMode::kAdoptSource) step->changes.push_back({key, std::nullopt});
    return;
  }
  if (local == nullptr) {
    step->changes.push_back({key, *source});
    return;
  }
  if (*local == *source) return;
  const bool local_wins = CompareRegisters(*local, *source) > 0;
  if (local_wins) step->conflicts.push_back({*local, *source});
  if (mode_ == RepairMode::kAdoptSource || !local_wins) step->changes.push_back({key, *source});
}

absl::StatusOr<RepairStep> MerkleRepair::OnBucket(const MerkleBucketResponse& response) {
  if (failed_) return absl::FailedPreconditionError("merkle repair already failed");
  RepairStep step;
  auto in_flight = buckets_in_flight_.find(response.bucket());
  if (response.session() != session_ || response.revision() != revision_ ||
      in_flight == buckets_in_flight_.end() || in_flight->second != response.after_key()) {
    ++stats_.ignored_messages;
    return step;
  }
  const uint64_t bucket = response.bucket();
  std::vector<Register> source;
  source.reserve(response.registers_size());
  for (const std::string& bytes : response.registers()) {
    absl::StatusOr<Register> r = DecodeRegister(bytes);
    if (!r.ok()) return Fail(r.status());
    const std::string& previous = source.empty() ? response.after_key() : source.back().key;
    if (MerkleTree::BucketOf(r->key, tree_->depth()) != bucket || r->key <= previous) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "merkle bucket ", bucket, ": register key out of bucket or out of order")));
    }
    source.push_back(*std::move(r));
  }
  const std::string& continuation = response.continuation();
  if (!continuation.empty() && (source.empty() || source.back().key != continuation)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "merkle bucket ", bucket, ": continuation is not the last key of the part")));
  }
  stats_.registers_received += source.size();

  // Merge-join of this part's key range, (after_key, continuation] or (after_key, end), of
  // both sides: local registers stream from the lister and are never buffered.
  size_t next = 0;
  lister_(bucket, response.after_key(), [&](const Register& local) {
    if (!continuation.empty() && local.key > continuation) return false;
    while (next < source.size() && source[next].key < local.key) {
      Reconcile(source[next].key, nullptr, &source[next], &step);
      ++next;
    }
    if (next < source.size() && source[next].key == local.key) {
      Reconcile(local.key, &local, &source[next], &step);
      ++next;
    } else {
      Reconcile(local.key, &local, nullptr, &step);
    }
    return true;
  });
  for (; next < source.size(); ++next) Reconcile(source[next].key, nullptr, &source[next], &step);
  stats_.changes += step.changes.size();
  stats_.conflicts += step.conflicts.size();

  if (continuation.empty()) {
    buckets_in_flight_.erase(in_flight);
    AdmitBuckets(&step);
  } else {
    in_flight->second = continuation;
    step.bucket_requests.push_back(BucketRequest(bucket, continuation));
    ++stats_.bucket_requests;
  }
  return step;
}

// ---------------------------------------------------------------------------------------
// MerkleRepairSource

MerkleRepairSource::MerkleRepairSource(const MerkleTree* tree, BucketLister lister,
                                       int64_t revision)
    : tree_(tree), lister_(std::move(lister)), revision_(revision) {
  CHECK(tree_ != nullptr);
}

absl::StatusOr<MerkleNodesResponse> MerkleRepairSource::OnNodesRequest(
    const MerkleNodesRequest& request) const {
  if (request.revision() != revision_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merkle repair at revision ", request.revision(), ", serving ", revision_));
  }
  if (request.depth() != static_cast<uint32_t>(tree_->depth())) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle tree depth ", request.depth(), ", have ", tree_->depth()));
  }
  if (request.level() >= request.depth()) {
    return absl::InvalidArgumentError(absl::StrCat("merkle level ", request.level()));
  }
  if (request.indices_size() == 0 ||
      static_cast<size_t>(request.indices_size()) > kMerkleIndicesPerRequestMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle nodes request with ", request.indices_size(), " indices"));
  }
  const int level = static_cast<int>(request.level());
  MerkleNodesResponse response;
  response.set_session(request.session());
  response.set_revision(revision_);
  response.set_level(request.level());
  for (int i = 0; i < request.indices_size(); ++i) {
    const uint64_t index = request.indices(i);
    if (index >= MerkleTree::NodesAt(level) || (i > 0 && index <= request.indices(i - 1))) {
      return absl::InvalidArgumentError(
          absl::StrCat("merkle node index ", index, " out of range or order"));
    }
    MerkleNode* node = response.add_nodes();
    node->set_index(index);
    for (uint64_t h : tree_->Children(level, index)) node->add_child_hashes(h);
  }
  return response;
}

absl::StatusOr<MerkleBucketResponse> MerkleRepairSource::OnBucketRequest(
    const MerkleBucketRequest& request) const {
  if (request.revision() != revision_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "merkle repair at revision ", request.revision(), ", serving ", revision_));
  }
  if (request.depth() != static_cast<uint32_t>(tree_->depth())) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle tree depth ", request.depth(), ", have ", tree_->depth()));
  }
  if (request.bucket() >= MerkleTree::NodesAt(tree_->depth()) ||
      request.after_key().size() > kRegisterKeyBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle bucket ", request.bucket(), " out of range"));
  }
  MerkleBucketResponse response;
  response.set_session(request.session());
  response.set_revision(revision_);
  response.set_bucket(request.bucket());
  response.set_after_key(request.after_key());
  size_t bytes = 0;
  const std::string* last_key = &request.after_key();
  std::string last_key_storage;
  lister_(request.bucket(), request.after_key(), [&](const Register& r) {
    // A lister that disagrees with the tree would make every repair loop: a caller bug.
    CHECK(MerkleTree::BucketOf(r.key, tree_->depth()) == request.bucket());
    CHECK(r.key > *last_key);
    std::string encoded = EncodeRegister(r);
    if (response.registers_size() > 0 && bytes + encoded.size() > kMerkleBucketResponseBytesMax) {
      response.set_continuation(*last_key);
      return false;
    }
    bytes += encoded.size();
    response.add_registers(std::move(encoded));
    last_key_storage = r.key;
    last_key = &last_key_storage;
    return true;
  });
  return response;
}

}  // namespace geoetcd
