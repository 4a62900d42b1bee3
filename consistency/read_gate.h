// The read gate (ARCHITECTURE.md §3): how a Range or a watch creation at region R is served
// at the level EffectiveLevel() chose. A pure decision over what R knows when the read
// arrives; the Node carries it out (a read index, a wait for its own apply, or a forward
// to the write region) and asks again when what it waited for happened.
#ifndef GEOETCD_CONSISTENCY_READ_GATE_H_
#define GEOETCD_CONSISTENCY_READ_GATE_H_

#include <cstdint>
#include <optional>

#include "consistency/level.h"

namespace geoetcd {

// The write region's last heartbeat as R received it: W's head revision then, and R's
// monotonic time when it arrived.
struct WriteRegionBeacon {
  int64_t revision = 0;
  int64_t received_ms = 0;
};

struct ReadGateInput {
  Level level = Level::kStrong;
  bool at_write_region = false;
  int64_t now_ms = 0;
  int64_t applied_revision = 0;  // R's durable applied revision
  // bounded: at most K revisions behind W's last heartbeat, and that heartbeat at most T old.
  int64_t max_staleness_revisions = 1;
  int64_t max_staleness_ms = 1000;
  std::optional<WriteRegionBeacon> beacon;
  // session: the revision the session has seen (its token's, or its connection's); 0: none.
  int64_t session_revision = 0;
};

enum class ReadAction {
  kServeLocal,          // answer now at applied_revision
  kReadIndex,           // learn W's committed index (one round trip), then serve once applied
  kWaitForRevision,     // serve once R has applied wait_revision (bounded by the caller)
  kServeAtWriteRegion,  // R cannot vouch for the level: W serves the read
};

struct ReadDecision {
  ReadAction action = ReadAction::kServeLocal;
  int64_t wait_revision = 0;  // kWaitForRevision

  friend bool operator==(const ReadDecision& a, const ReadDecision& b) {
    return a.action == b.action && a.wait_revision == b.wait_revision;
  }
};

// At W every level reads the latest state. Elsewhere:
//   strong             a read index;
//   bounded            local while R lags the beacon by <= K revisions and the beacon is
//                      <= T old; a beacon too old (or none): W serves it; else R waits for
//                      beacon.revision - K;
//   session            local once R applied the session's revision, else wait for it;
//   consistent-prefix  local (R's applied revision is a state W had);
//   eventual           local.
ReadDecision DecideRead(const ReadGateInput& in);

}  // namespace geoetcd

#endif  // GEOETCD_CONSISTENCY_READ_GATE_H_
