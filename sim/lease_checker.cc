// The "lease" checker: what etcd promises about leases, judged from the history alone. The
// deletion of a lease's keys (at most one commit, all keys at once) is judged by the
// revision-ordered checkers and the per-key WGL search, which model it (sim/lease_view.h);
// this checker judges the rest:
//
// - answers: a grant gets the ID asked for and the TTL asked for (raised to the minimum);
//   a keep-alive answers 0 or the granted TTL; a time-to-live answers -1, or the granted
//   TTL and a remaining TTL within it, listing only keys some put attached to the lease;
// - unknown IDs: for an ID nobody granted, a keep-alive answers TTL 0, a time-to-live -1,
//   a revoke "requested lease not found", and a put with it is refused;
// - gone is gone: once a client learned that a lease it saw granted is gone (its revoke was
//   acknowledged, a keep-alive answered 0, a time-to-live -1, a revoke "not found"), no
//   request invoked after that sees a key attached to it, puts a key with it, or finds the
//   lease alive; and no read at or above an acknowledged revoke's revision sees its keys;
// - no early end: a lease granted or renewed (keep-alive answered TTL t > 0) lives at
//   least t seconds of the server's clock from the request's invocation, and a crash in
//   that time does not end it: the restarted server grants it its full TTL again (etcd
//   without checkpoints), so it lives at least t more seconds after the restart. Nothing
//   but a revoke may end it sooner;
// - TTL reset: a remaining TTL the server reports is never below what a lease renewed at
//   the start of the serving process would have left (a restart resets TTLs, never keeps
//   an older deadline).
//
// Server clocks may run fast (CheckOptions::lease_clock_rate_max), so t seconds of the
// server's clock last at least t / rate real seconds.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/checkers.h"
#include "sim/lease_view.h"

namespace geoetcd::sim {

using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

constexpr const char* kLeaseNotFound = "etcdserver: requested lease not found";

CheckResult Bad(const std::string& why, const HistoryOp& op) {
  return CheckResult::Violation("lease", absl::StrCat(why, ": ", FormatOp(op)));
}

// Every key-value an OK response shows as live, with the revision it was read at and
// whether that is a past revision (a read with `revision` set).
void ForEachReadKv(
    const HistoryOp& op,
    const std::function<void(const mvccpb::KeyValue& kv, int64_t read_rev, bool past)>& f) {
  if (op.outcome != OpOutcome::kOk || op.is_lease() || op.call.kind == OpKind::kCompact) return;
  const int64_t header = op.header_revision();
  auto range = [&](const etcdserverpb::RangeRequest& req, const etcdserverpb::RangeResponse& r) {
    const int64_t at = req.revision() > 0 ? req.revision() : header;
    for (const auto& kv : r.kvs()) f(kv, at, req.revision() > 0);
  };
  const RequestOp& req = op.call.request;
  if (req.has_request_range()) return range(req.request_range(), op.response.response_range());
  if (!req.has_request_txn()) return;
  const auto& t = req.request_txn();
  const auto& resp = op.response.response_txn();
  const auto& branch = resp.succeeded() ? t.success() : t.failure();
  for (int i = 0; i < branch.size() && i < resp.responses_size(); ++i) {
    if (branch.Get(i).has_request_range()) {
      range(branch.Get(i).request_range(), resp.responses(i).response_range());
    }
  }
}

// Whether `op` is a client learning that lease `id` is gone.
bool SaysGone(const HistoryOp& op) {
  switch (op.call.kind) {
    case OpKind::kLeaseRevoke:
      return op.outcome == OpOutcome::kOk ||
             (op.outcome == OpOutcome::kFail && op.error == kLeaseNotFound);
    case OpKind::kLeaseKeepAlive:
      return op.outcome == OpOutcome::kOk && op.lease_keep_alive_response.ttl() == 0;
    case OpKind::kLeaseTimeToLive:
      return op.outcome == OpOutcome::kOk && op.lease_time_to_live_response.ttl() < 0;
    default:
      return false;
  }
}

// Whether `op` found lease `id` alive (an acknowledged revoke did too, but also ended it).
bool SaysAlive(const HistoryOp& op) {
  switch (op.call.kind) {
    case OpKind::kLeaseKeepAlive:
      return op.outcome == OpOutcome::kOk && op.lease_keep_alive_response.ttl() > 0;
    case OpKind::kLeaseTimeToLive:
      return op.outcome == OpOutcome::kOk && op.lease_time_to_live_response.ttl() >= 0;
    case OpKind::kPut:
      return op.outcome == OpOutcome::kOk;
    default:
      return false;
  }
}

class LeaseChecker {
 public:
  LeaseChecker(const History& h, const CheckOptions& options)
      : h_(h), options_(options), leases_(BuildLeaseViews(h)) {
    // Leases live at the write region (node 0): only its restarts reset TTLs.
    for (const CrashRecord& c : h_.crashes) {
      if (c.restart_us != kNeverUs && c.node == 0) starts_.push_back(c.restart_us);
    }
    std::sort(starts_.begin(), starts_.end());
  }

