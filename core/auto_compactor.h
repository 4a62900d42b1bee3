// AutoCompactor decides when etcd's --auto-compaction-* policy compacts an account's history.
// It is pure policy: the Node calls OnTick every tick_ms() on its Clock port and compacts to
// the revision returned, so the decision is deterministic and testable without threads.
//
// The two modes follow etcd 3.4:
//   periodic (retention = a duration): keep `period` of history. The head revision is
//     sampled every min(period, 1h) / 10; every min(period, 1h) the account is compacted to
//     the newest sample taken at least `period` ago.
//   revision (retention = a count): every 5 minutes, compact to head - retention.
// A target at or below the current compaction point is skipped.
#ifndef GEOETCD_CORE_AUTO_COMPACTOR_H_
#define GEOETCD_CORE_AUTO_COMPACTOR_H_

#include <cstdint>
#include <deque>
#include <utility>

namespace geoetcd {

struct AutoCompactionPolicy {
  // Exactly one of the two is non-zero, or both are zero (off).
  int64_t period_ms = 0;  // periodic mode
  int64_t revisions = 0;  // revision mode

  bool enabled() const { return period_ms > 0 || revisions > 0; }
};

class AutoCompactor {
 public:
  static constexpr int64_t kRevisionModeIntervalMs = 5 * 60 * 1000;
  static constexpr int64_t kPeriodicIntervalMaxMs = 60 * 60 * 1000;
  static constexpr int64_t kSamplesPerInterval = 10;

  // REQUIRES: policy.enabled(). `now_ms` is the Clock port's monotonic time.
  AutoCompactor(const AutoCompactionPolicy& policy, int64_t now_ms, int64_t head_rev);

  // How often OnTick must be called.
  int64_t tick_ms() const;

  // Records the tick and returns the revision to compact to now, or 0 for none.
  int64_t OnTick(int64_t now_ms, int64_t head_rev, int64_t compact_rev);

 private:
  int64_t CompactIntervalMs() const;

  AutoCompactionPolicy policy_;
  int64_t last_compaction_ms_;
  std::deque<std::pair<int64_t, int64_t>> samples_;  // (time, head revision), ascending
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_AUTO_COMPACTOR_H_
