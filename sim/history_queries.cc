#include "sim/history_queries.h"

#include <algorithm>

#include "sim/kv_model.h"

namespace geoetcd::sim {

bool IsCommit(const HistoryOp& op) {
  return op.outcome == OpOutcome::kOk && op.is_mutation() && ResponseChangedState(op.response);
}

std::vector<const HistoryOp*> OkOps(const History& h) {
  std::vector<const HistoryOp*> ok;
  for (const HistoryOp& op : h.ops) {
    if (op.outcome == OpOutcome::kOk) ok.push_back(&op);
  }
  return ok;
}

std::vector<const HistoryOp*> UnknownMutations(const History& h) {
  std::vector<const HistoryOp*> unknown;
  for (const HistoryOp& op : h.ops) {
    if (op.outcome == OpOutcome::kUnknown && op.is_mutation()) unknown.push_back(&op);
  }
  return unknown;
}

int64_t WatchResponseRevision(const etcdserverpb::WatchResponse& r) {
  int64_t rev = r.header().revision();
  for (const auto& ev : r.events()) rev = std::max(rev, ev.kv().mod_revision());
  return rev;
}

void ForEachWatchedKv(const History& h, const std::function<void(const mvccpb::KeyValue&)>& f) {
  for (const WatchSession& w : h.watches) {
    for (const WatchSession::Received& r : w.responses) {
      for (const auto& ev : r.response.events()) {
        if (ev.type() == mvccpb::Event::PUT) f(ev.kv());
        if (ev.has_prev_kv()) f(ev.prev_kv());
      }
    }
  }
}

int64_t MaxObservedRevision(const History& h, const std::vector<const HistoryOp*>& ok) {
  int64_t max_rev = 1;
  for (const HistoryOp* op : ok) {
    max_rev = std::max(max_rev, op->header_revision());
    if (op->call.kind == OpKind::kCompact) continue;
    ForEachObservedKv(op->response, [&](const mvccpb::KeyValue& kv) {
      max_rev = std::max(max_rev, kv.mod_revision());
    });
  }
  for (const WatchSession& w : h.watches) {
    for (const WatchSession::Received& r : w.responses) {
      max_rev = std::max(max_rev, WatchResponseRevision(r.response));
    }
  }
  return max_rev;
}

std::vector<int64_t> CommitInvokeBounds(const History& h, const std::vector<const HistoryOp*>& ok,
                                        int64_t max_rev) {
  std::vector<int64_t> bound(static_cast<size_t>(max_rev) + 2, kNeverUs);
  for (const HistoryOp* op : ok) {
    const int64_t rev = std::clamp<int64_t>(op->header_revision(), 0, max_rev);
    bound[rev] = std::min(bound[rev], op->complete_us);
  }
  for (const WatchSession& w : h.watches) {
    for (const WatchSession::Received& r : w.responses) {
      const int64_t rev = std::clamp<int64_t>(WatchResponseRevision(r.response), 0, max_rev);
      bound[rev] = std::min(bound[rev], r.time_us);
    }
  }
  for (int64_t r = max_rev - 1; r >= 0; --r) bound[r] = std::min(bound[r], bound[r + 1]);
  return bound;
}

}  // namespace geoetcd::sim
