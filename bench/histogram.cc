#include "bench/histogram.h"

#include <algorithm>
#include <cmath>

namespace geoetcd::bench {

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (int i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
  max_ns_ = std::max(max_ns_, other.max_ns_);
  min_ns_ = std::min(min_ns_, other.min_ns_);
}

int64_t LatencyHistogram::BucketLowest(int index) {
  const int exact = 1 << kSubBucketBits;
  if (index < exact) return index;
  if (index == kBucketCount - 1) return kMaxTrackableNs;
  const int half = 1 << (kSubBucketBits - 1);
  const int shift = (index - exact) / half + 1;
  const int64_t top = half + (index - exact) % half;
  return top << shift;
}

int64_t LatencyHistogram::BucketHighest(int index) {
  if (index == kBucketCount - 1) return INT64_MAX;
  return BucketLowest(index + 1) - 1;
}

int64_t LatencyHistogram::ValueAtQuantile(double quantile) const {
  if (count_ == 0) return 0;
  quantile = std::clamp(quantile, 0.0, 1.0);
  // The smallest sample with at least `rank` samples at or below it (rank is 1-based).
  uint64_t rank = static_cast<uint64_t>(std::ceil(quantile * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int i = 0; i < kBucketCount; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      if (i == kBucketCount - 1) return max_ns_;
      const int64_t lo = BucketLowest(i);
      const int64_t mid = lo + (BucketHighest(i) - lo) / 2;
      return std::clamp(mid, min_ns_, max_ns_);
    }
  }
  return max_ns_;
}

}  // namespace geoetcd::bench
