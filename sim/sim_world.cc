#include "sim/sim_world.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "core/check.h"
#include "xxhash.h"

namespace geoetcd::sim {
namespace {

// Fixed: the trace hash must not depend on anything but the run.
constexpr uint64_t kTraceHashSeed = 0x67656f'73696d'31ULL;

void PutLe64(uint64_t x, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(x >> (8 * i));
}

}  // namespace

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kNodePost:
      return "post";
    case EventType::kNodeTimer:
      return "timer";
    case EventType::kNetDeliver:
      return "deliver";
    case EventType::kClientInvoke:
      return "invoke";
    case EventType::kClientTimeout:
      return "timeout";
    case EventType::kFault:
      return "fault";
    case EventType::kControl:
      return "control";
  }
  return "?";
}

SimWorld::SimWorld(uint64_t seed) : seed_(seed), random_(seed), hash_(kTraceHashSeed ^ seed) {}

int32_t SimWorld::AddNode() {
  incarnations_.push_back(1);
  return static_cast<int32_t>(incarnations_.size()) - 1;
}

void SimWorld::BumpIncarnation(int32_t node) { ++incarnations_.at(node); }

bool SimWorld::Schedule(int64_t delay_us, EventType type, int32_t node, std::function<void()> fn) {
  CHECK(delay_us >= 0);
  if (queue_.size() >= kEventsPendingMax) {
    overflowed_ = true;
    return false;
  }
  const uint64_t incarnation = node >= 0 ? incarnations_.at(node) : 0;
  queue_.push_back({now_us_ + delay_us, next_seq_++, type, node, incarnation, std::move(fn)});
  std::push_heap(queue_.begin(), queue_.end(), Later);
  return true;
}

bool SimWorld::RunOne() {
  if (queue_.empty()) return false;
  std::pop_heap(queue_.begin(), queue_.end(), Later);
  Event event = std::move(queue_.back());
  queue_.pop_back();
  CHECK(event.time_us >= now_us_);  // simulated time never goes back
  now_us_ = event.time_us;
  if (event.node >= 0 && event.incarnation != incarnations_[event.node]) {
    ++events_dropped_;  // scheduled by a process that has since crashed
    return true;
  }
  ++events_run_;
  unsigned char record[17];
  PutLe64(static_cast<uint64_t>(event.time_us), record);
  PutLe64(static_cast<uint64_t>(event.node), record + 8);
  record[16] = static_cast<unsigned char>(event.type);
  hash_ = XXH64(record, sizeof(record), hash_);
  if (trace_sink_) {
    char line[96];
    std::snprintf(line, sizeof(line), "t=%" PRId64 ".%06" PRId64 " %s node=%d", now_us_ / 1000000,
                  now_us_ % 1000000, EventTypeName(event.type), event.node);
    trace_sink_(line);
  }
  event.fn();
  if (after_event_) after_event_(event.node);
  return true;
}

bool SimWorld::RunUntil(const std::function<bool()>& done, int64_t deadline_us) {
  while (!done()) {
    if (queue_.empty() || queue_.front().time_us > deadline_us) return done();
    RunOne();
  }
  return true;
}

void SimWorld::Fold(uint64_t value) {
  unsigned char bytes[8];
  PutLe64(value, bytes);
  hash_ = XXH64(bytes, sizeof(bytes), hash_);
}

void SimWorld::FoldBytes(std::string_view bytes) {
  Fold(bytes.size());
  hash_ = XXH64(bytes.data(), bytes.size(), hash_);
}

void SimWorld::SetTraceSink(std::function<void(const std::string& line)> sink) {
  trace_sink_ = std::move(sink);
}

void SimWorld::TraceNote(const std::string& text) {
  if (trace_sink_) trace_sink_("  " + text);
}

}  // namespace geoetcd::sim
