// What the checkers derive about each lease from a History: who granted it, with what TTL,
// which keys puts tried to attach to it, and the acknowledged revoke, if any.
//
// A lease that keys were attached to is deleted once, by a revoke or by its expiry, and
// that deletion removes every key attached to it in one commit that no KV request made. The
// revision-ordered checkers and the per-key WGL search account for it with one "deleter"
// per such lease: the acknowledged revoke when there is one (its commit, if it made one, is
// at its header revision), otherwise an operation of unknown outcome invoked with the
// lease's first grant (an expiry, or an unanswered revoke, may happen any time after).
#ifndef GEOETCD_SIM_LEASE_VIEW_H_
#define GEOETCD_SIM_LEASE_VIEW_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/history.h"

namespace geoetcd::sim {

struct LeaseView {
  int64_t id = 0;
  // The TTL the lease was granted (the OK grant's, or the request's raised to the minimum
  // when no grant was answered); 0 if no grant names it.
  int64_t ttl_s = 0;
  // Grants of it that may have taken effect (OK or unknown), in history order.
  std::vector<const HistoryOp*> grants;
  int64_t first_grant_invoke_us = kNeverUs;
  // The first acknowledged revoke.
  const HistoryOp* acked_revoke = nullptr;
  // Keys that puts with this lease (OK or unknown outcome) wrote, sorted.
  std::vector<std::string> keys;
  // The earliest a revoke of it (any outcome) was invoked.
  int64_t first_revoke_invoke_us = kNeverUs;
  // The latest invocation of a grant or keep-alive of it that may have renewed it.
  int64_t last_renewal_invoke_us = 0;

  // Whether its deletion may have removed keys: some put may have attached one, and it was
  // granted (a put naming a lease that was never granted cannot have succeeded).
  bool may_hold_keys() const { return !keys.empty() && !grants.empty(); }
};

// Every lease a grant or a lease request names, by ID.
std::map<int64_t, LeaseView> BuildLeaseViews(const History& history);

// The deleters of the leases that may hold keys, as operations for the checkers: for a
// lease with an acknowledged revoke, that revoke; otherwise a synthetic revoke of unknown
// outcome invoked at the lease's first grant. `synthetic` owns the synthetic ones.
struct LeaseDeleter {
  const HistoryOp* op = nullptr;
  int64_t lease = 0;
  // The only revision its commit can have (the acknowledged revoke's header), or 0: any.
  int64_t fixed_revision = 0;
  // When it most likely happened (for ordering a search's guesses only).
  int64_t expected_us = 0;
};
std::vector<LeaseDeleter> LeaseDeleters(const std::map<int64_t, LeaseView>& leases,
                                        std::vector<HistoryOp>* synthetic);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_LEASE_VIEW_H_
