// Hybrid logical clock (Kulkarni et al., 2014): 48 bits of physical milliseconds, 16 bits of
// logical counter, packed in a uint64 so that integer order is causal order.
#ifndef GEOETCD_CORE_HLC_H_
#define GEOETCD_CORE_HLC_H_

#include <cstdint>
#include <string>

namespace geoetcd {

using Hlc = uint64_t;

constexpr int kHlcLogicalBits = 16;
constexpr uint64_t kHlcLogicalMask = (uint64_t{1} << kHlcLogicalBits) - 1;
constexpr int64_t kHlcPhysicalMsMax = (int64_t{1} << 48) - 1;

constexpr Hlc MakeHlc(int64_t physical_ms, uint64_t logical) {
  return (static_cast<uint64_t>(physical_ms) << kHlcLogicalBits) | (logical & kHlcLogicalMask);
}
constexpr int64_t HlcPhysicalMs(Hlc h) { return static_cast<int64_t>(h >> kHlcLogicalBits); }
constexpr uint64_t HlcLogical(Hlc h) { return h & kHlcLogicalMask; }
std::string HlcToString(Hlc h);  // "physical_ms.logical"

// The clock state of one region. Not thread-safe; lives on the Node's thread.
class HlcClock {
 public:
  // Returns a timestamp greater than every timestamp this clock issued or observed.
  // `wall_ms` is the current physical time; it may go backwards (the HLC then keeps its
  // last physical component and advances the logical counter).
  Hlc Now(int64_t wall_ms);
  // Merges a timestamp received from a peer; the next Now() is greater than it.
  void Observe(Hlc remote);
  Hlc last() const { return last_; }

 private:
  // When the logical counter is exhausted within one millisecond, the physical component
  // advances by one: the clock never issues a duplicate and never goes backwards.
  Hlc Advance(int64_t physical_ms);
  Hlc last_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_HLC_H_
