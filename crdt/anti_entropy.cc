#include "crdt/anti_entropy.h"

#include <iterator>
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

MerkleRepair::MerkleRepair(RepairKeyspace local, uint64_t session, int64_t source_revision,
                           RepairMode mode)
    : local_(std::move(local)), session_(session), revision_(source_revision), mode_(mode) {
  CHECK(local_.tree != nullptr && local_.list && local_.read);
}

MerkleNodesRequest MerkleRepair::Start() {
  CHECK(!started_);
  started_ = true;
  MerkleNodesRequest request;
  request.set_session(session_);
  request.set_revision(revision_);
  request.set_depth(local_.tree->depth());
  request.set_level(0);
  request.add_indices(0);
  pending_nodes_.insert({0, 0});
  ++stats_.node_requests;
  return request;
}

bool MerkleRepair::done() const {
  return started_ && !failed_ && pending_nodes_.empty() && buckets_in_progress_.empty() &&
         buckets_queued_.empty() && pending_registers_.empty();
}

absl::Status MerkleRepair::Fail(absl::Status status) {
  failed_ = true;
  return status;
}

MerkleBucketRequest MerkleRepair::BucketRequest(uint64_t bucket, std::string after_key) const {
  MerkleBucketRequest request;
  request.set_session(session_);
  request.set_revision(revision_);
  request.set_depth(local_.tree->depth());
  request.set_bucket(bucket);
  request.set_after_key(std::move(after_key));
  return request;
}

void MerkleRepair::AdmitBuckets(RepairStep* step) {
  while (!buckets_queued_.empty() && buckets_in_progress_.size() < kRepairBucketsInFlightMax) {
    const uint64_t bucket = buckets_queued_.front();
    buckets_queued_.pop_front();
    buckets_in_progress_[bucket] = BucketProgress();
    step->bucket_requests.push_back(BucketRequest(bucket, ""));
    ++stats_.bucket_requests;
  }
}

void MerkleRepair::MaybeFinishBucket(uint64_t bucket, RepairStep* step) {
  auto it = buckets_in_progress_.find(bucket);
  CHECK(it != buckets_in_progress_.end());
  if (it->second.awaited_part.has_value() || it->second.register_requests_outstanding > 0) {
    return;
  }
  buckets_in_progress_.erase(it);
  AdmitBuckets(step);
}

void MerkleRepair::RequestRegisters(uint64_t bucket, std::vector<std::string> keys,
                                    RepairStep* step) {
  size_t next = 0;
  while (next < keys.size()) {
    MerkleRegistersRequest request;
    request.set_session(session_);
    request.set_revision(revision_);
    request.set_depth(local_.tree->depth());
    request.set_bucket(bucket);
    request.set_request_id(next_request_id_++);
    std::vector<std::string> batch;
    size_t bytes = 0;
    while (next < keys.size() && batch.size() < kMerkleKeysPerRequestMax &&
           (batch.empty() || bytes + keys[next].size() <= kMerkleRequestKeyBytesMax)) {
      bytes += keys[next].size();
      request.add_keys(keys[next]);
      batch.push_back(std::move(keys[next]));
      ++next;
    }
    pending_registers_[request.request_id()] = {bucket, std::move(batch)};
    ++buckets_in_progress_[bucket].register_requests_outstanding;
    step->register_requests.push_back(std::move(request));
    ++stats_.register_requests;
  }
}