  CheckResult Run() {
    if (auto r = CheckAnswers(); !r.ok) return r;
    if (auto r = CheckGoneIsGone(); !r.ok) return r;
    return CheckNoEarlyEnd();
  }

 private:
  // Whether anyone may have granted `id` (a grant that was not refused names it).
  bool Granted(int64_t id) const {
    auto it = leases_.find(id);
    return it != leases_.end() && !it->second.grants.empty();
  }
  const LeaseView* View(int64_t id) const {
    auto it = leases_.find(id);
    return it == leases_.end() ? nullptr : &it->second;
  }
  // T seconds of a server's clock last at least this many real microseconds.
  int64_t RealUsAtLeast(int64_t ttl_s) const {
    return static_cast<int64_t>(std::floor(static_cast<double>(ttl_s) * 1e6 /
                                           options_.lease_clock_rate_max));
  }

  CheckResult CheckAnswers() const {
    for (const HistoryOp& op : h_.ops) {
      const int64_t id = op.lease_id();
      switch (op.call.kind) {
        case OpKind::kLeaseGrant: {
          if (op.outcome != OpOutcome::kOk) break;
          const auto& r = op.lease_grant_response;
          const int64_t want_ttl = std::max(op.call.lease_grant.ttl(), h_.lease_ttl_min_s);
          if (r.id() == 0 || (op.call.lease_grant.id() != 0 && r.id() != op.call.lease_grant.id())) {
            return Bad(absl::StrCat("granted ID ", r.id(), " is not the one asked for"), op);
          }
          if (r.ttl() != want_ttl) {
            return Bad(absl::StrCat("granted TTL ", r.ttl(), ", want ", want_ttl), op);
          }
          break;
        }
        case OpKind::kLeaseKeepAlive: {
          if (op.outcome != OpOutcome::kOk) break;
          const int64_t ttl = op.lease_keep_alive_response.ttl();
          if (op.lease_keep_alive_response.id() != id) {
            return Bad("a keep-alive answered for another lease", op);
          }
          if (!Granted(id)) {
            if (ttl != 0) return Bad("a keep-alive of a lease nobody granted answered TTL != 0", op);
          } else if (ttl != 0 && ttl != View(id)->ttl_s) {
            return Bad(absl::StrCat("a keep-alive answered TTL ", ttl, ", but the lease was granted ",
                                    View(id)->ttl_s),
                       op);
          }
          break;
        }
        case OpKind::kLeaseTimeToLive: {
          if (op.outcome != OpOutcome::kOk) break;
          const auto& r = op.lease_time_to_live_response;
          if (!Granted(id)) {
            if (r.ttl() != -1) return Bad("time-to-live of a lease nobody granted is not -1", op);
            break;
          }
          if (r.ttl() < 0) break;
          const LeaseView& v = *View(id);
          if (r.grantedttl() != v.ttl_s || r.ttl() > r.grantedttl()) {
            return Bad(absl::StrCat("time-to-live answered ", r.ttl(), " of ", r.grantedttl(),
                                    ", but the lease was granted ", v.ttl_s),
                       op);
          }
          for (const std::string& key : r.keys()) {
            if (!std::binary_search(v.keys.begin(), v.keys.end(), key)) {
              return Bad(absl::StrCat("time-to-live lists ", key, ", which no put attached"), op);
            }
          }
          if (auto s = CheckTtlReset(op); !s.ok) return s;
          break;
        }
        case OpKind::kLeaseRevoke:
          if (!Granted(id) && op.outcome == OpOutcome::kOk) {
            return Bad("a revoke of a lease nobody granted succeeded", op);
          }
          // The server's answer (not an unavailable server's) must be "not found".
          if (!Granted(id) && op.outcome == OpOutcome::kFail && op.error != kLeaseNotFound &&
              op.error != "etcdserver: server stopped" && op.error.rfind("sim: ", 0) != 0) {
            return Bad(absl::StrCat("a revoke of a lease nobody granted failed with '", op.error,
                                    "', want '", kLeaseNotFound, "'"),
                       op);
          }
          break;
        case OpKind::kPut: {
          const int64_t lease = op.call.request.request_put().lease();
          if (lease != 0 && op.outcome == OpOutcome::kOk && !Granted(lease)) {
            return Bad("a put with a lease nobody granted succeeded", op);
          }
          break;
        }
        default:
          break;
      }
    }
    return {};
  }

