// The history checkers "revision", "durability" and "watch" structure, and CheckHistory,
// which runs every checker (see checkers.h for what each one proves). The
// linearizability checker, a replay in revision order, is in revision_replay.cc.
#include "sim/checkers.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sim/history_queries.h"
#include "sim/kv_model.h"
#include "sim/lease_view.h"
#include "sim/watch_view.h"

namespace geoetcd::sim {

using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

CheckResult CheckRevisions(const History& history) {
  const std::vector<const HistoryOp*> ok = OkOps(history);
  std::map<int64_t, const HistoryOp*> commits;
  // A lease that may hold keys makes at most one revision more: its revoke or expiry.
  std::vector<HistoryOp> synthetic;
  const std::vector<LeaseDeleter> deleters =
      LeaseDeleters(BuildLeaseViews(history), &synthetic);
  int64_t mutations = static_cast<int64_t>(deleters.size());
  for (const HistoryOp& op : history.ops) mutations += op.is_mutation() ? 1 : 0;
  const int64_t max_rev = MaxObservedRevision(history, ok);
  // Every revision above 1 is made by some mutation.
  if (max_rev > mutations + 1) {
    return CheckResult::Violation(
        "revision", absl::StrCat("revision ", max_rev, " was observed but only ", mutations,
                                 " mutations (lease deletions included) could have made one"));
  }
  for (const HistoryOp* op : ok) {
    const int64_t rev = op->header_revision();
    if (rev < 1 || (IsCommit(*op) && rev < 2)) {
      return CheckResult::Violation("revision",
                                    absl::StrCat("impossible header revision: ", FormatOp(*op)));
    }
    if (!IsCommit(*op)) continue;
    auto [it, inserted] = commits.emplace(rev, op);
    if (!inserted) {
      return CheckResult::Violation(
          "revision", absl::StrCat("revision ", rev, " was acknowledged to two writes: ",
                                   FormatOp(*it->second), " | ", FormatOp(*op)));
    }
  }
  // Holes must be matched one to one with unknown ops invoked early enough. The bounds are
  // nondecreasing, so Hall's condition reduces to: the j-th hole has >= j candidates.
  const std::vector<int64_t> bound = CommitInvokeBounds(history, ok, max_rev);
  std::vector<int64_t> unknown_invokes;
  for (const HistoryOp* op : UnknownMutations(history)) unknown_invokes.push_back(op->invoke_us);
  for (const LeaseDeleter& d : deleters) unknown_invokes.push_back(d.op->invoke_us);
  std::sort(unknown_invokes.begin(), unknown_invokes.end());
  int64_t holes = 0;
  for (int64_t rev = 2; rev <= max_rev; ++rev) {
    if (commits.count(rev) != 0) continue;
    ++holes;
    const int64_t candidates =
        std::upper_bound(unknown_invokes.begin(), unknown_invokes.end(), bound[rev]) -
        unknown_invokes.begin();
    if (candidates < holes) {
      return CheckResult::Violation(
          "revision", absl::StrCat("revision ", rev, " is a hole: no acknowledged write has it ",
                                   "and too few writes of unknown outcome or lease deletions "
                                   "could have made it (",
                                   holes, " holes so far, ", candidates, " candidates)"));
    }
  }
  return {};
}

CheckResult CheckDurability(const History& history) {
  const std::vector<const HistoryOp*> ok = OkOps(history);
  for (size_t c = 0; c < history.crashes.size(); ++c) {
    const CrashRecord& crash = history.crashes[c];
    // Acknowledged writes are durable at the write region (node 0); another region may
    // restart behind it and catch up (the convergence checker holds it to that).
    if (crash.node != 0) continue;
    const HistoryOp* newest = nullptr;  // the highest revision acknowledged before the crash
    for (const HistoryOp* op : ok) {
      if (op->complete_us < crash.crash_us &&
          (newest == nullptr || newest->header_revision() < op->header_revision())) {
        newest = op;
      }
    }
    if (newest == nullptr || crash.restart_us == kNeverUs) continue;
    const int64_t acked = newest->header_revision();
    if (crash.recovered_revision < acked) {
      return CheckResult::Violation(
          "durability", absl::StrCat("node ", crash.node, " crashed and recovered at revision ",
                                     crash.recovered_revision, ", but revision ", acked,
                                     " had been acknowledged: ", FormatOp(*newest)));
    }
    int64_t next_crash = kNeverUs;
    for (size_t d = c + 1; d < history.crashes.size(); ++d) {
      if (history.crashes[d].node == 0) {
        next_crash = history.crashes[d].crash_us;
        break;
      }
    }
    for (const HistoryOp* op : ok) {
      if (op->invoke_us > crash.restart_us && op->invoke_us < next_crash &&
          op->header_revision() < acked) {
        return CheckResult::Violation(
            "durability", absl::StrCat("after the restart a read answered at revision ",
                                       op->header_revision(), ", below revision ", acked,
                                       " acknowledged before the crash: ", FormatOp(*newest), " | ",
                                       FormatOp(*op)));
      }
    }
  }
  return {};
}

CheckResult CheckWatchStructure(const History& history) {
  std::vector<WatchView> views;
  return BuildWatchViews(history, &views);
}

CheckResult CheckHistory(const History& history, const CheckOptions& options) {
  CheckResult result;
  auto merge = [&result](CheckResult r) {
    for (auto& note : r.notes) result.notes.push_back(std::move(note));
    if (r.ok) return;
    if (result.ok) {
      result.ok = false;
      result.checker = r.checker;
      result.detail = r.detail;
    } else {
      result.notes.push_back(absl::StrCat("also violated: ", r.checker, ": ", r.detail));
    }
  };
  merge(CheckRevisions(history));
  merge(CheckDurability(history));
  merge(CheckWatchStructure(history));
  merge(CheckLinearizability(history, options));
  merge(CheckPerKeyWgl(history, options));
  merge(CheckLeases(history, options));
  return result;
}

}  // namespace geoetcd::sim
