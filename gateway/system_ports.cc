#include "gateway/system_ports.h"

#include <chrono>

#include "core/check.h"

namespace geoetcd {

int64_t SystemClock::MonotonicMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::WallMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

AsioExecutor::AsioExecutor() : work_(asio::make_work_guard(io_)) {}

AsioExecutor::~AsioExecutor() { Stop(); }

void AsioExecutor::Start() {
  thread_ = std::thread([this] { io_.run(); });
}

void AsioExecutor::Stop() {
  work_.reset();
  io_.stop();
  if (thread_.joinable()) thread_.join();
}

void AsioExecutor::RunLocked(const std::function<void()>& fn) {
  {
    absl::MutexLock lock(&state_mu_);
    fn();
  }
  if (after_task_) after_task_();
}

void AsioExecutor::Post(std::function<void()> fn) {
  asio::post(io_, [this, fn = std::move(fn)] { RunLocked(fn); });
}

Executor::TimerId AsioExecutor::PostAfter(int64_t delay_ms, std::function<void()> fn) {
  state_mu_.AssertHeld();
  const TimerId id = next_timer_++;
  auto timer = std::make_unique<asio::steady_timer>(io_, std::chrono::milliseconds(delay_ms));
  timer->async_wait([this, id, fn = std::move(fn)](const asio::error_code& ec) {
    if (ec) return;  // cancelled
    {
      absl::MutexLock lock(&state_mu_);
      // Cancel() may have run after the timer fired but before this handler got the lock.
      if (timers_.erase(id) == 0) return;
      fn();
    }
    if (after_task_) after_task_();
  });
  timers_[id] = std::move(timer);
  return id;
}

void AsioExecutor::Cancel(TimerId id) {
  state_mu_.AssertHeld();
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  it->second->cancel();
  timers_.erase(it);
}

}  // namespace geoetcd
