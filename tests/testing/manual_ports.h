// Hand-driven Clock and Executor for unit tests: nothing happens until the test runs the
// queue, and time moves only when the test advances it.
#ifndef GEOETCD_TESTS_TESTING_MANUAL_PORTS_H_
#define GEOETCD_TESTS_TESTING_MANUAL_PORTS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <utility>

#include "core/ports.h"

namespace geoetcd::testing {

class ManualClock : public Clock {
 public:
  int64_t MonotonicMs() const override { return now_ms_; }
  int64_t WallMs() const override { return now_ms_ + wall_offset_ms_; }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }
  void SetWallOffsetMs(int64_t ms) { wall_offset_ms_ = ms; }

 private:
  int64_t now_ms_ = 1'000'000;
  int64_t wall_offset_ms_ = 1'700'000'000'000;
};

class ManualExecutor : public Executor {
 public:
  explicit ManualExecutor(ManualClock* clock) : clock_(clock) {}

  void Post(std::function<void()> fn) override { ready_.push_back(std::move(fn)); }
  TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) override {
    const TimerId id = next_id_++;
    timers_.emplace(std::make_pair(clock_->MonotonicMs() + delay_ms, id), std::move(fn));
    return id;
  }
  void Cancel(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }

  // Runs posted callbacks (and those they post) until the queue is empty. Returns how many ran.
  int RunUntilIdle() {
    int ran = 0;
    while (!ready_.empty()) {
      auto fn = std::move(ready_.front());
      ready_.pop_front();
      fn();
      ++ran;
    }
    return ran;
  }

  // Advances the clock by ms, firing due timers in order, and runs everything ready.
  void AdvanceMs(int64_t ms) {
    const int64_t until = clock_->MonotonicMs() + ms;
    RunUntilIdle();
    while (!timers_.empty() && timers_.begin()->first.first <= until) {
      auto it = timers_.begin();
      clock_->AdvanceMs(it->first.first - clock_->MonotonicMs());
      auto fn = std::move(it->second);
      timers_.erase(it);
      fn();
      RunUntilIdle();
    }
    clock_->AdvanceMs(until - clock_->MonotonicMs());
  }

  size_t pending() const { return ready_.size(); }

 private:
  ManualClock* clock_;
  std::deque<std::function<void()>> ready_;
  std::map<std::pair<int64_t, TimerId>, std::function<void()>> timers_;
  TimerId next_id_ = 1;
};

}  // namespace geoetcd::testing

#endif  // GEOETCD_TESTS_TESTING_MANUAL_PORTS_H_