absl::StatusOr<RepairStep> MerkleRepair::OnNodes(const MerkleNodesResponse& response) {
  if (failed_) return absl::FailedPreconditionError("merkle repair already failed");
  RepairStep step;
  if (response.session() != session_ || response.revision() != revision_) {
    ++stats_.ignored_messages;
    return step;
  }
  const MerkleTree& tree = *local_.tree;
  if (response.level() >= static_cast<uint32_t>(tree.depth())) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("merkle nodes response at level ", response.level(), " of a tree of depth ",
                     tree.depth())));
  }
  const int level = static_cast<int>(response.level());
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
      if (tree.NodeHash(level + 1, child) == node.child_hashes(c)) continue;
      if (level + 1 == tree.depth()) {
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
    request.set_depth(tree.depth());
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
    if (local == nullptr) return;
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
  auto progress = buckets_in_progress_.find(response.bucket());
  if (response.session() != session_ || response.revision() != revision_ ||
      progress == buckets_in_progress_.end() || !progress->second.awaited_part.has_value() ||
      *progress->second.awaited_part != response.after_key()) {
    ++stats_.ignored_messages;
    return step;
  }
  const uint64_t bucket = response.bucket();
  const int depth = local_.tree->depth();
  const std::string* previous = &response.after_key();
  for (const MerkleKeyHash& entry : response.entries()) {
    if (entry.key().empty() || entry.key().size() > kRegisterKeyBytesMax ||
        entry.key() <= *previous || MerkleTree::BucketOf(entry.key(), depth) != bucket) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "merkle bucket ", bucket, ": a key is out of the bucket, out of order or invalid")));
    }
    previous = &entry.key();
  }
  const std::string& continuation = response.continuation();
  if (!continuation.empty() &&
      (response.entries().empty() || response.entries().rbegin()->key() != continuation)) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "merkle bucket ", bucket, ": continuation is not the last key of the part")));
  }
  stats_.key_hashes_received += response.entries_size();

  // Merge-join of this part's key range, (after_key, continuation] or (after_key, end), of
  // both sides. Local registers stream from the lister and are never buffered.
  std::vector<std::string> fetch;
  const auto& entries = response.entries();
  int next = 0;
  local_.list(bucket, response.after_key(), [&](const Register& local) {
    if (!continuation.empty() && local.key > continuation) return false;
    for (; next < entries.size() && entries[next].key() < local.key; ++next) {
      fetch.push_back(entries[next].key());
    }
    if (next < entries.size() && entries[next].key() == local.key) {
      if (entries[next].register_hash() != RegisterHash(local)) fetch.push_back(local.key);
      ++next;
    } else {
      Reconcile(local.key, &local, nullptr, &step);
    }
    return true;
  });
  for (; next < entries.size(); ++next) fetch.push_back(entries[next].key());
  stats_.changes += step.changes.size();

  if (continuation.empty()) {
    progress->second.awaited_part.reset();
  } else {
    progress->second.awaited_part = continuation;
    step.bucket_requests.push_back(BucketRequest(bucket, continuation));
    ++stats_.bucket_requests;
  }
  RequestRegisters(bucket, std::move(fetch), &step);
  MaybeFinishBucket(bucket, &step);
  return step;
}

absl::StatusOr<RepairStep> MerkleRepair::OnRegisters(const MerkleRegistersResponse& response) {
  if (failed_) return absl::FailedPreconditionError("merkle repair already failed");
  RepairStep step;
  auto pending = pending_registers_.find(response.request_id());
  if (response.session() != session_ || response.revision() != revision_ ||
      pending == pending_registers_.end() || pending->second.first != response.bucket()) {
    ++stats_.ignored_messages;
    return step;
  }
  const uint64_t bucket = pending->second.first;
  std::vector<std::string>& keys = pending->second.second;
  const size_t answered = static_cast<size_t>(response.registers_size());
  if (answered == 0 || answered > keys.size()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "merkle registers: ", answered, " registers for ", keys.size(), " keys")));
  }
  // Decode everything before emitting anything: a bad response changes nothing.
  std::vector<std::optional<Register>> source(answered);
  for (size_t i = 0; i < answered; ++i) {
    const std::string& bytes = response.registers(static_cast<int>(i));
    if (bytes.empty()) continue;  // the source has no register for the key
    absl::StatusOr<Register> r = DecodeRegister(bytes);
    if (!r.ok()) return Fail(r.status());
    if (r->key != keys[i]) {
      return Fail(absl::InvalidArgumentError("merkle registers: a register for another key"));
    }
    source[i] = *std::move(r);
  }
  stats_.registers_received += answered;
  const size_t changes_before = step.changes.size();
  for (size_t i = 0; i < answered; ++i) {
    const std::optional<Register> local = local_.read(keys[i]);
    Reconcile(keys[i], local ? &*local : nullptr, source[i] ? &*source[i] : nullptr, &step);
  }
  stats_.changes += step.changes.size() - changes_before;
  stats_.conflicts += step.conflicts.size();

  std::vector<std::string> rest(std::make_move_iterator(keys.begin() + answered),
                                std::make_move_iterator(keys.end()));
  pending_registers_.erase(pending);
  --buckets_in_progress_[bucket].register_requests_outstanding;
  RequestRegisters(bucket, std::move(rest), &step);
  MaybeFinishBucket(bucket, &step);
  return step;
}