  // The remaining TTL reported is at least what a lease renewed when the serving process
  // started would have left: restarts reset TTLs (and renewals only add).
  CheckResult CheckTtlReset(const HistoryOp& op) const {
    const auto& r = op.lease_time_to_live_response;
    // The process that answered started at the latest start before the request was sent (a
    // request sent to an earlier process dies with it).
    auto it = std::upper_bound(starts_.begin(), starts_.end(), op.invoke_us);
    const int64_t started_us = it == starts_.begin() ? 0 : *std::prev(it);
    const double elapsed_s =
        static_cast<double>(op.complete_us - started_us) * options_.lease_clock_rate_max / 1e6;
    const int64_t floor_s =
        static_cast<int64_t>(std::floor(static_cast<double>(r.grantedttl()) - elapsed_s));
    if (r.ttl() < floor_s) {
      return Bad(absl::StrCat("time-to-live answered ", r.ttl(), " s left of ", r.grantedttl(),
                              ", but the serving process started ", started_us, " us and a "
                              "restart grants every lease its full TTL (at least ",
                              floor_s, " s left)"),
                 op);
    }
    return {};
  }

  CheckResult CheckGoneIsGone() const {
    // When each lease was known gone: the earliest completion of a request telling a client
    // so, invoked after a grant of the lease was acknowledged (before that, the grant may
    // simply not have run yet).
    std::map<int64_t, const HistoryOp*> gone;
    std::map<int64_t, int64_t> granted_by;  // lease -> earliest acknowledged grant's completion
    for (const auto& [id, v] : leases_) {
      for (const HistoryOp* g : v.grants) {
        if (g->outcome != OpOutcome::kOk) continue;
        auto [it, inserted] = granted_by.emplace(id, g->complete_us);
        if (!inserted) it->second = std::min(it->second, g->complete_us);
      }
    }
    for (const HistoryOp& op : h_.ops) {
      if (!op.is_lease() || !SaysGone(op)) continue;
      auto g = granted_by.find(op.lease_id());
      if (g == granted_by.end() || op.invoke_us < g->second) continue;
      auto [it, inserted] = gone.emplace(op.lease_id(), &op);
      if (!inserted && op.complete_us < it->second->complete_us) it->second = &op;
    }
    // Acknowledged revokes end their leases at their revision.
    std::map<int64_t, const HistoryOp*> revoked;
    for (const auto& [id, v] : leases_) {
      if (v.acked_revoke != nullptr) revoked[id] = v.acked_revoke;
    }
    for (const HistoryOp& op : h_.ops) {
      const int64_t id = op.is_lease() ? op.lease_id()
                         : op.call.request.has_request_put()
                             ? op.call.request.request_put().lease()
                             : 0;
      if (auto it = gone.find(id); id != 0 && it != gone.end() &&
                                   op.invoke_us > it->second->complete_us && SaysAlive(op)) {
        return CheckResult::Violation(
            "lease", absl::StrCat("lease ", id, " was alive after a client learned it was gone: ",
                                  FormatOp(*it->second), " | ", FormatOp(op)));
      }
      std::string bad;
      ForEachReadKv(op, [&](const mvccpb::KeyValue& kv, int64_t read_rev, bool past) {
        if (!bad.empty() || kv.lease() == 0) return;
        if (auto it = gone.find(kv.lease());
            it != gone.end() && !past && op.invoke_us > it->second->complete_us) {
          bad = absl::StrCat("key ", kv.key(), " of lease ", kv.lease(),
                             " was visible after a client learned the lease was gone: ",
                             FormatOp(*it->second));
        } else if (auto r = revoked.find(kv.lease());
                   r != revoked.end() && read_rev >= r->second->header_revision()) {
          bad = absl::StrCat("key ", kv.key(), " of lease ", kv.lease(), " was visible at revision ",
                             read_rev, ", at or after the revoke at revision ",
                             r->second->header_revision(), ": ", FormatOp(*r->second));
        }
      });
      if (!bad.empty()) return CheckResult::Violation("lease", absl::StrCat(bad, " | ", FormatOp(op)));
    }
    return {};
  }

