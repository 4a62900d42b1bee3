#include "crdt/merkle_tree.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/crdt/crdt_test_util.h"

namespace geoetcd {
namespace {

using crdt_test::Seed;

MerkleTree Build(int depth, const std::map<std::string, uint64_t>& entries) {
  MerkleTree tree(depth);
  for (const auto& [key, hash] : entries) tree.Set(key, hash);
  return tree;
}

TEST(MerkleTreeTest, EmptyTreeHasAWellDefinedRoot) {
  for (int depth = kMerkleDepthMin; depth <= 3; ++depth) {
    MerkleTree tree(depth);
    EXPECT_EQ(tree.Root(), MerkleTree::EmptyRoot(depth));
    EXPECT_EQ(tree.size(), 0u);
    tree.CheckInvariants();
    tree.Set("a", 1);
    EXPECT_NE(tree.Root(), MerkleTree::EmptyRoot(depth));
    tree.Remove("a");
    EXPECT_EQ(tree.Root(), MerkleTree::EmptyRoot(depth));
  }
  EXPECT_NE(MerkleTree::EmptyRoot(1), MerkleTree::EmptyRoot(2));
}

TEST(MerkleTreeTest, ShapeFollowsTheKeyHash) {
  const int depth = 3;
  MerkleTree tree(depth);
  EXPECT_EQ(MerkleTree::NodesAt(depth), 4096u);
  tree.Set("some/key", 42);
  const uint64_t leaf = MerkleTree::BucketOf("some/key", depth);
  EXPECT_EQ(tree.BucketSize(leaf), 1u);
  EXPECT_NE(tree.NodeHash(depth, leaf), 0u);
  for (int level = 0; level < depth; ++level) {
    // The leaf's ancestor at each level is the key's bucket at that level.
    const uint64_t ancestor = leaf >> (kMerkleFanoutBits * (depth - level));
    EXPECT_EQ(ancestor, MerkleTree::BucketOf("some/key", level));
    const std::vector<uint64_t> children = tree.Children(level, ancestor);
    ASSERT_EQ(children.size(), static_cast<size_t>(kMerkleFanout));
    EXPECT_EQ(MerkleTree::CombineChildren(children), tree.NodeHash(level, ancestor));
  }
}

TEST(MerkleTreeTest, GetSetReplaceRemove) {
  MerkleTree tree(2);
  EXPECT_FALSE(tree.Get("a").has_value());
  tree.Set("a", 1);
  tree.Set("b", 2);
  EXPECT_EQ(tree.size(), 2u);
  const uint64_t root_ab = tree.Root();
  tree.Set("a", 3);
  EXPECT_EQ(tree.size(), 2u);
  EXPECT_EQ(*tree.Get("a"), 3u);
  EXPECT_NE(tree.Root(), root_ab);
  tree.Set("a", 1);
  EXPECT_EQ(tree.Root(), root_ab);
  tree.Remove("zzz");  // absent: no-op
  EXPECT_EQ(tree.Root(), root_ab);
  tree.Remove("a");
  EXPECT_EQ(tree.size(), 1u);
  EXPECT_FALSE(tree.Get("a").has_value());
  tree.Clear();
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.Root(), MerkleTree::EmptyRoot(2));
  tree.CheckInvariants();
}

// Equal register hashes under different keys must not cancel, and moving a hash from one
// key to another must change the root.
TEST(MerkleTreeTest, EqualRegisterHashesDoNotCancel) {
  MerkleTree one(1), two(1), moved(1);
  one.Set("a", 7);
  two.Set("a", 7);
  two.Set("b", 7);
  moved.Set("b", 7);
  EXPECT_NE(one.Root(), two.Root());
  EXPECT_NE(one.Root(), moved.Root());
  MerkleTree empty(1);
  EXPECT_NE(two.Root(), empty.Root());
}

TEST(MerkleTreeTest, IncrementalEqualsFromScratchOnRandomOperations) {
  Random rnd(Seed("MerkleTreeTest.IncrementalEqualsFromScratchOnRandomOperations", 31));
  for (int depth : {1, 2, 3}) {
    MerkleTree tree(depth);
    std::map<std::string, uint64_t> model;
    for (int op = 0; op < 20000; ++op) {
      const std::string key = "k" + std::to_string(rnd.Uniform(3000));
      if (rnd.Chance(0.3)) {
        tree.Remove(key);
        model.erase(key);
      } else {
        const uint64_t hash = rnd.Uniform(4);  // many equal hashes
        tree.Set(key, hash);
        model[key] = hash;
      }
      if (rnd.Chance(0.01)) tree.CheckInvariants();
      if (rnd.Chance(0.002)) ASSERT_EQ(tree.Root(), Build(depth, model).Root());
    }
    ASSERT_EQ(tree.size(), model.size());
    tree.CheckInvariants();
    ASSERT_EQ(tree.Root(), Build(depth, model).Root());
    // And the order of inserts does not matter.
    MerkleTree reversed(depth);
    for (auto it = model.rbegin(); it != model.rend(); ++it) reversed.Set(it->first, it->second);
    ASSERT_EQ(reversed.Root(), tree.Root());
  }
}

TEST(MerkleTreeTest, DifferentSetsHaveDifferentRootsOnRandomInputs) {
  Random rnd(Seed("MerkleTreeTest.DifferentSetsHaveDifferentRootsOnRandomInputs", 32));
  std::set<uint64_t> roots;
  std::set<std::map<std::string, uint64_t>> sets;
  for (int i = 0; i < 20000; ++i) {
    std::map<std::string, uint64_t> entries;
    const int n = static_cast<int>(rnd.Uniform(5));
    for (int k = 0; k < n; ++k) entries["k" + std::to_string(rnd.Uniform(6))] = rnd.Uniform(3);
    if (!sets.insert(entries).second) continue;
    ASSERT_TRUE(roots.insert(Build(2, entries).Root()).second) << "two sets share a root";
  }
  std::printf("distinct sets: %zu\n", sets.size());
  EXPECT_GT(sets.size(), 1000u);
}

TEST(MerkleTreeTest, CopyIsASnapshot) {
  MerkleTree tree(2);
  tree.Set("a", 1);
  const MerkleTree snapshot = tree;
  const uint64_t root = snapshot.Root();
  tree.Set("b", 2);
  EXPECT_EQ(snapshot.Root(), root);
  EXPECT_NE(tree.Root(), root);
  snapshot.CheckInvariants();
}

TEST(MerkleTreeDeathTest, OutOfRangeNodesAreABug) {
  MerkleTree tree(2);
  EXPECT_DEATH(tree.NodeHash(3, 0), "CHECK failed");
  EXPECT_DEATH(tree.NodeHash(1, 16), "CHECK failed");
  EXPECT_DEATH(tree.Children(2, 0), "CHECK failed");
  EXPECT_DEATH(MerkleTree(kMerkleDepthMax + 1), "CHECK failed");
}

}  // namespace
}  // namespace geoetcd
