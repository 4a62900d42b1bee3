// What the checkers derive from each watch session (sim/history.h), and the structural watch
// checks that need no model. The content checks (every event and prev_kv equal to the
// commit the model replays at that revision, and none missing) run inside the revision
// replay of CheckLinearizability, where the model's state at each revision is at hand.
//
// A session covers the revisions [first_rev, last_rev]: from its start (the requested
// start_revision, or the revision after the created response's header for "from now") to
// the last revision it can vouch for (its newest event, or its newest bookmark: a progress
// response at P promises every event <= P was sent before it). Within that window the
// events received must be exactly the model's, revision by revision.
#ifndef GEOETCD_SIM_WATCH_VIEW_H_
#define GEOETCD_SIM_WATCH_VIEW_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/checkers.h"
#include "sim/history.h"

namespace geoetcd::sim {

struct WatchView {
  struct Event {
    const mvccpb::Event* event;
    int64_t time_us;  // when its response arrived
  };

  const WatchSession* session = nullptr;
  bool prev_kv = false;
  int64_t first_rev = 0;
  int64_t last_rev = -1;                         // < first_rev: the session vouches for nothing
  std::map<int64_t, std::vector<Event>> events;  // by revision, in arrival order

  bool InRange(const std::string& key) const;
};

// Derives a view per session and checks each one's structure ("watch"): the created
// response comes first; events are ordered by revision and never split a revision across
// responses (ordered, atomic); lie in the watched range, at or after the start and at or
// below their response's header; nothing arrives at or below a bookmark after it
// (bookmarkable); a cancellation for compaction names a compaction some client asked for,
// above the next revision the watch needed.
CheckResult BuildWatchViews(const History& history, std::vector<WatchView>* views);

// The largest compaction revision requested by a Compact invoked before `time_us` (any
// outcome: an unanswered one may have happened), from (invoke_us, revision) pairs sorted
// by invoke_us with a running maximum.
class CompactionIndex {
 public:
  explicit CompactionIndex(const History& history);
  int64_t MaxRequestedBefore(int64_t time_us) const;

 private:
  std::vector<std::pair<int64_t, int64_t>> by_time_;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_WATCH_VIEW_H_
