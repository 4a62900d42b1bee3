// Production ports: the system clock and an asio-driven executor that runs the Node's
// thread.
#ifndef GEOETCD_GATEWAY_SYSTEM_PORTS_H_
#define GEOETCD_GATEWAY_SYSTEM_PORTS_H_

#include <atomic>
#include <map>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "asio.hpp"
#include "core/ports.h"

namespace geoetcd {

class SystemClock : public Clock {
 public:
  int64_t MonotonicMs() const override;
  int64_t WallMs() const override;
};

// One thread running an asio io_context. Post() may be called from any thread; PostAfter()
// and Cancel() only while holding state_mutex() (every handler does).
//
// Every handler runs holding state_mutex() exclusively, so the Node sees one caller at a
// time. Other threads may call into the Node while holding it too: exclusively to hand it a
// request directly (the gateway's mutations, saving a thread hop per request), or shared to
// read its state in place (the Range fast path: reads run on gRPC's threads in parallel).
class AsioExecutor : public Executor {
 public:
  AsioExecutor();
  ~AsioExecutor() override;  // stops and joins the thread

  void Start();
  void Stop();
  void Post(std::function<void()> fn) override;
  TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) override;
  void Cancel(TimerId id) override;
  absl::Mutex& state_mutex() { return state_mu_; }
  // Runs on the executor's thread after every task, without the state mutex (the native
  // transport sends the replies a task produced, coalesced per connection). Set before Start.
  void SetAfterTask(std::function<void()> fn) { after_task_ = std::move(fn); }

 private:
  // Runs `fn` as the executor's thread does: holding the state mutex.
  void RunLocked(const std::function<void()>& fn);

  absl::Mutex state_mu_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  TimerId next_timer_ = 1;
  std::map<TimerId, std::unique_ptr<asio::steady_timer>> timers_;
  std::function<void()> after_task_;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_SYSTEM_PORTS_H_
