#include "bench/histogram.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd::bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 0);
  EXPECT_EQ(h.max_ns(), 0);
  EXPECT_EQ(h.min_ns(), 0);
  EXPECT_EQ(h.mean_ns(), 0.0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 0; v < 256; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 127);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 255);
  EXPECT_EQ(h.min_ns(), 0);
  EXPECT_EQ(h.max_ns(), 255);
}

TEST(LatencyHistogramTest, BucketsTileTheRangeWithoutGaps) {
  for (int i = 0; i + 1 < LatencyHistogram::kBucketCount; ++i) {
    ASSERT_EQ(LatencyHistogram::BucketHighest(i) + 1, LatencyHistogram::BucketLowest(i + 1))
        << "bucket " << i;
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketLowest(i)), i);
    ASSERT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::BucketHighest(i)), i);
  }
  EXPECT_EQ(LatencyHistogram::BucketIndex(LatencyHistogram::kMaxTrackableNs),
            LatencyHistogram::kBucketCount - 1);
  EXPECT_EQ(LatencyHistogram::BucketIndex(INT64_MAX), LatencyHistogram::kBucketCount - 1);
}

// The promise in the header: every reported value is within 1% of the recorded one, from a
// microsecond to ten minutes.
TEST(LatencyHistogramTest, SingleValueWithinOnePercent) {
  for (double v = 1e3; v < 600e9; v *= 1.37) {
    LatencyHistogram h;
    // Two samples so the answer comes from the bucket, not from the exact min/max clamp.
    h.Record(static_cast<int64_t>(v));
    h.Record(static_cast<int64_t>(v * 1.5));
    const double got = static_cast<double>(h.ValueAtQuantile(0.5));
    EXPECT_NEAR(got, v, v * 0.01) << "value " << v;
  }
}

TEST(LatencyHistogramTest, PercentilesOfUniformDistribution) {
  LatencyHistogram h;
  // 1..100000 microseconds, each once.
  for (int64_t us = 1; us <= 100000; ++us) h.Record(us * 1000);
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_NEAR(h.ValueAtQuantile(0.50), 50000e3, 50000e3 * 0.01);
  EXPECT_NEAR(h.ValueAtQuantile(0.90), 90000e3, 90000e3 * 0.01);
  EXPECT_NEAR(h.ValueAtQuantile(0.99), 99000e3, 99000e3 * 0.01);
  EXPECT_NEAR(h.ValueAtQuantile(0.999), 99900e3, 99900e3 * 0.01);
  EXPECT_EQ(h.max_ns(), 100000000);
  EXPECT_EQ(h.min_ns(), 1000);
  EXPECT_NEAR(h.mean_ns(), 50000.5e3, 1);
}

TEST(LatencyHistogramTest, TailIsNotHiddenByTheBulk) {
  LatencyHistogram h;
  for (int i = 0; i < 989; ++i) h.Record(1'000'000);   // 1 ms
  for (int i = 0; i < 11; ++i) h.Record(500'000'000);  // 500 ms: 1.1% of samples
  EXPECT_NEAR(h.ValueAtQuantile(0.5), 1e6, 1e4);
  EXPECT_NEAR(h.ValueAtQuantile(0.99), 500e6, 5e6);
  EXPECT_EQ(h.max_ns(), 500'000'000);
}

TEST(LatencyHistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(13.0, 1.5);  // around 0.5 ms, long tail
  LatencyHistogram all, a, b;
  for (int i = 0; i < 50000; ++i) {
    const int64_t v = static_cast<int64_t>(dist(rng));
    all.Record(v);
    (i % 3 == 0 ? a : b).Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max_ns(), all.max_ns());
  EXPECT_EQ(a.min_ns(), all.min_ns());
  for (double q : {0.1, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(a.ValueAtQuantile(q), all.ValueAtQuantile(q)) << q;
  }
  LatencyHistogram empty;
  a.Merge(empty);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min_ns(), all.min_ns());
}

TEST(LatencyHistogramTest, HugeAndNegativeValuesAreClamped) {
  LatencyHistogram h;
  h.Record(-5);
  h.Record(int64_t{1} << 50);  // beyond the trackable range
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.min_ns(), 0);
  EXPECT_EQ(h.max_ns(), int64_t{1} << 50);
  EXPECT_EQ(h.ValueAtQuantile(1.0), int64_t{1} << 50);
}

}  // namespace
}  // namespace geoetcd::bench