// ---------------------------------------------------------------------------------------
// MerkleRepairSource

MerkleRepairSource::MerkleRepairSource(RepairKeyspace source, int64_t revision)
    : source_(std::move(source)), revision_(revision) {
  CHECK(source_.tree != nullptr && source_.list && source_.read);
}

absl::Status MerkleRepairSource::CheckSession(int64_t revision, uint32_t depth) const {
  if (revision != revision_) {
    return absl::FailedPreconditionError(
        absl::StrCat("merkle repair at revision ", revision, ", serving ", revision_));
  }
  if (depth != static_cast<uint32_t>(source_.tree->depth())) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle tree depth ", depth, ", have ", source_.tree->depth()));
  }
  return absl::OkStatus();
}

absl::StatusOr<MerkleNodesResponse> MerkleRepairSource::OnNodesRequest(
    const MerkleNodesRequest& request) const {
  if (absl::Status s = CheckSession(request.revision(), request.depth()); !s.ok()) return s;
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
    for (uint64_t h : source_.tree->Children(level, index)) node->add_child_hashes(h);
  }
  return response;
}

absl::StatusOr<MerkleBucketResponse> MerkleRepairSource::OnBucketRequest(
    const MerkleBucketRequest& request) const {
  if (absl::Status s = CheckSession(request.revision(), request.depth()); !s.ok()) return s;
  if (request.bucket() >= MerkleTree::NodesAt(source_.tree->depth()) ||
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
  source_.list(request.bucket(), request.after_key(), [&](const Register& r) {
    // A lister that disagrees with the tree would make every repair loop: a caller bug.
    CHECK(MerkleTree::BucketOf(r.key, source_.tree->depth()) == request.bucket());
    const size_t entry_bytes = r.key.size() + sizeof(uint64_t);
    if (response.entries_size() > 0 && bytes + entry_bytes > kMerkleResponseBytesMax) {
      response.set_continuation(response.entries().rbegin()->key());
      return false;
    }
    CHECK(r.key > (response.entries().empty() ? request.after_key()
                                              : response.entries().rbegin()->key()));
    bytes += entry_bytes;
    MerkleKeyHash* entry = response.add_entries();
    entry->set_key(r.key);
    entry->set_register_hash(RegisterHash(r));
    return true;
  });
  return response;
}

absl::StatusOr<MerkleRegistersResponse> MerkleRepairSource::OnRegistersRequest(
    const MerkleRegistersRequest& request) const {
  if (absl::Status s = CheckSession(request.revision(), request.depth()); !s.ok()) return s;
  const int depth = source_.tree->depth();
  if (request.bucket() >= MerkleTree::NodesAt(depth) || request.keys_size() == 0 ||
      static_cast<size_t>(request.keys_size()) > kMerkleKeysPerRequestMax) {
    return absl::InvalidArgumentError(absl::StrCat("merkle registers request for bucket ",
                                                   request.bucket(), " with ",
                                                   request.keys_size(), " keys"));
  }
  size_t key_bytes = 0;
  for (int i = 0; i < request.keys_size(); ++i) {
    const std::string& key = request.keys(i);
    key_bytes += key.size();
    if (key.empty() || (i > 0 && key <= request.keys(i - 1)) ||
        MerkleTree::BucketOf(key, depth) != request.bucket()) {
      return absl::InvalidArgumentError(
          "merkle registers request: a key is empty, out of order or not in the bucket");
    }
  }
  if (key_bytes > kMerkleRequestKeyBytesMax && request.keys_size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("merkle registers request with ", key_bytes, " bytes of keys"));
  }
  MerkleRegistersResponse response;
  response.set_session(request.session());
  response.set_revision(revision_);
  response.set_bucket(request.bucket());
  response.set_request_id(request.request_id());
  size_t bytes = 0;
  for (const std::string& key : request.keys()) {
    const std::optional<Register> r = source_.read(key);
    CHECK(!r.has_value() || r->key == key);
    std::string encoded = r.has_value() ? EncodeRegister(*r) : std::string();
    if (response.registers_size() > 0 && bytes + encoded.size() > kMerkleResponseBytesMax) break;
    bytes += encoded.size();
    response.add_registers(std::move(encoded));
  }
  return response;
}

}  // namespace geoetcd
