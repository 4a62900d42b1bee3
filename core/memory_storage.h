// MemoryStorage: the Storage port in memory, for unit tests and the deterministic simulator.
// It models a disk rather than a map: writes are visible at once but become durable only
// when a sync write completes, and a simulated crash loses what was not yet durable.
#ifndef GEOETCD_CORE_MEMORY_STORAGE_H_
#define GEOETCD_CORE_MEMORY_STORAGE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/ports.h"

namespace geoetcd {

// The disk model:
// - Write() applies the batch to the visible state at once, in Write() order, and then
//   holds it as "unsynced".
// - A sync write becomes durable, together with every batch written before it, at the
//   moment its `done` is delivered. A crash before that loses it: real storage may or may
//   not have persisted it, and the simulator takes the harsher outcome.
// - Flush() makes every batch written so far durable (the OS wrote its cache back).
// - Crash() reverts the visible state to the durable state. Batches are kept or dropped
//   whole, never partially. `done` callbacks still pending at the crash never run.
// - `done` is always delivered through the executor, FIFO in Write() order.
// - DeleteRange(begin, end) with end <= begin (including an empty end) deletes nothing.
//
// Not thread-safe: everything runs on the simulator's (or test's) single thread. Contains
// no threads, clocks or randomness; faults and latency are injected by the caller.
class MemoryStorage : public Storage {
 public:
  // `executor` must outlive this object.
  explicit MemoryStorage(Executor* executor);
  MemoryStorage(const MemoryStorage&) = delete;
  MemoryStorage& operator=(const MemoryStorage&) = delete;
  ~MemoryStorage() override = default;

  // Storage.
  void Write(WriteBatch batch, bool sync, Done done) override;
  absl::Status Get(std::string_view key, std::string* value) const override;
  absl::Status Scan(std::string_view begin, std::string_view end,
                    const Visitor& visit) const override;
  // Sum of key and value sizes of the visible state.
  int64_t ApproximateSizeBytes() const override;
  // No-op: there is no space to reclaim.
  absl::Status CompactRange(std::string_view begin, std::string_view end) override;

  // Makes every batch written so far durable, as a sync write would.
  void Flush();
  // Loses every unsynced batch (see the disk model above).
  void Crash();
  // Like Crash(), but the oldest `batches_kept` unsynced batches survive (the OS happened
  // to write them back), as a prefix: a later batch never survives without the earlier ones.
  void CrashKeepingUnsynced(size_t batches_kept);

  // Fault injection: while `status` is not OK, every Write() applies nothing and its `done`
  // receives `status`. Pass absl::OkStatus() to heal.
  void SetWriteError(absl::Status status);
  // Latency injection: when set, each `done` is delivered no earlier than `latency_ms()`
  // after its Write() (through Executor::PostAfter), and never before the `done` of an
  // earlier write. Pass nullptr to deliver through Executor::Post again.
  void SetLatencyHook(std::function<int64_t()> latency_ms);

  // Batches made durable so far (by sync writes, Flush() or CrashKeepingUnsynced()).
  uint64_t synced_batches() const { return synced_batches_; }
  // Batches visible now but lost by a Crash().
  size_t unsynced_batches() const { return unsynced_.size(); }
  // Writes whose `done` has not been delivered yet.
  size_t pending_dones() const { return completions_.size(); }

 private:
  // Keys in bytewise (unsigned) order, as RocksDB's default comparator.
  struct State {
    std::map<std::string, std::string, std::less<>> entries;
    int64_t bytes = 0;
    void Apply(const WriteBatch& batch);
    void Put(const std::string& key, const std::string& value);
    void Erase(std::map<std::string, std::string, std::less<>>::iterator it);
  };
  struct Unsynced {
    uint64_t seq;
    WriteBatch batch;
  };
  struct Completion {
    uint64_t seq;
    bool sync;
    absl::Status status;
    Done done;
    bool ready = false;
  };

  void Schedule(uint64_t seq, bool sync, absl::Status status, Done done);
  void MarkReady(uint64_t epoch, uint64_t seq);
  void DeliverReady();
  // Moves unsynced batches with sequence <= seq into the durable state.
  void PersistThrough(uint64_t seq);

  Executor* executor_;
  State visible_;
  State durable_;
  std::deque<Unsynced> unsynced_;
  std::deque<Completion> completions_;  // Ascending seq: the delivery order.
  absl::Status write_error_;
  std::function<int64_t()> latency_ms_;
  uint64_t next_seq_ = 1;
  // Bumped by every crash so that callbacks scheduled before it do nothing.
  uint64_t epoch_ = 0;
  uint64_t synced_batches_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_MEMORY_STORAGE_H_
