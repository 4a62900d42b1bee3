// A thread-safe Executor for tests of components with their own threads (RocksDbStorage):
// any thread may Post(); callbacks run only on the test's thread, inside RunUntil().
#ifndef GEOETCD_TESTS_TESTING_QUEUE_EXECUTOR_H_
#define GEOETCD_TESTS_TESTING_QUEUE_EXECUTOR_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <utility>

#include "core/ports.h"

namespace geoetcd::testing {

class QueueExecutor : public Executor {
 public:
  using SteadyClock = std::chrono::steady_clock;
  static constexpr int64_t kWaitMsDefault = 20'000;

  void Post(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }

  TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) override {
    std::lock_guard<std::mutex> lock(mu_);
    const TimerId id = next_id_++;
    const SteadyClock::time_point due = SteadyClock::now() + std::chrono::milliseconds(delay_ms);
    timers_.emplace(std::make_pair(due, id), std::move(fn));
    return id;
  }

  void Cancel(TimerId id) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }

  // Runs callbacks on the calling thread until `done()` holds; false if wait_ms passed first.
  bool RunUntil(const std::function<bool()>& done, int64_t wait_ms = kWaitMsDefault) {
    const SteadyClock::time_point deadline =
        SteadyClock::now() + std::chrono::milliseconds(wait_ms);
    while (!done()) {
      std::function<void()> fn = Next(deadline);
      if (!fn) return done();
      fn();
      ++ran_;
    }
    return true;
  }

  // Runs whatever is ready now, without waiting. Returns how many ran.
  int RunReady() {
    int ran = 0;
    while (std::function<void()> fn = Next(SteadyClock::now())) {
      fn();
      ++ran;
    }
    ran_ += ran;
    return ran;
  }

  // Callbacks run so far.
  int64_t ran() const { return ran_; }

 private:
  // The next runnable callback, waiting for one until `deadline`; empty if none came.
  std::function<void()> Next(SteadyClock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (!ready_.empty()) {
        std::function<void()> fn = std::move(ready_.front());
        ready_.pop_front();
        return fn;
      }
      const SteadyClock::time_point now = SteadyClock::now();
      if (!timers_.empty() && timers_.begin()->first.first <= now) {
        std::function<void()> fn = std::move(timers_.begin()->second);
        timers_.erase(timers_.begin());
        return fn;
      }
      if (now >= deadline) return nullptr;
      SteadyClock::time_point wake = deadline;
      if (!timers_.empty()) wake = std::min(wake, timers_.begin()->first.first);
      cv_.wait_until(lock, wake);
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> ready_;
  std::map<std::pair<SteadyClock::time_point, TimerId>, std::function<void()>> timers_;
  TimerId next_id_ = 1;
  int64_t ran_ = 0;  // Touched only by the running thread.
};

}  // namespace geoetcd::testing

#endif  // GEOETCD_TESTS_TESTING_QUEUE_EXECUTOR_H_
