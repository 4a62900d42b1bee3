#include "core/hlc.h"

#include <algorithm>

#include "core/check.h"

namespace geoetcd {

std::string HlcToString(Hlc h) {
  return std::to_string(HlcPhysicalMs(h)) + "." + std::to_string(HlcLogical(h));
}

Hlc HlcClock::Advance(int64_t physical_ms) {
  physical_ms = std::clamp<int64_t>(physical_ms, 0, kHlcPhysicalMsMax);
  const int64_t last_pt = HlcPhysicalMs(last_);
  Hlc next;
  if (physical_ms > last_pt) {
    next = MakeHlc(physical_ms, 0);
  } else if (HlcLogical(last_) < kHlcLogicalMask) {
    next = last_ + 1;
  } else {
    next = MakeHlc(last_pt + 1, 0);
  }
  CHECK(next > last_);
  last_ = next;
  return next;
}

Hlc HlcClock::Now(int64_t wall_ms) { return Advance(wall_ms); }

void HlcClock::Observe(Hlc remote) { last_ = std::max(last_, remote); }

}  // namespace geoetcd
