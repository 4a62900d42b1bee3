#include "sim/sim_clock.h"

#include <utility>

#include "core/check.h"

namespace geoetcd::sim {

SimClock::SimClock(const SimWorld* world, int64_t wall_offset_ms, int32_t drift_ppm)
    : world_(world), wall_offset_ms_(wall_offset_ms), drift_ppm_(drift_ppm) {
  CHECK(drift_ppm > -kDriftPpmMax && drift_ppm < kDriftPpmMax);
}

int64_t SimClock::WorldDelayUs(int64_t delay_ms) const {
  CHECK(delay_ms >= 0);
  const int64_t now = world_->now_us();
  const int64_t due_local = LocalUs(now) + delay_ms * 1000;
  // LocalUs is monotone, so binary-search the first world time that reaches `due_local`;
  // the clock runs at least 0.9x world speed, so 2x the delay (+1 ms) is an upper bound.
  int64_t lo = now;
  int64_t hi = now + 2 * delay_ms * 1000 + 1000;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (LocalUs(mid) >= due_local) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo - now;
}

SimExecutor::SimExecutor(SimWorld* world, int32_t node, const SimClock* clock)
    : world_(world), node_(node), clock_(clock) {}

// A full world queue drops the callback; the simulation reports the overflow as a failed run.
void SimExecutor::Post(std::function<void()> fn) {
  world_->Schedule(0, EventType::kNodePost, node_, std::move(fn));
}

Executor::TimerId SimExecutor::PostAfter(int64_t delay_ms, std::function<void()> fn) {
  const TimerId id = next_timer_id_++;
  live_timers_.insert(id);
  world_->Schedule(clock_->WorldDelayUs(delay_ms), EventType::kNodeTimer, node_,
                   [this, id, fn = std::move(fn)] {
                     if (live_timers_.erase(id) == 1) fn();
                   });
  return id;
}

void SimExecutor::Cancel(TimerId id) { live_timers_.erase(id); }

}  // namespace geoetcd::sim
