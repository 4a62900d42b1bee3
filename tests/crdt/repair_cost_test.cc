// What a Merkle repair costs on the wire: 1,000,000 keys, a handful differing. The bytes
// must grow with the difference, not with the keyspace (issue 10, item 5).
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "crdt/anti_entropy.h"
#include "gtest/gtest.h"
#include "tests/crdt/crdt_test_util.h"

namespace geoetcd {
namespace {

constexpr uint32_t kKeys = 1'000'000;
constexpr size_t kValueBytes = 128;

std::string KeyOf(uint32_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "/registry/pods/p%08u", i);  // fixed width: index order
  return buf;
}

uint32_t IndexOf(std::string_view key) {
  return static_cast<uint32_t>(std::stoul(std::string(key.substr(16))));
}

Register BaseRegister(uint32_t i) {
  Register r;
  r.key = KeyOf(i);
  r.value.assign(kValueBytes, static_cast<char>('a' + i % 26));
  r.create_revision = 1 + i;
  r.mod_revision = 1 + i;
  r.version = 1;
  r.stamp = {MakeHlc(1'700'000'000'000 + i, 0), 1};
  return r;
}

// The keys of both sides, bucketed once; a side is the base set plus overrides.
class SyntheticKeyspaces {
 public:
  explicit SyntheticKeyspaces(int depth) : depth_(depth), by_bucket_(MerkleTree::NodesAt(depth)) {
    base_tree_ = MerkleTree(depth);
    for (uint32_t i = 0; i < kKeys; ++i) {
      const Register r = BaseRegister(i);
      by_bucket_[MerkleTree::BucketOf(r.key, depth)].push_back(i);
      base_tree_.Set(r.key, RegisterHash(r));
    }
  }

  // Overrides: index -> register, or nullopt for "absent on this side".
  using Overrides = std::map<uint32_t, std::optional<Register>>;

  MerkleTree TreeOf(const Overrides& overrides) const {
    MerkleTree tree = base_tree_;
    for (const auto& [i, r] : overrides) {
      if (r.has_value()) {
        tree.Set(r->key, RegisterHash(*r));
      } else {
        tree.Remove(KeyOf(i));
      }
    }
    return tree;
  }

  BucketLister ListerOf(const Overrides* overrides) const {
    return [this, overrides](uint64_t bucket, std::string_view after_key,
                             const RegisterVisitor& visit) {
      std::vector<uint32_t> indices = by_bucket_[bucket];
      for (const auto& [i, r] : *overrides) {
        if (i >= kKeys && MerkleTree::BucketOf(KeyOf(i), depth_) == bucket) indices.push_back(i);
      }
      std::sort(indices.begin(), indices.end());
      for (uint32_t i : indices) {
        const std::string key = KeyOf(i);
        if (key <= after_key) continue;
        auto it = overrides->find(i);
        if (it == overrides->end()) {
          if (!visit(BaseRegister(i))) return;
        } else if (it->second.has_value()) {
          if (!visit(*it->second)) return;
        }
      }
    };
  }

  RegisterReader ReaderOf(const Overrides* overrides) const {
    return [overrides](std::string_view key) -> std::optional<Register> {
      const uint32_t i = IndexOf(key);
      auto it = overrides->find(i);
      if (it != overrides->end()) return it->second;
      if (i >= kKeys) return std::nullopt;
      return BaseRegister(i);
    };
  }

  const MerkleTree& base_tree() const { return base_tree_; }

