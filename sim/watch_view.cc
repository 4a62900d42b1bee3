#include "sim/watch_view.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace geoetcd::sim {

bool WatchView::InRange(const std::string& key) const {
  const std::string& begin = session->create.key();
  const std::string& end = session->create.range_end();
  if (end.empty()) return key == begin;
  if (end.size() == 1 && end[0] == '\0') return key >= begin;
  return begin <= key && key < end;
}

CompactionIndex::CompactionIndex(const History& history) {
  for (const HistoryOp& op : history.ops) {
    if (op.call.kind == OpKind::kCompact && op.outcome != OpOutcome::kFail) {
      by_time_.emplace_back(op.invoke_us, op.call.compact.revision());
    }
  }
  for (const RepairRecord& r : history.repairs) by_time_.emplace_back(r.time_us, r.revision);
  std::sort(by_time_.begin(), by_time_.end());
  for (size_t i = 1; i < by_time_.size(); ++i) {
    by_time_[i].second = std::max(by_time_[i].second, by_time_[i - 1].second);
  }
}

int64_t CompactionIndex::MaxRequestedBefore(int64_t time_us) const {
  auto it = std::lower_bound(by_time_.begin(), by_time_.end(), std::make_pair(time_us, int64_t{0}));
  return it == by_time_.begin() ? 0 : std::prev(it)->second;
}

namespace {

CheckResult Bad(const WatchSession& s, const WatchSession::Received& r, const std::string& why) {
  return CheckResult::Violation(
      "watch", absl::StrCat(why, ": ", FormatWatchSession(s), " | response at ", r.time_us,
                            "us: ", FormatWatchResponse(r.response)));
}

// Checks one session and fills its view.
CheckResult BuildView(const WatchSession& s, const CompactionIndex& compactions, WatchView* view) {
  view->session = &s;
  view->prev_kv = s.create.prev_kv();
  if (s.responses.empty()) return {};
  const WatchSession::Received& first = s.responses.front();
  if (!first.response.created()) return Bad(s, first, "the first response is not 'created'");
  if (first.response.canceled()) return {};  // refused: vouches for nothing
  const int64_t start = s.create.start_revision();
  view->first_rev = start > 0 ? start : first.response.header().revision() + 1;
  int64_t last_event = 0;
  int64_t bookmark = 0;
  for (size_t i = 1; i < s.responses.size(); ++i) {
    const WatchSession::Received& r = s.responses[i];
    const auto& resp = r.response;
    if (resp.created()) return Bad(s, r, "a second 'created' response");
    if (resp.canceled()) {
      const int64_t c = resp.compact_revision();
      if (c == 0) continue;
      const int64_t needed = std::max({view->first_rev, last_event + 1, bookmark + 1});
      if (needed >= c) {
        return Bad(s, r,
                   absl::StrCat("canceled as compacted at ", c, ", but revision ", needed,
                                " (the next it needed) was not compacted"));
      }
      if (compactions.MaxRequestedBefore(r.time_us) < c) {
        return Bad(s, r,
                   absl::StrCat("canceled as compacted at ", c,
                                ", but no client had asked for that compaction"));
      }
      continue;
    }
    if (resp.events_size() == 0) {  // progress: a bookmark
      const int64_t p = resp.header().revision();
      if (p < last_event) {
        return Bad(s, r,
                   absl::StrCat("bookmark ", p, " is below the delivered event at ", last_event));
      }
      bookmark = std::max(bookmark, p);
      continue;
    }
    int64_t prev_rev = 0;
    for (const auto& ev : resp.events()) {
      const int64_t rev = ev.kv().mod_revision();
      if (rev <= last_event && rev != prev_rev) {
        return Bad(
            s, r,
            absl::StrCat("ordered/atomic: revision ", rev, " arrived after revision ", last_event));
      }
      if (rev < prev_rev) return Bad(s, r, "ordered: events out of revision order");
      if (rev <= bookmark) {
        return Bad(s, r,
                   absl::StrCat("bookmarkable: revision ", rev, " arrived after a bookmark at ",
                                bookmark));
      }
      if (rev < view->first_rev) {
        return Bad(s, r,
                   absl::StrCat("revision ", rev, " precedes the watch's start ", view->first_rev));
      }
      if (rev > resp.header().revision()) {
        return Bad(s, r, absl::StrCat("revision ", rev, " is above the response's header"));
      }
      if (!view->InRange(ev.kv().key())) {
        return Bad(s, r, absl::StrCat("key ", ev.kv().key(), " is outside the watched range"));
      }
      if (prev_rev != rev && !view->events[rev].empty()) {
        return Bad(s, r, absl::StrCat("atomic: revision ", rev, " split across responses"));
      }
      view->events[rev].push_back({&ev, r.time_us});
      prev_rev = rev;
    }
    last_event = std::max(last_event, prev_rev);
  }
  view->last_rev = std::max(last_event, bookmark);
  return {};
}

}  // namespace

CheckResult BuildWatchViews(const History& history, std::vector<WatchView>* views) {
  const CompactionIndex compactions(history);
  views->assign(history.watches.size(), WatchView());
  for (size_t i = 0; i < history.watches.size(); ++i) {
    if (CheckResult r = BuildView(history.watches[i], compactions, &(*views)[i]); !r.ok) {
      return r;
    }
  }
  return {};
}

}  // namespace geoetcd::sim
