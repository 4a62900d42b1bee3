#include "core/hlc.h"

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

TEST(HlcClockTest, FollowsPhysicalTimeWhenItAdvances) {
  HlcClock clock;
  EXPECT_EQ(clock.Now(1000), MakeHlc(1000, 0));
  EXPECT_EQ(clock.Now(1005), MakeHlc(1005, 0));
}

TEST(HlcClockTest, LogicalCounterBreaksTiesWithinOneMillisecond) {
  HlcClock clock;
  const Hlc a = clock.Now(1000);
  const Hlc b = clock.Now(1000);
  EXPECT_GT(b, a);
  EXPECT_EQ(HlcPhysicalMs(b), 1000);
  EXPECT_EQ(HlcLogical(b), 1u);
}

TEST(HlcClockTest, NeverGoesBackwardsWhenWallClockJumpsBack) {
  HlcClock clock;
  const Hlc a = clock.Now(5000);
  const Hlc b = clock.Now(1000);
  EXPECT_GT(b, a);
  EXPECT_EQ(HlcPhysicalMs(b), 5000);
}

TEST(HlcClockTest, ObservedRemoteTimestampOrdersLaterEvents) {
  HlcClock clock;
  clock.Now(1000);
  const Hlc remote = MakeHlc(9000, 7);
  clock.Observe(remote);
  EXPECT_GT(clock.Now(1001), remote);
}

TEST(HlcClockTest, LogicalOverflowCarriesIntoPhysical) {
  HlcClock clock;
  clock.Observe(MakeHlc(1000, kHlcLogicalMask));
  const Hlc next = clock.Now(1000);
  EXPECT_EQ(next, MakeHlc(1001, 0));
}

TEST(HlcClockTest, PackingRoundTrips) {
  const Hlc h = MakeHlc(123456789, 42);
  EXPECT_EQ(HlcPhysicalMs(h), 123456789);
  EXPECT_EQ(HlcLogical(h), 42u);
  EXPECT_EQ(HlcToString(h), "123456789.42");
}

}  // namespace
}  // namespace geoetcd
