// Questions the checkers ask of a history: which operations committed, which succeeded or
// have unknown outcomes, the newest revision anything observed, and by when each revision's
// commit must have been invoked.
#ifndef GEOETCD_SIM_HISTORY_QUERIES_H_
#define GEOETCD_SIM_HISTORY_QUERIES_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "sim/history.h"

namespace geoetcd::sim {

// An OK KV mutation that changed the store (it made a revision).
bool IsCommit(const HistoryOp& op);
// The OK operations, in history order.
std::vector<const HistoryOp*> OkOps(const History& h);
// The KV mutations whose outcome is unknown, in history order.
std::vector<const HistoryOp*> UnknownMutations(const History& h);
// The newest revision a watch response shows to exist: its events' and its header's.
int64_t WatchResponseRevision(const etcdserverpb::WatchResponse& r);
// Every key-value any watch response of the history carried.
void ForEachWatchedKv(const History& h, const std::function<void(const mvccpb::KeyValue&)>& f);
// The newest revision any OK operation or watch response observed (at least 1).
int64_t MaxObservedRevision(const History& h, const std::vector<const HistoryOp*>& ok);
// bound[R]: the latest invocation time an op committed at revision R may have: it must be
// invoked before every op ordered at or after R returned, and before any watch response
// showing a revision >= R arrived. Nondecreasing in R.
std::vector<int64_t> CommitInvokeBounds(const History& h, const std::vector<const HistoryOp*>& ok,
                                        int64_t max_rev);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_HISTORY_QUERIES_H_
