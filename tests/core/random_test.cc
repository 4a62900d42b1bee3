#include "core/random.h"

#include <set>

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

TEST(RandomTest, SameSeedSameSequence) {
  Random a(42), b(42);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Next(), b.Next());
}

TEST(RandomTest, DifferentSeedsDiffer) {
  Random a(1), b(2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a.Next() == b.Next();
  EXPECT_EQ(same, 0);
}

TEST(RandomTest, UniformStaysInBoundsAndCoversThem) {
  Random r(7);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t x = r.Uniform(10);
    ASSERT_LT(x, 10u);
    seen.insert(x);
  }
  EXPECT_EQ(seen.size(), 10u);
  for (int i = 0; i < 1000; ++i) {
    const int64_t y = r.Range(-3, 3);
    ASSERT_GE(y, -3);
    ASSERT_LE(y, 3);
  }
}

TEST(RandomTest, ForkIsDeterministicAndIndependent) {
  Random a(9), b(9);
  Random fa = a.Fork(), fb = b.Fork();
  EXPECT_EQ(fa.Next(), fb.Next());
  EXPECT_NE(a.Next(), fa.Next());
}

}  // namespace
}  // namespace geoetcd
