// Ports: the only ways a Node touches the world. Production implementations live in
// gateway/, simulated ones in sim/. Everything under core/, crdt/ and consistency/ sees the
// world through these interfaces only (ARCHITECTURE.md §4, the layering rule).
#ifndef GEOETCD_CORE_PORTS_H_
#define GEOETCD_CORE_PORTS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace geoetcd {

// Time as the Node sees it. Both readings are in milliseconds.
class Clock {
 public:
  virtual ~Clock() = default;
  // Never goes backwards; used for timeouts and lease expiry.
  virtual int64_t MonotonicMs() const = 0;
  // Physical wall time; may jump either way. Used only to drive the HLC.
  virtual int64_t WallMs() const = 0;
};

// Runs callbacks on the Node's single thread. Nothing posted runs inline: Post() and
// PostAfter() always return before their callback runs.
//
// The Node's calling rule (core/node.h): every call into a Node, and every callback the
// executor runs, is serialized with every other. An implementation either runs all of
// them on its one thread (the simulator's SimExecutor), or, like the gateway's
// AsioExecutor, runs each task while holding a state mutex that other threads also take
// before calling into the Node (exclusively; shared only for the read-only ReadRange and
// ReadsInPlace). Post() may be called from any thread, with or without that mutex (the
// peer transport posts received messages from gRPC's threads); PostAfter() and Cancel()
// only under the same serialization as calls into the Node.
class Executor {
 public:
  using TimerId = uint64_t;
  virtual ~Executor() = default;
  virtual void Post(std::function<void()> fn) = 0;
  // Runs fn once delay_ms of monotonic time have passed. Returns an id for Cancel().
  virtual TimerId PostAfter(int64_t delay_ms, std::function<void()> fn) = 0;
  // Cancelling a timer that already ran or never existed is a no-op.
  virtual void Cancel(TimerId id) = 0;
};

// Message passing between regions. Delivery is unreliable: messages may be lost,
// duplicated or reordered; the protocol above copes.
class Transport {
 public:
  using Receiver = std::function<void(uint64_t from_region, std::string payload)>;
  virtual ~Transport() = default;
  virtual void Send(uint64_t to_region, std::string payload) = 0;
  // The receiver runs on the Node's executor.
  virtual void SetReceiver(Receiver receiver) = 0;
};

// One atomic unit of storage mutations, applied whole or not at all.
class WriteBatch {
 public:
  enum class OpType { kPut, kDelete, kDeleteRange };
  struct Op {
    OpType type;
    std::string key;
    std::string value;  // kPut: the value; kDeleteRange: the exclusive end key.
  };

  void Put(std::string_view key, std::string_view value) {
    ops_.push_back({OpType::kPut, std::string(key), std::string(value)});
    bytes_ += key.size() + value.size();
  }
  void Delete(std::string_view key) {
    ops_.push_back({OpType::kDelete, std::string(key), {}});
    bytes_ += key.size();
  }
  // Deletes every key in [begin, end). An end that is not after begin (an empty end
  // included) deletes nothing: RocksDB would reject such a range and could then apply only
  // part of the batch.
  void DeleteRange(std::string_view begin, std::string_view end) {
    ops_.push_back({OpType::kDeleteRange, std::string(begin), std::string(end)});
    bytes_ += begin.size() + end.size();
  }
  void Append(WriteBatch&& other) {
    for (auto& op : other.ops_) ops_.push_back(std::move(op));
    bytes_ += other.bytes_;
    other.ops_.clear();
    other.bytes_ = 0;
  }

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }
  size_t size_bytes() const { return bytes_; }

 private:
  std::vector<Op> ops_;
  size_t bytes_ = 0;
};

// An ordered byte-string key/value store.
//
// Contract, shared by every implementation and checked by tests/gateway/storage_contract_test:
// - Write() applies a batch atomically: after a crash either all of it or none of it is
//   visible.
// - Writes are applied in the order Write() was called.
// - With sync = true, `done` runs only after the batch (and every batch written before
//   it) is durable: it survives a crash of the process or machine.
// - `done` never runs inline; it runs on the Node's executor.
// - Get() and Scan() see every batch whose `done` has run.
// - A failed write is fatal to the caller's durability assumptions: the Node treats it as a
//   crash (fail-stop).
class Storage {
 public:
  using Done = std::function<void(absl::Status)>;
  // Return false to stop a Scan early.
  using Visitor = std::function<bool(std::string_view key, std::string_view value)>;

  virtual ~Storage() = default;
  virtual void Write(WriteBatch batch, bool sync, Done done) = 0;
  // NotFound when the key is absent.
  virtual absl::Status Get(std::string_view key, std::string* value) const = 0;
  // Visits keys in [begin, end) in ascending byte order; an empty end means no upper bound.
  virtual absl::Status Scan(std::string_view begin, std::string_view end,
                            const Visitor& visit) const = 0;
  // Approximate bytes on disk (or in memory) used by the data.
  virtual int64_t ApproximateSizeBytes() const = 0;
  // Reclaims space of deleted data in [begin, end) (RocksDB: CompactRange). Synchronous.
  virtual absl::Status CompactRange(std::string_view begin, std::string_view end) = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_PORTS_H_
