// Simulated Clock and Executor of one node.
//
// SimClock: the node's monotonic time runs at its own rate (drift, in parts per million) from
// the world's time; its wall time adds a skew that fault injection can jump either way, as
// NTP steps and VM pauses do. MonotonicMs() never goes backwards.
//
// SimExecutor: Post() and PostAfter() schedule node-scoped world events, so a crash (which
// bumps the node's incarnation) drops everything the dead process had queued. The executor
// itself outlives incarnations: MemoryStorage keeps a pointer to it across restarts.
#ifndef GEOETCD_SIM_SIM_CLOCK_H_
#define GEOETCD_SIM_SIM_CLOCK_H_

#include <cstdint>
#include <functional>
#include <set>

#include "core/ports.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {

class SimClock : public Clock {
 public:
  // Monotonic readings start here, so a reading of 0 is never mistaken for "unset".
  static constexpr int64_t kMonotonicBaseMs = 1'000'000;
  // Drift beyond this would make a node's timers meaningless; real quartz is < 100 ppm.
  static constexpr int32_t kDriftPpmMax = 100'000;

  // `wall_offset_ms`: wall time minus monotonic time at start (the skew).
  SimClock(const SimWorld* world, int64_t wall_offset_ms, int32_t drift_ppm);

  int64_t MonotonicMs() const override {
    return kMonotonicBaseMs + LocalUs(world_->now_us()) / 1000;
  }
  int64_t WallMs() const override { return MonotonicMs() + wall_offset_ms_; }

  // Steps wall time by delta_ms (either sign); monotonic time is unaffected.
  void JumpWallMs(int64_t delta_ms) { wall_offset_ms_ += delta_ms; }
  int32_t drift_ppm() const { return drift_ppm_; }
  int64_t wall_offset_ms() const { return wall_offset_ms_; }

  // The smallest world delay after which this clock has advanced by at least delay_ms.
  int64_t WorldDelayUs(int64_t delay_ms) const;

 private:
  // Elapsed local microseconds at world time world_us.
  int64_t LocalUs(int64_t world_us) const { return world_us + world_us * drift_ppm_ / 1'000'000; }

  const SimWorld* world_;
  int64_t wall_offset_ms_;
  int32_t drift_ppm_;
};

class SimExecutor : public Executor {
 public:
  SimExecutor(SimWorld* world, int32_t node, const SimClock* clock);

  void Post(std::function<void()> fn) override;
  TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) override;
  void Cancel(TimerId id) override;

  // The process died: its timers are gone (the world drops their events by incarnation).
  void OnCrash() { live_timers_.clear(); }
  size_t live_timers() const { return live_timers_.size(); }

 private:
  SimWorld* world_;
  int32_t node_;
  const SimClock* clock_;
  TimerId next_timer_id_ = 1;
  std::set<TimerId> live_timers_;  // scheduled and neither run nor cancelled
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_SIM_CLOCK_H_
