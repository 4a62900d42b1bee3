// The revision-ordered checkers: "revision", "durability" and "linearizability" (see
// checkers.h for what each one proves).
#include "sim/checkers.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sim/kv_model.h"
#include "sim/watch_view.h"

namespace geoetcd::sim {

using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

bool IsCommit(const HistoryOp& op) {
  return op.outcome == OpOutcome::kOk && op.is_mutation() && ResponseChangedState(op.response);
}

// Where an OK operation sits in commit order: the commit at `revision` (after == false), or
// after it and before the next commit (after == true): reads and no-op mutations.
struct Pos {
  int64_t revision = 0;
  bool after = false;
  bool operator<(const Pos& o) const {
    return revision != o.revision ? revision < o.revision : (!after && o.after);
  }
};

Pos PosOf(const HistoryOp& op) { return {op.header_revision(), !IsCommit(op)}; }

std::string PosText(const Pos& p) {
  return p.after ? absl::StrCat("after revision ", p.revision)
                 : absl::StrCat("commit at revision ", p.revision);
}

void ForEachObservedKv(const ResponseOp& r, const std::function<void(const mvccpb::KeyValue&)>& f) {
  switch (r.response_case()) {
    case ResponseOp::kResponseRange:
      for (const auto& kv : r.response_range().kvs()) f(kv);
      break;
    case ResponseOp::kResponsePut:
      if (r.response_put().has_prev_kv()) f(r.response_put().prev_kv());
      break;
    case ResponseOp::kResponseDeleteRange:
      for (const auto& kv : r.response_delete_range().prev_kvs()) f(kv);
      break;
    case ResponseOp::kResponseTxn:
      for (const auto& inner : r.response_txn().responses()) ForEachObservedKv(inner, f);
      break;
    default:
      break;
  }
}

void ForEachPutValue(const RequestOp& op, const std::function<void(const std::string&)>& f) {
  if (op.has_request_put()) f(op.request_put().value());
  if (op.has_request_txn()) {
    for (const auto& o : op.request_txn().success()) ForEachPutValue(o, f);
    for (const auto& o : op.request_txn().failure()) ForEachPutValue(o, f);
  }
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

// The newest revision a watch response shows to exist: its events' and its header's.
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

// bound[R]: the latest invocation time an op committed at revision R may have: it must be
// invoked before every op ordered at or after R returned, and before any watch response
// showing a revision >= R arrived. Nondecreasing in R.
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

// The revision-ordered replay behind CheckLinearizability.
class RevisionReplay {
 public:
  RevisionReplay(const History& h, const CheckOptions& options)
      : h_(h), options_(options), compactions_(h) {}

  CheckResult Run() {
    const std::vector<const HistoryOp*> ok = OkOps(h_);
    if (auto r = CheckRealTime(ok); !r.ok) return r;
    if (auto r = BuildWatchViews(h_, &views_); !r.ok) return r;
    max_rev_ = MaxObservedRevision(h_, ok);
    commit_at_.assign(max_rev_ + 1, nullptr);
    reads_at_.assign(max_rev_ + 1, {});
    for (const HistoryOp* op : ok) {
      const int64_t rev = op->header_revision();
      if (rev < 1) return Violation(*op, "header revision below 1");
      if (IsCommit(*op)) {
        if (commit_at_[rev] != nullptr) {
          return Violation(*op, absl::StrCat("revision ", rev, " was also acknowledged to #",
                                             commit_at_[rev]->index));
        }
        commit_at_[rev] = op;
      } else if (op->call.kind != OpKind::kCompact) {
        reads_at_[rev].push_back(op);
      }
    }
    bound_ = CommitInvokeBounds(h_, ok, max_rev_);
    watching_at_.assign(max_rev_ + 1, {});
    for (size_t v = 0; v < views_.size(); ++v) {
      for (int64_t r = std::max<int64_t>(views_[v].first_rev, 1);
           r <= std::min(views_[v].last_rev, max_rev_); ++r) {
        watching_at_[r].push_back(v);
      }
    }
    unknown_ = UnknownMutations(h_);
    // Latest-invoked first: the write that filled a hole usually ran just before it.
    std::sort(unknown_.begin(), unknown_.end(), [](const HistoryOp* a, const HistoryOp* b) {
      return a->invoke_us != b->invoke_us ? a->invoke_us > b->invoke_us : a->index > b->index;
    });
    used_.assign(unknown_.size(), false);
    if (auto r = PinHoles(ok); !r.ok) return r;
    auto observe = [this](const mvccpb::KeyValue& kv) {
      if (kv.version() > 0) {
        observed_[kv.key()].push_back({kv.mod_revision(), kv.create_revision(), kv.version()});
      }
    };
    for (const HistoryOp* op : ok) {
      if (op->call.kind != OpKind::kCompact) ForEachObservedKv(op->response, observe);
    }
    ForEachWatchedKv(h_, observe);
    for (auto& [key, versions] : observed_) {
      std::sort(versions.begin(), versions.end(),
                [](const ObservedVersion& a, const ObservedVersion& b) {
                  return a.mod_revision < b.mod_revision;
                });
    }
    IndexKnownPuts();

    CheckResult result;
    if (getenv("GEO_DEBUG")) {
      int holes = 0, pinned = 0;
      std::string list;
      for (int64_t r = 2; r <= max_rev_; ++r) {
        if (commit_at_[r]) continue;
        ++holes;
        if (pinned_at_[r] >= 0) { ++pinned; continue; }
        list += " " + std::to_string(r);
      }
      fprintf(stderr, "max_rev=%lld holes=%d pinned=%d unknown=%zu unpinned:%s\n", (long long)max_rev_, holes, pinned, unknown_.size(), list.c_str());
    }
    if (!CheckObservationsAt(1) || !Replay(2)) {
      if (exhausted_) {
        result.notes.push_back(absl::StrCat(
            "linearizability: inconclusive: the search for placements of ", unknown_.size(),
            " writes of unknown outcome exceeded ", options_.replay_steps_max, " steps"));
        return result;
      }
      return CheckResult::Violation(deepest_checker_, deepest_why_);
    }
    return result;
  }

 private:
  static CheckResult Violation(const HistoryOp& op, const std::string& why) {
    return CheckResult::Violation("linearizability", absl::StrCat(why, ": ", FormatOp(op)));
  }

  // If A returned before B was invoked, B may not sit before A in commit order.
  CheckResult CheckRealTime(const std::vector<const HistoryOp*>& ok) {
    std::vector<const HistoryOp*> by_invoke = ok;
    std::vector<const HistoryOp*> by_complete = ok;
    std::sort(by_invoke.begin(), by_invoke.end(),
              [](const HistoryOp* a, const HistoryOp* b) { return a->invoke_us < b->invoke_us; });
    std::sort(by_complete.begin(), by_complete.end(), [](const HistoryOp* a, const HistoryOp* b) {
      return a->complete_us < b->complete_us;
    });
    const HistoryOp* latest = nullptr;  // the op with the greatest Pos among those returned
    size_t j = 0;
    for (const HistoryOp* op : by_invoke) {
      while (j < by_complete.size() && by_complete[j]->complete_us < op->invoke_us) {
        if (latest == nullptr || PosOf(*latest) < PosOf(*by_complete[j])) latest = by_complete[j];
        ++j;
      }
      if (latest == nullptr) continue;
      const Pos before = PosOf(*latest);
      const Pos pos = PosOf(*op);
      const bool ordered = IsCommit(*op) ? before < pos : !(pos < before);
      if (!ordered) {
        return CheckResult::Violation(
            "linearizability",
            absl::StrCat("real-time order: #", latest->index, " returned before #", op->index,
                         " was invoked, yet #", op->index, " is ordered at ", PosText(pos),
                         " and #", latest->index, " at ", PosText(before), ": ", FormatOp(*latest),
                         " | ", FormatOp(*op)));
      }
    }
    return {};
  }

  // Values are unique per write, so a read that saw value v at mod_revision m proves that
  // v's writer committed at m: when that writer's outcome is unknown, it fills hole m.
  CheckResult PinHoles(const std::vector<const HistoryOp*>& ok) {
    std::map<std::string, int64_t, std::less<>> writer;  // value -> unknown op's slot
    std::map<std::string, int, std::less<>> writers_of_value;
    for (const HistoryOp& op : h_.ops) {
      if (!op.is_mutation()) continue;
      ForEachPutValue(op.call.request, [&](const std::string& v) { ++writers_of_value[v]; });
    }
    for (size_t u = 0; u < unknown_.size(); ++u) {
      ForEachPutValue(unknown_[u]->call.request, [&](const std::string& v) {
        if (writers_of_value[v] == 1) writer[v] = static_cast<int64_t>(u);
      });
    }
    pinned_at_.assign(max_rev_ + 1, -1);
    pinned_rev_.assign(unknown_.size(), 0);
    pinned_value_.assign(unknown_.size(), std::string());
    std::string bad;
    auto pin = [&](const mvccpb::KeyValue& kv) {
      auto it = writer.find(kv.value());
      const int64_t m = kv.mod_revision();
      if (!bad.empty() || it == writer.end() || m < 2 || m > max_rev_ || commit_at_[m] != nullptr) {
        return;  // acknowledged commits are judged by the replay itself
      }
      const int64_t u = it->second;
      if (pinned_at_[m] >= 0 && pinned_at_[m] != u) {
        bad = absl::StrCat("revision ", m, " holds writes of both #",
                           unknown_[pinned_at_[m]]->index, " and #", unknown_[u]->index);
      } else if (pinned_rev_[u] != 0 && pinned_rev_[u] != m) {
        bad = absl::StrCat("the write #", unknown_[u]->index, " was observed at revisions ",
                           pinned_rev_[u], " and ", m, ": ", FormatOp(*unknown_[u]));
      } else {
        pinned_at_[m] = u;
        pinned_rev_[u] = m;
        pinned_value_[u] = kv.value();
      }
    };
    for (const HistoryOp* op : ok) {
      if (op->call.kind != OpKind::kCompact) ForEachObservedKv(op->response, pin);
    }
    ForEachWatchedKv(h_, pin);
    if (!bad.empty()) return CheckResult::Violation("linearizability", bad);
    return {};
  }

  void Fail(int64_t rev, std::string why, const char* checker = "linearizability") {
    if (getenv("GEO_DEBUG") && dbg_++ < 40) fprintf(stderr, "FAIL@%lld steps=%lld: %s\n", (long long)rev, (long long)steps_, why.substr(0, 300).c_str());
    if (rev >= deepest_rev_) {
      deepest_rev_ = rev;
      deepest_why_ = std::move(why);
      deepest_checker_ = checker;
    }
  }

  bool Step() {
    if (++steps_ <= options_.replay_steps_max) return true;
    exhausted_ = true;
    return false;
  }

  // The model is at revision rev - 1; applies `op` as commit rev and checks what it said.
  bool ApplyAcknowledged(const HistoryOp& op, int64_t rev) {
    bool changed = false;
    const ResponseOp want = model_.Apply(op.call.request, &changed);
    std::string diff;
    if (!changed) {
      Fail(rev,
           absl::StrCat("revision ", rev, ": the model says this changes nothing: ", FormatOp(op)));
    } else if (!SameResponse(want, op.response, &diff)) {
      Fail(rev, absl::StrCat("revision ", rev, ": ", diff, ": ", FormatOp(op)));
    } else {
      return true;
    }
    model_.TruncateTo(rev - 1);
    return false;
  }

  bool CheckObservationsAt(int64_t rev) { return CheckReadsAt(rev) && CheckWatchesAt(rev); }

  // Every watch session vouching for `rev` received exactly the model's events of the
  // commit at `rev` in its range, in commit order, with the right prev_kv (reliable,
  // unique, prev_kv correct; resumable, since a resumed session starts where the last
  // one's window ended).
  bool CheckWatchesAt(int64_t rev) {
    if (watching_at_[rev].empty()) return true;
    std::vector<std::pair<std::string, const KvModel::Version*>> commit;
    if (rev > 1) {
      model_.ForEachVersionOfHead(
          [&](const std::string& key, const KvModel::Version& v) { commit.emplace_back(key, &v); });
    }
    for (size_t v : watching_at_[rev]) {
      const WatchView& view = views_[v];
      static const std::vector<WatchView::Event> kNone;
      auto got_it = view.events.find(rev);
      const std::vector<WatchView::Event>& got =
          got_it == view.events.end() ? kNone : got_it->second;
      size_t next = 0;
      for (const auto& [key, version] : commit) {
        if (!view.InRange(key)) continue;
        if (next >= got.size()) {
          return WatchFail(rev, view, absl::StrCat("reliable: the event of ", key, " is missing"));
        }
        const mvccpb::Event& ev = *got[next].event;
        const int64_t time_us = got[next].time_us;
        ++next;
        std::string why;
        if (!SameEvent(key, *version, ev, &why) ||
            !RightPrevKv(key, rev, view.prev_kv, ev, time_us, &why)) {
          return WatchFail(rev, view, why);
        }
      }
      if (next != got.size()) {
        return WatchFail(
            rev, view, absl::StrCat("unique: ", got.size() - next, " event(s) no commit explains"));
      }
    }
    return true;
  }

  bool WatchFail(int64_t rev, const WatchView& view, const std::string& why) {
    Fail(rev, absl::StrCat("revision ", rev, ": ", why, ": ", FormatWatchSession(*view.session)),
         "watch");
    return false;
  }

  static std::string KvText(const mvccpb::KeyValue& kv) {
    return absl::StrCat(kv.key(), "=", kv.value(), "@", kv.mod_revision(), "(c",
                        kv.create_revision(), ",v", kv.version(), ")");
  }

  static bool SameEvent(const std::string& key, const KvModel::Version& v, const mvccpb::Event& ev,
                        std::string* why) {
    mvccpb::KeyValue want;
    want.set_key(key);
    want.set_mod_revision(v.mod_revision);
    if (v.version != 0) {
      want.set_value(v.value);
      want.set_create_revision(v.create_revision);
      want.set_version(v.version);
    }
    const auto type = v.version != 0 ? mvccpb::Event::PUT : mvccpb::Event::DELETE;
    const auto& got = ev.kv();
    if (ev.type() == type && got.key() == want.key() && got.value() == want.value() &&
        got.mod_revision() == want.mod_revision() &&
        got.create_revision() == want.create_revision() && got.version() == want.version() &&
        got.lease() == 0) {
      return true;
    }
    *why =
        absl::StrCat("want ", type == mvccpb::Event::PUT ? "PUT " : "DELETE ", KvText(want),
                     ", got ", ev.type() == mvccpb::Event::PUT ? "PUT " : "DELETE ", KvText(got));
    return false;
  }

  // prev_kv is the key's version before the commit; a watcher that did not ask gets none,
  // and one replayed from history after compaction removed that version may get none.
  bool RightPrevKv(const std::string& key, int64_t rev, bool asked, const mvccpb::Event& ev,
                   int64_t time_us, std::string* why) const {
    if (!ev.has_prev_kv()) {
      const KvModel::Version* prev = model_.Get(key, rev - 1);
      if (!asked || prev == nullptr || compactions_.MaxRequestedBefore(time_us) >= rev) {
        return true;
      }
      *why = absl::StrCat("prev_kv: missing for ", key, " (want version ", prev->version, ")");
      return false;
    }
    if (!asked) {
      *why = absl::StrCat("prev_kv: sent for ", key, " although the watch did not ask");
      return false;
    }
    const KvModel::Version* prev = model_.Get(key, rev - 1);
    const auto& p = ev.prev_kv();
    if (prev != nullptr && p.key() == key && p.value() == prev->value &&
        p.mod_revision() == prev->mod_revision && p.create_revision() == prev->create_revision &&
        p.version() == prev->version) {
      return true;
    }
    *why = absl::StrCat(
        "prev_kv: got ", KvText(p), ", want ",
        prev == nullptr ? std::string("none") : absl::StrCat(prev->value, "@", prev->mod_revision));
    return false;
  }

  // Every read (and no-op mutation) that answered at `rev` must match the model there.
  bool CheckReadsAt(int64_t rev) {
    for (const HistoryOp* op : reads_at_[rev]) {
      if (op->call.request.has_request_range() &&
          op->call.request.request_range().revision() > rev) {
        Fail(rev,
             absl::StrCat("read a revision above its header revision ", rev, ": ", FormatOp(*op)));
        return false;
      }
      bool changed = false;
      const ResponseOp want = model_.Apply(op->call.request, &changed);
      std::string diff;
      if (changed) {
        model_.TruncateTo(rev);
        Fail(rev,
             absl::StrCat("after revision ", rev,
                          ": the model says this would have changed the store: ", FormatOp(*op)));
        return false;
      }
      if (!SameResponse(want, op->response, &diff)) {
        Fail(rev, absl::StrCat("after revision ", rev, ": ", diff, ": ", FormatOp(*op)));
        return false;
      }
    }
    return true;
  }

  // Replays commits from revision `from` (the model is at from - 1) through max_rev_.
  bool Replay(int64_t from) {
    for (int64_t rev = from; rev <= max_rev_; ++rev) {
      if (!Step()) return false;
      if (const HistoryOp* op = commit_at_[rev]) {
        if (!ApplyAcknowledged(*op, rev)) return false;
      } else if (const int64_t u = pinned_at_[rev]; u >= 0) {
        if (!PlaceUnknown(u, rev, /*pinned=*/true)) return false;
      } else {
        return SearchHole(rev);
      }
      if (!CheckObservationsAt(rev)) return false;
    }
    return true;
  }

  // Tries the unknown op `u` as commit `rev`; on success it stays applied. A pinned op has
  // exactly one possible revision, so only unpinned ones are tracked in used_.
  bool PlaceUnknown(int64_t u, int64_t rev, bool pinned) {
    const HistoryOp& op = *unknown_[u];
    if ((!pinned && used_[u]) || op.invoke_us > bound_[rev]) {
      if (pinned) {
        Fail(rev, absl::StrCat("revision ", rev, " holds a value of #", op.index,
                               ", which was invoked after an operation ordered later returned: ",
                               FormatOp(op)));
      }
      return false;
    }
    bool changed = false;
    model_.Apply(op.call.request, &changed);
    if (!changed) {
      if (pinned) {
        Fail(rev, absl::StrCat("revision ", rev, " holds a value of #", op.index,
                               ", which the model says changes nothing there: ", FormatOp(op)));
      }
      return false;
    }
    if (!pinned && !AgreesWithLaterObservations(rev)) {
      model_.TruncateTo(rev - 1);
      return false;
    }
    if (!pinned) used_[u] = true;
    return true;
  }

  // Every version a read or watch showed is the model's at its mod_revision. So the versions
  // the commit at `rev` just wrote must fit the next one observed of the same key: if that
  // one (version v at m) was created at or before `rev`, the key is live from `rev` to m in
  // that incarnation, and exactly v - version puts to it happen in (rev, m]: at least those
  // known (acknowledged or pinned commits), at most those plus the holes still open.
  // Checking it now, rather than when that read is replayed, keeps a wrong placement from
  // being carried through many later holes.
  bool AgreesWithLaterObservations(int64_t rev) const {
    bool agrees = true;
    model_.ForEachVersionOfHead([&](const std::string& key, const KvModel::Version& v) {
      auto it = observed_.find(key);
      if (!agrees || it == observed_.end()) return;
      auto next = std::upper_bound(
          it->second.begin(), it->second.end(), rev,
          [](int64_t r, const ObservedVersion& o) { return r < o.mod_revision; });
      if (next == it->second.end() || next->create_revision > rev) return;
      if (v.version == 0 || v.create_revision != next->create_revision) {
        agrees = false;
        return;
      }
      const int64_t m = next->mod_revision;
      int64_t known = 0;
      if (auto puts = known_puts_.find(key); puts != known_puts_.end()) {
        known = std::upper_bound(puts->second.begin(), puts->second.end(), m) -
                std::upper_bound(puts->second.begin(), puts->second.end(), rev);
      }
      const int64_t open = open_holes_before_[m + 1] - open_holes_before_[rev + 1];
      agrees = v.version + known <= next->version && next->version <= v.version + known + open;
    });
    return agrees;
  }

  // Revisions at which an acknowledged or pinned commit puts each key, and how many holes no
  // such commit explains below each revision.
  void IndexKnownPuts() {
    auto add_puts = [this](const RequestOp& req, bool success, int64_t rev) {
      if (req.has_request_put()) known_puts_[req.request_put().key()].push_back(rev);
      if (!req.has_request_txn()) return;
      for (const RequestOp& o : success ? req.request_txn().success() : req.request_txn().failure()) {
        if (o.has_request_put()) known_puts_[o.request_put().key()].push_back(rev);
      }
    };
    open_holes_before_.assign(max_rev_ + 2, 0);
    for (int64_t rev = 2; rev <= max_rev_; ++rev) {
      open_holes_before_[rev + 1] = open_holes_before_[rev];
      if (const HistoryOp* op = commit_at_[rev]) {
        add_puts(op->call.request,
                 op->response.has_response_txn() && op->response.response_txn().succeeded(), rev);
      } else if (const int64_t u = pinned_at_[rev]; u >= 0) {
        // The branch holding the value a read saw is the one that ran.
        const RequestOp& req = unknown_[u]->call.request;
        bool success = false;
        if (req.has_request_txn()) {
          for (const RequestOp& o : req.request_txn().success()) {
            success = success || (o.has_request_put() && o.request_put().value() == pinned_value_[u]);
          }
        }
        add_puts(req, success, rev);
      } else {
        ++open_holes_before_[rev + 1];
      }
    }
  }

  // No acknowledged or pinned commit explains `rev`: some unknown op must have made it.
  bool SearchHole(int64_t rev) {
    // The op that made a hole was sequenced between its neighbours, so it was most likely
    // invoked close to the commit just below: try candidates nearest to that first.
    int64_t near_us = 0;
    for (int64_t r = rev - 1; r >= 2; --r) {
      if (commit_at_[r] != nullptr) {
        near_us = commit_at_[r]->invoke_us;
        break;
      }
      if (pinned_at_[r] >= 0) {
        near_us = unknown_[pinned_at_[r]]->invoke_us;
        break;
      }
    }
    std::vector<std::pair<int64_t, size_t>> candidates;  // (distance, index in unknown_)
    for (size_t u = 0; u < unknown_.size(); ++u) {
      if (pinned_rev_[u] != 0 || used_[u] || unknown_[u]->invoke_us > bound_[rev]) continue;
      candidates.emplace_back(std::abs(unknown_[u]->invoke_us - near_us), u);
    }
    std::sort(candidates.begin(), candidates.end());
    // Equal deletes are interchangeable (feasibility only grows with the revision), so a
    // hole tries each deleted range once.
    std::set<std::pair<std::string, std::string>> deletes_tried;
    for (const auto& [distance, u] : candidates) {
      const RequestOp& req = unknown_[u]->call.request;
      if (req.has_request_delete_range() &&
          !deletes_tried
               .emplace(req.request_delete_range().key(), req.request_delete_range().range_end())
               .second) {
        continue;
      }
      if (!Step()) return false;
      if (!PlaceUnknown(static_cast<int64_t>(u), rev, /*pinned=*/false)) continue;
      if (CheckObservationsAt(rev) && Replay(rev + 1)) return true;
      if (exhausted_) return false;
      used_[u] = false;
      model_.TruncateTo(rev - 1);
    }
    Fail(rev, absl::StrCat("revision ", rev,
                           ": no acknowledged write has it and no write of unknown outcome "
                           "explains it and what was read afterwards"));
    return false;
  }

  struct ObservedVersion {
    int64_t mod_revision;
    int64_t create_revision;
    int64_t version;
  };

  const History& h_;
  const CheckOptions& options_;
  const CompactionIndex compactions_;
  std::map<std::string, std::vector<ObservedVersion>> observed_;  // by key, ascending mod
  std::map<std::string, std::vector<int64_t>> known_puts_;          // by key, ascending
  std::vector<int64_t> open_holes_before_;  // [r]: holes below r no commit is known for
  KvModel model_;
  std::vector<WatchView> views_;
  std::vector<std::vector<size_t>> watching_at_;  // by revision: views vouching for it
  int64_t max_rev_ = 1;
  std::vector<const HistoryOp*> commit_at_;              // by revision
  std::vector<std::vector<const HistoryOp*>> reads_at_;  // by header revision
  std::vector<int64_t> bound_;                           // by revision
  std::vector<const HistoryOp*> unknown_;                // unknown mutations
  std::vector<int64_t> pinned_at_;                       // revision -> index in unknown_
  std::vector<int64_t> pinned_rev_;                      // index in unknown_ -> revision
  std::vector<std::string> pinned_value_;                // index in unknown_ -> value seen
  std::vector<bool> used_;                               // index in unknown_
  int64_t steps_ = 0;
  int dbg_ = 0;
  bool exhausted_ = false;
  int64_t deepest_rev_ = -1;
  std::string deepest_why_ = "no linearization";
  const char* deepest_checker_ = "linearizability";
};

}  // namespace

CheckResult CheckRevisions(const History& history) {
  const std::vector<const HistoryOp*> ok = OkOps(history);
  std::map<int64_t, const HistoryOp*> commits;
  int64_t mutations = 0;
  for (const HistoryOp& op : history.ops) mutations += op.is_mutation() ? 1 : 0;
  const int64_t max_rev = MaxObservedRevision(history, ok);
  // Every revision above 1 is made by some mutation.
  if (max_rev > mutations + 1) {
    return CheckResult::Violation(
        "revision", absl::StrCat("revision ", max_rev, " was observed but only ", mutations,
                                 " mutations were ever invoked"));
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
                                   "and too few writes of unknown outcome could have made it (",
                                   holes, " holes so far, ", candidates, " candidates)"));
    }
  }
  return {};
}

CheckResult CheckDurability(const History& history) {
  const std::vector<const HistoryOp*> ok = OkOps(history);
  for (size_t c = 0; c < history.crashes.size(); ++c) {
    const CrashRecord& crash = history.crashes[c];
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
    const int64_t next_crash =
        c + 1 < history.crashes.size() ? history.crashes[c + 1].crash_us : kNeverUs;
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

CheckResult CheckLinearizability(const History& history, const CheckOptions& options) {
  return RevisionReplay(history, options).Run();
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
  return result;
}

}  // namespace geoetcd::sim