 private:
  int depth_;
  std::vector<std::vector<uint32_t>> by_bucket_;
  MerkleTree base_tree_;
};

struct Cost {
  uint64_t bytes = 0;
  uint64_t messages = 0;
  uint64_t registers = 0;
  uint64_t changes = 0;
};

// `differing` keys differ, a third each: newer at the source, deleted at the source
// (tombstone), and present only at the source.
Cost MeasureRepair(const SyntheticKeyspaces& spaces, int differing, Random& rnd) {
  SyntheticKeyspaces::Overrides local, source;
  for (int d = 0; d < differing; ++d) {
    uint32_t i = static_cast<uint32_t>(rnd.Uniform(kKeys));
    while (source.count(i) > 0) i = static_cast<uint32_t>(rnd.Uniform(kKeys));
    Register r = BaseRegister(i);
    r.stamp.hlc += MakeHlc(1000, 0);
    r.mod_revision += kKeys;
    switch (d % 3) {
      case 0:
        r.value = "updated at the source";
        r.version = 2;
        source[i] = r;
        break;
      case 1:
        r.tombstone = true;
        r.value.clear();
        r.create_revision = r.version = 0;
        source[i] = r;
        break;
      default:
        local[kKeys + i] = std::nullopt;
        source[kKeys + i] = BaseRegister(i);
        source[kKeys + i]->key = KeyOf(kKeys + i);
        break;
    }
  }
  MerkleTree local_tree = spaces.TreeOf(local);
  const MerkleTree source_tree = spaces.TreeOf(source);
  MerkleRepairSource src({&source_tree, spaces.ListerOf(&source), spaces.ReaderOf(&source)},
                         /*revision=*/5);
  MerkleRepair repair({&local_tree, spaces.ListerOf(&local), spaces.ReaderOf(&local)},
                      /*session=*/1, /*revision=*/5);
  crdt_test::RepairRun run = crdt_test::RunRepair(&repair, src, [&](const RepairChange& c) {
    // The lister reads `local`, the tree `local_tree`: keep both in step.
    local[IndexOf(c.key)] = c.after;
    if (c.after.has_value()) {
      local_tree.Set(c.key, RegisterHash(*c.after));
    } else {
      local_tree.Remove(c.key);
    }
  });
  EXPECT_TRUE(repair.done());
  EXPECT_EQ(local_tree.Root(), source_tree.Root());
  EXPECT_EQ(repair.stats().changes, static_cast<uint64_t>(differing));
  return Cost{run.bytes, run.messages, repair.stats().registers_received,
              repair.stats().changes};
}

TEST(RepairCostTest, BytesGrowWithTheDifferenceNotTheKeyspace) {
  Random rnd(crdt_test::Seed("RepairCostTest.BytesGrowWithTheDifferenceNotTheKeyspace", 51));
  const auto start = std::chrono::steady_clock::now();
  const SyntheticKeyspaces spaces(kMerkleDepthDefault);
  const double build_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const MerkleTree& tree = spaces.base_tree();
  std::printf("tree over %u keys (depth %d, %llu leaves): %zu bytes, %.1f bytes/key; built in "
              "%.2f s\n",
              kKeys, kMerkleDepthDefault,
              static_cast<unsigned long long>(MerkleTree::NodesAt(kMerkleDepthDefault)),
              tree.MemoryBytes(), static_cast<double>(tree.MemoryBytes()) / kKeys, build_s);
  const uint64_t keyspace_bytes =
      uint64_t{kKeys} * EncodeRegister(BaseRegister(0)).size();  // sending it all

  std::map<int, Cost> costs;
  for (int differing : {0, 1, 10, 100, 1000}) {
    costs[differing] = MeasureRepair(spaces, differing, rnd);
    const Cost& c = costs[differing];
    std::printf("repair bytes for 1M keys with %d differing: %llu (%llu messages, %llu registers "
                "sent)\n",
                differing, static_cast<unsigned long long>(c.bytes),
                static_cast<unsigned long long>(c.messages),
                static_cast<unsigned long long>(c.registers));
  }
  std::printf("for comparison, the whole keyspace encoded: %llu bytes\n",
              static_cast<unsigned long long>(keyspace_bytes));

  EXPECT_EQ(costs[0].messages, 2u);
  EXPECT_LT(costs[0].bytes, 200u);
  // Ten differences: ten root-to-leaf paths, ten buckets of ~15 keys and hashes, and the
  // ten registers.
  EXPECT_LT(costs[10].bytes, 32u << 10);
  EXPECT_LT(costs[10].bytes * 1000, keyspace_bytes);
  // Roughly linear in the difference, far from the keyspace.
  EXPECT_GT(costs[100].bytes, 5 * costs[10].bytes);
  EXPECT_LT(costs[100].bytes, 15 * costs[10].bytes);
  EXPECT_LT(costs[1000].bytes * 50, keyspace_bytes);
}

}  // namespace
}  // namespace geoetcd
