#include "core/auto_compactor.h"

#include <algorithm>

#include "core/check.h"

namespace geoetcd {

AutoCompactor::AutoCompactor(const AutoCompactionPolicy& policy, int64_t now_ms,
                             int64_t head_rev)
    : policy_(policy), last_compaction_ms_(now_ms) {
  CHECK(policy_.enabled());
  CHECK(policy_.period_ms == 0 || policy_.revisions == 0);
  samples_.emplace_back(now_ms, head_rev);
}

int64_t AutoCompactor::CompactIntervalMs() const {
  return std::min(policy_.period_ms, kPeriodicIntervalMaxMs);
}

int64_t AutoCompactor::tick_ms() const {
  if (policy_.revisions > 0) return kRevisionModeIntervalMs;
  return std::max<int64_t>(1, CompactIntervalMs() / kSamplesPerInterval);
}

int64_t AutoCompactor::OnTick(int64_t now_ms, int64_t head_rev, int64_t compact_rev) {
  if (policy_.revisions > 0) {
    const int64_t target = head_rev - policy_.revisions;
    return target > std::max<int64_t>(compact_rev, 0) ? target : 0;
  }
  samples_.emplace_back(now_ms, head_rev);
  if (now_ms - last_compaction_ms_ < CompactIntervalMs()) return 0;
  // The newest sample old enough to fall outside the retention window; it and older ones
  // are not needed again, since every later cutoff is later still.
  const int64_t cutoff = now_ms - policy_.period_ms;
  int64_t target = 0;
  while (!samples_.empty() && samples_.front().first <= cutoff) {
    target = samples_.front().second;
    samples_.pop_front();
  }
  if (target == 0) return 0;  // not `period` of history yet: keep waiting
  last_compaction_ms_ = now_ms;
  return target > std::max<int64_t>(compact_rev, 0) ? target : 0;
}

}  // namespace geoetcd
