#include "bench/engine.h"

#include <set>
#include <string>

#include "gtest/gtest.h"

namespace geoetcd::bench {
namespace {

TEST(KeyFormatTest, FixedWidthZeroPaddedKeys) {
  const KeyFormat keys("bench/", 12);
  EXPECT_EQ(keys.Make(0), "bench/000000");
  EXPECT_EQ(keys.Make(42), "bench/000042");
  EXPECT_EQ(keys.Make(999999), "bench/999999");
  // Rewriting a shorter index into a reused buffer leaves no digits of the old one.
  std::string key;
  keys.Write(123456, &key);
  keys.Write(7, &key);
  EXPECT_EQ(key, "bench/000007");
}

TEST(KeyFormatTest, DistinctIndexesGiveDistinctKeysInOrder) {
  const KeyFormat keys("k", 6);
  std::set<std::string> seen;
  std::string previous;
  for (uint64_t i = 0; i < 10000; ++i) {
    const std::string key = keys.Make(i);
    EXPECT_EQ(key.size(), 6u);
    EXPECT_GT(key, previous);
    previous = key;
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

TEST(KeyFormatTest, PrefixEndCoversEveryKey) {
  EXPECT_EQ(KeyFormat("bench/", 10).PrefixEnd(), "bench0");
  EXPECT_EQ(KeyFormat("a\xff", 10).PrefixEnd(), "b");
  EXPECT_EQ(KeyFormat("", 10).PrefixEnd(), std::string(1, '\0'));
  const KeyFormat keys("bench/", 10);
  EXPECT_LT(keys.Make(9999), keys.PrefixEnd());
}

TEST(ShareOfTest, SplitsExactlyAndEvenly) {
  uint64_t sum = 0;
  for (int i = 0; i < 7; ++i) {
    const uint64_t share = ShareOf(100, 7, i);
    EXPECT_TRUE(share == 14 || share == 15) << share;
    sum += share;
  }
  EXPECT_EQ(sum, 100u);
  EXPECT_EQ(ShareOf(2, 4, 3), 0u);
}

TEST(RandomValueTest, SizeAndVariety) {
  FastRandom rng(1);
  const std::string v = RandomValue(&rng, 4096);
  EXPECT_EQ(v.size(), 4096u);
  EXPECT_GT(std::set<char>(v.begin(), v.end()).size(), 50u);
}

}  // namespace
}  // namespace geoetcd::bench
