#include "consistency/read_gate.h"

namespace geoetcd {

ReadDecision DecideRead(const ReadGateInput& in) {
  if (in.at_write_region) return {ReadAction::kServeLocal, 0};
  switch (in.level) {
    case Level::kStrong:
      return {ReadAction::kReadIndex, 0};
    case Level::kBounded: {
      if (!in.beacon.has_value() || in.now_ms - in.beacon->received_ms > in.max_staleness_ms) {
        return {ReadAction::kServeAtWriteRegion, 0};
      }
      const int64_t floor = in.beacon->revision - in.max_staleness_revisions;
      if (in.applied_revision >= floor) return {ReadAction::kServeLocal, 0};
      return {ReadAction::kWaitForRevision, floor};
    }
    case Level::kSession:
      if (in.applied_revision >= in.session_revision) return {ReadAction::kServeLocal, 0};
      return {ReadAction::kWaitForRevision, in.session_revision};
    case Level::kConsistentPrefix:
    case Level::kEventual:
      return {ReadAction::kServeLocal, 0};
  }
  return {ReadAction::kServeAtWriteRegion, 0};
}

}  // namespace geoetcd
