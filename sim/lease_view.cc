#include "sim/lease_view.h"

#include <algorithm>

namespace geoetcd::sim {

std::map<int64_t, LeaseView> BuildLeaseViews(const History& history) {
  std::map<int64_t, LeaseView> leases;
  auto view = [&leases](int64_t id) -> LeaseView& {
    LeaseView& v = leases[id];
    v.id = id;
    return v;
  };
  for (const HistoryOp& op : history.ops) {
    if (op.outcome == OpOutcome::kFail) continue;
    switch (op.call.kind) {
      case OpKind::kLeaseGrant: {
        const int64_t id = op.lease_id();
        if (id == 0) break;  // the server picked an ID nobody learned
        LeaseView& v = view(id);
        v.grants.push_back(&op);
        v.first_grant_invoke_us = std::min(v.first_grant_invoke_us, op.invoke_us);
        v.last_renewal_invoke_us = std::max(v.last_renewal_invoke_us, op.invoke_us);
        if (op.outcome == OpOutcome::kOk) {
          v.ttl_s = op.lease_grant_response.ttl();
        } else if (v.ttl_s == 0) {
          v.ttl_s = std::max(op.call.lease_grant.ttl(), history.lease_ttl_min_s);
        }
        break;
      }
      case OpKind::kLeaseRevoke: {
        LeaseView& v = view(op.lease_id());
        v.first_revoke_invoke_us = std::min(v.first_revoke_invoke_us, op.invoke_us);
        if (op.outcome == OpOutcome::kOk && v.acked_revoke == nullptr) v.acked_revoke = &op;
        break;
      }
      case OpKind::kLeaseKeepAlive: {
        LeaseView& v = view(op.lease_id());
        if (op.outcome == OpOutcome::kUnknown || op.lease_keep_alive_response.ttl() > 0) {
          v.last_renewal_invoke_us = std::max(v.last_renewal_invoke_us, op.invoke_us);
        }
        break;
      }
      case OpKind::kLeaseTimeToLive:
        view(op.lease_id());
        break;
      case OpKind::kPut:
        if (op.call.request.request_put().lease() != 0) {
          view(op.call.request.request_put().lease()).keys.push_back(
              op.call.request.request_put().key());
        }
        break;
      default:
        break;
    }
  }
  for (auto& [id, v] : leases) {
    std::sort(v.keys.begin(), v.keys.end());
    v.keys.erase(std::unique(v.keys.begin(), v.keys.end()), v.keys.end());
  }
  return leases;
}

std::vector<LeaseDeleter> LeaseDeleters(const std::map<int64_t, LeaseView>& leases,
                                        std::vector<HistoryOp>* synthetic) {
  synthetic->clear();
  synthetic->reserve(leases.size());  // the deleters point into it
  std::vector<LeaseDeleter> deleters;
  for (const auto& [id, v] : leases) {
    if (!v.may_hold_keys()) continue;
    LeaseDeleter d;
    d.lease = id;
    if (v.acked_revoke != nullptr) {
      d.op = v.acked_revoke;
      d.fixed_revision = v.acked_revoke->header_revision();
      d.expected_us = v.acked_revoke->invoke_us;
    } else {
      HistoryOp& op = synthetic->emplace_back();
      op.index = -1;
      op.client = -1;
      op.call.kind = OpKind::kLeaseRevoke;
      op.call.lease_revoke.set_id(id);
      op.invoke_us = v.first_grant_invoke_us;
      op.complete_us = kNeverUs;
      op.outcome = OpOutcome::kUnknown;
      d.op = &op;
      d.expected_us = std::min(v.first_revoke_invoke_us,
                               v.last_renewal_invoke_us + v.ttl_s * 1'000'000);
    }
    deleters.push_back(d);
  }
  return deleters;
}

}  // namespace geoetcd::sim
