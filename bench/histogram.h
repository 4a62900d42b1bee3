// A log-linear latency histogram in the spirit of HdrHistogram: fixed memory, O(1) record
// without allocation, and a bounded relative error, so percentiles of millions of samples
// cost nothing in the benchmark's hot path.
#ifndef GEOETCD_BENCH_HISTOGRAM_H_
#define GEOETCD_BENCH_HISTOGRAM_H_

#include <array>
#include <cstdint>

namespace geoetcd::bench {

// Records non-negative nanosecond values. Values below 2^kSubBucketBits are kept exactly;
// above, each power-of-two range is split into 2^(kSubBucketBits-1) equal buckets, so a
// bucket is at most 1/128 of its values wide (the midpoint we report is within 0.4%).
// Values at or above kMaxTrackableNs (about 18 minutes) land in the last bucket; max() stays
// exact. Not thread-safe: one histogram per thread, merged at the end.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 8;
  static constexpr int kMaxValueBits = 40;
  static constexpr int64_t kMaxTrackableNs = int64_t{1} << kMaxValueBits;

  void Record(int64_t value_ns) {
    if (value_ns < 0) value_ns = 0;
    counts_[BucketIndex(value_ns)]++;
    count_++;
    sum_ns_ += value_ns;
    if (value_ns > max_ns_) max_ns_ = value_ns;
    if (value_ns < min_ns_) min_ns_ = value_ns;
  }

  // Adds every sample of `other`.
  void Merge(const LatencyHistogram& other);
  void Reset() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  int64_t max_ns() const { return count_ == 0 ? 0 : max_ns_; }
  int64_t min_ns() const { return count_ == 0 ? 0 : min_ns_; }
  double mean_ns() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_ns_) / count_; }

  // The value at or below which `quantile` (0..1] of the samples fall, to the bucket
  // precision above and clamped to [min, max]. 0 for an empty histogram.
  int64_t ValueAtQuantile(double quantile) const;

  // Exposed for tests: the bucket of a value and the [lowest, highest] values it holds.
  static int BucketIndex(int64_t value_ns);
  static int64_t BucketLowest(int index);
  static int64_t BucketHighest(int index);
  // Exact buckets, then one group per power of two up to kMaxValueBits, then overflow.
  static constexpr int kBucketCount =
      (1 << kSubBucketBits) + (kMaxValueBits - kSubBucketBits) * (1 << (kSubBucketBits - 1)) + 1;

 private:
  std::array<uint64_t, kBucketCount> counts_{};
  uint64_t count_ = 0;
  // 2^63 ns is 292 years: summing a benchmark's latencies cannot overflow.
  int64_t sum_ns_ = 0;
  int64_t max_ns_ = 0;
  int64_t min_ns_ = INT64_MAX;
};

inline int LatencyHistogram::BucketIndex(int64_t value_ns) {
  if (value_ns >= kMaxTrackableNs) return kBucketCount - 1;
  const uint64_t v = static_cast<uint64_t>(value_ns);
  if (v < (uint64_t{1} << kSubBucketBits)) return static_cast<int>(v);
  const int msb = 63 - __builtin_clzll(v);
  // shift >= 1; v >> shift lies in [2^(kSubBucketBits-1), 2^kSubBucketBits).
  const int shift = msb - (kSubBucketBits - 1);
  const int half = 1 << (kSubBucketBits - 1);
  return (1 << kSubBucketBits) + (shift - 1) * half + static_cast<int>((v >> shift) - half);
}

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_HISTOGRAM_H_