  // Each acknowledged grant or keep-alive with TTL t > 0 proves the lease alive from its
  // completion until t server-seconds after its invocation; a crash within that time
  // extends it by t server-seconds from the restart. A client learning the lease gone
  // inside such a window, with no revoke of it sent before, is a violation.
  CheckResult CheckNoEarlyEnd() const {
    for (const auto& [id, v] : leases_) {
      std::vector<std::pair<int64_t, int64_t>> alive;  // [from, until) in real time
      const int64_t t = RealUsAtLeast(v.ttl_s);
      for (const HistoryOp& op : h_.ops) {
        if (op.outcome != OpOutcome::kOk || op.lease_id() != id) continue;
        const bool renewed =
            op.call.kind == OpKind::kLeaseGrant ||
            (op.call.kind == OpKind::kLeaseKeepAlive && op.lease_keep_alive_response.ttl() > 0);
        if (renewed && op.invoke_us + t > op.complete_us) {
          alive.emplace_back(op.complete_us, op.invoke_us + t);
        }
      }
      // Crashes within a window: the restarted process gives the lease a full TTL again.
      for (size_t i = 0; i < alive.size(); ++i) {
        for (const CrashRecord& c : h_.crashes) {
          if (c.node == 0 && c.crash_us >= alive[i].first && c.crash_us < alive[i].second &&
              c.restart_us != kNeverUs) {
            const std::pair<int64_t, int64_t> w{c.restart_us, c.restart_us + t};
            if (std::find(alive.begin(), alive.end(), w) == alive.end()) alive.push_back(w);
          }
        }
      }
      if (alive.empty()) continue;
      for (const HistoryOp& op : h_.ops) {
        if (!op.is_lease() || op.lease_id() != id || !SaysGone(op)) continue;
        if (op.call.kind == OpKind::kLeaseRevoke && op.outcome == OpOutcome::kOk) continue;
        if (v.first_revoke_invoke_us < op.complete_us) continue;  // a revoke may explain it
        for (const auto& [from, until] : alive) {
          if (from <= op.invoke_us && op.complete_us < until) {
            return Bad(absl::StrCat("lease ", id, " (TTL ", v.ttl_s,
                                    " s) ended early: it is alive (granted, renewed or restarted) "
                                    "from ", from, " us until at least ", until, " us"),
                       op);
          }
        }
      }
    }
    return {};
  }

  const History& h_;
  const CheckOptions& options_;
  const std::map<int64_t, LeaseView> leases_;
  std::vector<int64_t> starts_;  // restart times, ascending
};

}  // namespace

CheckResult CheckLeases(const History& history, const CheckOptions& options) {
  return LeaseChecker(history, options).Run();
}

}  // namespace geoetcd::sim
