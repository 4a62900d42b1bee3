// SimWorld: the universe of one deterministic simulation run. One thread, one event queue
// ordered by (time_us, sequence), simulated time, and a hash of everything that happened.
//
// Everything a run does happens inside an event: node callbacks (through SimExecutor),
// message arrivals (SimNetwork), client invocations and replies, faults. Two runs with the
// same seed and build execute the same events in the same order, so their trace hashes are
// equal; the hash folds each event's time, type and node, and the results callers fold in.
//
// Node-scoped events carry the node's incarnation when scheduled; a crash bumps the
// incarnation, so the dead process's pending callbacks never run (FoundationDB's sim2 kills
// a machine's actors the same way).
//
// Not thread-safe: a run is single-threaded by construction.
#ifndef GEOETCD_SIM_SIM_WORLD_H_
#define GEOETCD_SIM_SIM_WORLD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"

namespace geoetcd::sim {

// Stable numbers: they are folded into the trace hash.
enum class EventType : uint8_t {
  kNodePost = 1,       // SimExecutor::Post
  kNodeTimer = 2,      // SimExecutor::PostAfter
  kNetDeliver = 3,     // a message arrives
  kClientInvoke = 4,   // a simulated client issues its next request
  kClientTimeout = 5,  // a client gives up waiting
  kFault = 6,          // crash, restart, disk, network or clock fault
  kControl = 7,        // run orchestration
};
const char* EventTypeName(EventType type);

// Events not bound to a node.
inline constexpr int32_t kNoNode = -1;

class SimWorld {
 public:
  // A run that needs more pending events than this is runaway (a bug in the simulator or a
  // retry storm): the world stops it rather than exhausting memory.
  static constexpr size_t kEventsPendingMax = size_t{1} << 22;

  explicit SimWorld(uint64_t seed);
  SimWorld(const SimWorld&) = delete;
  SimWorld& operator=(const SimWorld&) = delete;

  int64_t now_us() const { return now_us_; }
  uint64_t seed() const { return seed_; }
  // The world's own randomness (faults, network); components Fork() theirs from it.
  Random& random() { return random_; }

  // Registers a node; returns its index. Its incarnation starts at 1.
  int32_t AddNode();
  int32_t node_count() const { return static_cast<int32_t>(incarnations_.size()); }
  uint64_t incarnation(int32_t node) const { return incarnations_.at(node); }
  // The node crashed: every event scheduled for it so far is dropped.
  void BumpIncarnation(int32_t node);

  // Runs `fn` at now + delay_us (delay_us >= 0). With node >= 0 the event belongs to that
  // node's current incarnation. Returns false (and drops fn) when the queue is full.
  bool Schedule(int64_t delay_us, EventType type, int32_t node, std::function<void()> fn);

  // Runs the next event; false when none is pending.
  bool RunOne();
  // Runs events until `done()` holds, the queue empties or simulated time would pass
  // deadline_us. Returns done().
  bool RunUntil(const std::function<bool()>& done, int64_t deadline_us);

  // Folds a result (an op's outcome, a fault decision) into the trace hash.
  void Fold(uint64_t value);
  void FoldBytes(std::string_view bytes);
  uint64_t trace_hash() const { return hash_; }

  uint64_t events_run() const { return events_run_; }
  uint64_t events_dropped() const { return events_dropped_; }
  size_t events_pending() const { return queue_.size(); }
  bool overflowed() const { return overflowed_; }

  // Called after every event that ran, with the event's node (the simulation checks
  // invariants there).
  void SetAfterEvent(std::function<void(int32_t node)> fn) { after_event_ = std::move(fn); }
  // When set, every event and note is printed through `sink` (geoetcd-sim --replay).
  void SetTraceSink(std::function<void(const std::string& line)> sink);
  bool tracing() const { return static_cast<bool>(trace_sink_); }
  // Adds a line to the trace (callers build `text` only when tracing()).
  void TraceNote(const std::string& text);

 private:
  struct Event {
    int64_t time_us;
    uint64_t seq;
    EventType type;
    int32_t node;
    uint64_t incarnation;
    std::function<void()> fn;
  };
  // Min-heap order on (time_us, seq): the sequence breaks ties in scheduling order.
  static bool Later(const Event& a, const Event& b) {
    return a.time_us != b.time_us ? a.time_us > b.time_us : a.seq > b.seq;
  }

  uint64_t seed_;
  Random random_;
  int64_t now_us_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Event> queue_;  // a binary heap ordered by Later
  std::vector<uint64_t> incarnations_;
  uint64_t hash_;
  uint64_t events_run_ = 0;
  uint64_t events_dropped_ = 0;
  bool overflowed_ = false;
  std::function<void(int32_t)> after_event_;
  std::function<void(const std::string&)> trace_sink_;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_SIM_WORLD_H_
