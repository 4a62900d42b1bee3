// Shared helpers of the crdt/ tests: seeded random registers and an in-memory keyspace with
// its Merkle tree and bucket lister.
#ifndef GEOETCD_TESTS_CRDT_CRDT_TEST_UTIL_H_
#define GEOETCD_TESTS_CRDT_CRDT_TEST_UTIL_H_

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/random.h"
#include "gtest/gtest.h"
#include "crdt/anti_entropy.h"
#include "crdt/merkle_tree.h"
#include "crdt/register.h"

namespace geoetcd {
namespace crdt_test {

// GEOETCD_SEED overrides the test's default seed; the seed in use is printed.
inline uint64_t Seed(const char* test, uint64_t fallback) {
  const char* env = std::getenv("GEOETCD_SEED");
  const uint64_t seed = env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
  std::printf("%s seed=%llu (rerun with GEOETCD_SEED=%llu)\n", test,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  return seed;
}

inline std::string RandomBytes(Random& rnd, size_t size_max) {
  std::string s(rnd.Uniform(size_max + 1), '\0');
  for (char& c : s) c = static_cast<char>(rnd.Uniform(256));
  return s;
}

// A register of `key` with small-domain fields, so equal stamps and near-equal registers
// are common.
inline Register RandomRegister(Random& rnd, std::string key) {
  Register r;
  r.key = std::move(key);
  r.tombstone = rnd.Chance(0.25);
  if (!r.tombstone) {
    r.value = RandomBytes(rnd, 8);
    r.create_revision = rnd.Range(0, 3);
    r.version = rnd.Range(0, 3);
    r.lease = rnd.Chance(0.2) ? rnd.Range(-1, 2) : 0;
  }
  r.mod_revision = rnd.Range(0, 3);
  r.stamp.hlc = MakeHlc(rnd.Range(0, 2), rnd.Uniform(2));
  r.stamp.origin = rnd.Uniform(3);
  return r;
}

// A keyspace: registers by key, and its tree kept in step.
class MapKeyspace {
 public:
  explicit MapKeyspace(int depth) : tree_(depth) {}

  void Put(const Register& r) {
    registers_[r.key] = r;
    tree_.Set(r.key, RegisterHash(r));
  }
  void Erase(const std::string& key) {
    registers_.erase(key);
    tree_.Remove(key);
  }
  void Apply(const RepairChange& change) {
    if (change.after.has_value()) {
      Put(*change.after);
    } else {
      Erase(change.key);
    }
  }
  // Full scan filtered by bucket: simple, and the key order is the map's.
  BucketLister Lister() const {
    return [this](uint64_t bucket, std::string_view after_key, const RegisterVisitor& visit) {
      for (auto it = registers_.upper_bound(std::string(after_key)); it != registers_.end();
           ++it) {
        if (MerkleTree::BucketOf(it->first, tree_.depth()) != bucket) continue;
        if (!visit(it->second)) return;
      }
    };
  }
  const MerkleTree& tree() const { return tree_; }
  const std::map<std::string, Register>& registers() const { return registers_; }

 private:
  MerkleTree tree_;
  std::map<std::string, Register> registers_;
};


// Runs a repair to completion over a perfect in-memory channel, counting the serialized size
// of every message. With `chaos`, messages are delivered in random order and some responses
// are delivered twice.
struct RepairRun {
  uint64_t bytes = 0;  // every request and response, as serialized protobuf
  uint64_t messages = 0;
  uint64_t bucket_response_bytes_max = 0;  // largest register payload of one response
  std::vector<RepairConflict> conflicts;
};

template <typename ApplyFn>
RepairRun RunRepair(MerkleRepair* repair, const MerkleRepairSource& source, ApplyFn apply,
                    Random* chaos = nullptr) {
  RepairRun run;
  // Requests not yet answered. A deque of variants would do; two vectors keep it simple.
  std::vector<MerkleNodesRequest> nodes;
  std::vector<MerkleBucketRequest> buckets;
  std::vector<MerkleNodesResponse> replay_nodes;
  std::vector<MerkleBucketResponse> replay_buckets;
  nodes.push_back(repair->Start());
  auto take = [&](const absl::StatusOr<RepairStep>& step) {
    if (!step.ok()) {
      ADD_FAILURE() << step.status();
      return;
    }
    for (const RepairChange& c : step->changes) apply(c);
    for (const RepairConflict& c : step->conflicts) run.conflicts.push_back(c);
    for (const auto& r : step->node_requests) nodes.push_back(r);
    for (const auto& r : step->bucket_requests) buckets.push_back(r);
  };
  while (!nodes.empty() || !buckets.empty()) {
    if (repair->failed()) break;
    const size_t total = nodes.size() + buckets.size();
    size_t pick = chaos != nullptr ? chaos->Uniform(total) : 0;
    if (pick < nodes.size()) {
      const MerkleNodesRequest request = nodes[pick];
      nodes.erase(nodes.begin() + pick);
      absl::StatusOr<MerkleNodesResponse> response = source.OnNodesRequest(request);
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) break;
      run.bytes += request.ByteSizeLong() + response->ByteSizeLong();
      run.messages += 2;
      take(repair->OnNodes(*response));
      if (chaos != nullptr && chaos->Chance(0.3)) replay_nodes.push_back(*response);
    } else {
      pick -= nodes.size();
      const MerkleBucketRequest request = buckets[pick];
      buckets.erase(buckets.begin() + pick);
      absl::StatusOr<MerkleBucketResponse> response = source.OnBucketRequest(request);
      EXPECT_TRUE(response.ok()) << response.status();
      if (!response.ok()) break;
      run.bytes += request.ByteSizeLong() + response->ByteSizeLong();
      run.messages += 2;
      uint64_t payload = 0;
      for (const std::string& r : response->registers()) payload += r.size();
      run.bucket_response_bytes_max = std::max(run.bucket_response_bytes_max, payload);
      take(repair->OnBucket(*response));
      if (chaos != nullptr && chaos->Chance(0.3)) replay_buckets.push_back(*response);
    }
    // Replays arrive late, after their part was handled: they must change nothing.
    if (chaos != nullptr && chaos->Chance(0.2)) {
      for (const auto& r : replay_nodes) take(repair->OnNodes(r));
      for (const auto& r : replay_buckets) take(repair->OnBucket(r));
      replay_nodes.clear();
      replay_buckets.clear();
    }
  }
  return run;
}

}  // namespace crdt_test
}  // namespace geoetcd

#endif  // GEOETCD_TESTS_CRDT_CRDT_TEST_UTIL_H_
