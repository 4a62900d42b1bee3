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
  RegisterReader Reader() const {
    return [this](std::string_view key) -> std::optional<Register> {
      auto it = registers_.find(std::string(key));
      if (it == registers_.end()) return std::nullopt;
      return it->second;
    };
  }
  RepairKeyspace Keyspace() const { return {&tree_, Lister(), Reader()}; }
  const MerkleTree& tree() const { return tree_; }
  const std::map<std::string, Register>& registers() const { return registers_; }

 private:
  MerkleTree tree_;
  std::map<std::string, Register> registers_;
};


// Runs a repair to completion over a perfect in-memory channel, counting the serialized size
// of every message. With `chaos`, requests are answered in random order and some responses
// are delivered again later.
struct RepairRun {
  uint64_t bytes = 0;  // every request and response, as serialized protobuf
  uint64_t messages = 0;
  uint64_t response_payload_bytes_max = 0;  // largest entries/registers payload of a response
  std::vector<RepairConflict> conflicts;
};

template <typename ApplyFn>
RepairRun RunRepair(MerkleRepair* repair, const MerkleRepairSource& source, ApplyFn apply,
                    Random* chaos = nullptr) {
  RepairRun run;
  std::vector<MerkleNodesRequest> nodes;
  std::vector<MerkleBucketRequest> buckets;
  std::vector<MerkleRegistersRequest> registers;
  std::vector<MerkleNodesResponse> replay_nodes;
  std::vector<MerkleBucketResponse> replay_buckets;
  std::vector<MerkleRegistersResponse> replay_registers;
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
    for (const auto& r : step->register_requests) registers.push_back(r);
  };
  // Answers one request and feeds the response back; false if the source refused it.
  auto serve = [&](auto& queue, size_t pick, auto answer, auto feed, auto& replays,
                   auto payload_of) {
    const auto request = queue[pick];
    queue.erase(queue.begin() + pick);
    auto response = answer(request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return false;
    run.bytes += request.ByteSizeLong() + response->ByteSizeLong();
    run.messages += 2;
    run.response_payload_bytes_max =
        std::max<uint64_t>(run.response_payload_bytes_max, payload_of(*response));
    take(feed(*response));
    if (chaos != nullptr && chaos->Chance(0.3)) replays.push_back(*response);
    return true;
  };
  auto no_payload = [](const auto&) { return uint64_t{0}; };
  auto entries_payload = [](const MerkleBucketResponse& r) {
    uint64_t n = 0;
    for (const auto& e : r.entries()) n += e.key().size() + 8;
    return n;
  };
  auto registers_payload = [](const MerkleRegistersResponse& r) {
    uint64_t n = 0;
    for (const auto& b : r.registers()) n += b.size();
    return n;
  };
  while (!nodes.empty() || !buckets.empty() || !registers.empty()) {
    if (repair->failed()) break;
    const size_t total = nodes.size() + buckets.size() + registers.size();
    size_t pick = chaos != nullptr ? chaos->Uniform(total) : 0;
    bool ok;
    if (pick < nodes.size()) {
      ok = serve(nodes, pick, [&](const auto& r) { return source.OnNodesRequest(r); },
                 [&](const auto& r) { return repair->OnNodes(r); }, replay_nodes, no_payload);
    } else if ((pick -= nodes.size()) < buckets.size()) {
      ok = serve(buckets, pick, [&](const auto& r) { return source.OnBucketRequest(r); },
                 [&](const auto& r) { return repair->OnBucket(r); }, replay_buckets,
                 entries_payload);
    } else {
      pick -= buckets.size();
      ok = serve(registers, pick, [&](const auto& r) { return source.OnRegistersRequest(r); },
                 [&](const auto& r) { return repair->OnRegisters(r); }, replay_registers,
                 registers_payload);
    }
    if (!ok) break;
    // Replays arrive late, after their part was handled: they must change nothing.
    if (chaos != nullptr && chaos->Chance(0.2)) {
      for (const auto& r : replay_nodes) take(repair->OnNodes(r));
      for (const auto& r : replay_buckets) take(repair->OnBucket(r));
      for (const auto& r : replay_registers) take(repair->OnRegisters(r));
      replay_nodes.clear();
      replay_buckets.clear();
      replay_registers.clear();
    }
  }
  return run;
}

}  // namespace crdt_test
}  // namespace geoetcd

#endif  // GEOETCD_TESTS_CRDT_CRDT_TEST_UTIL_H_
