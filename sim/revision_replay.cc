// The linearizability checker (checkers.h): a replay of the history in revision order that
// places every operation at the commit it observed, fills the holes left by writes of
// unknown outcome by search, and checks reads, watches and leases against the replayed
// state at each revision.
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

namespace {

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

// Calls `f(request, response, header revision)` for every read at the current revision in
// `ok`: plain Ranges, and the Ranges of a Txn that changed nothing (it read at its header
// revision). `f` skips historical reads itself (request.revision() != 0).
using CurrentReadFn = std::function<void(const etcdserverpb::RangeRequest&,
                                         const etcdserverpb::RangeResponse&, int64_t)>;
void ForEachCurrentRead(const std::vector<const HistoryOp*>& ok, const CurrentReadFn& f) {
  for (const HistoryOp* op : ok) {
    const RequestOp& req = op->call.request;
    if (req.has_request_range()) {
      f(req.request_range(), op->response.response_range(), op->header_revision());
    } else if (req.has_request_txn() && !ResponseChangedState(op->response)) {
      const auto& t = req.request_txn();
      const auto& branch = op->response.response_txn().succeeded() ? t.success() : t.failure();
      const auto& resps = op->response.response_txn().responses();
      for (int i = 0; i < branch.size() && i < resps.size(); ++i) {
        if (branch.Get(i).has_request_range()) {
          f(branch.Get(i).request_range(), resps.Get(i).response_range(),
            op->header_revision());
        }
      }
    }
  }
}

void ForEachPutValue(const RequestOp& op, const std::function<void(const std::string&)>& f) {
  if (op.has_request_put()) f(op.request_put().value());
  if (op.has_request_txn()) {
    for (const auto& o : op.request_txn().success()) ForEachPutValue(o, f);
    for (const auto& o : op.request_txn().failure()) ForEachPutValue(o, f);
  }
}

// What a request does, with the values it writes left out (they are unobserved for the ops
// this is used on), unless some compare names them: the keys and ranges it writes, its
// compares, and any value a compare could tell apart.
std::string EffectSignature(const RequestOp& op, const std::set<std::string>& compared_values) {
  std::string sig;
  auto field = [&sig](const std::string& s) {
    sig += std::to_string(s.size());
    sig += ':';
    sig += s;
  };
  if (op.has_request_put()) {
    sig += 'P';
    field(op.request_put().key());
    if (compared_values.count(op.request_put().value()) != 0) field(op.request_put().value());
  } else if (op.has_request_delete_range()) {
    sig += 'D';
    field(op.request_delete_range().key());
    field(op.request_delete_range().range_end());
  } else if (op.has_request_txn()) {
    const auto& t = op.request_txn();
    sig += 'T';
    for (const etcdserverpb::Compare& c : t.compare()) {
      field(c.key());
      field(c.range_end());
      sig += std::to_string(c.target()) + "," + std::to_string(c.result()) + ",";
      sig += std::to_string(c.version()) + "," + std::to_string(c.create_revision()) + ",";
      sig += std::to_string(c.mod_revision()) + "," + std::to_string(c.lease()) + ",";
      sig += std::to_string(c.target_union_case()) + ",";
      field(c.value());
    }
    sig += 'S';
    for (const RequestOp& o : t.success()) sig += EffectSignature(o, compared_values);
    sig += 'F';
    for (const RequestOp& o : t.failure()) sig += EffectSignature(o, compared_values);
  } else {
    sig += 'R';  // a read: writes nothing
  }
  return sig;
}

// EffectSignature of an operation of unknown outcome: a lease deleter deletes the keys of
// its lease; the rest as above.
std::string UnknownEffectSignature(const HistoryOp& op, const std::set<std::string>& compared) {
  if (op.call.kind == OpKind::kLeaseRevoke) return absl::StrCat("L", op.lease_id());
  return EffectSignature(op.call.request, compared);
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
    unknown_ = UnknownMutations(h_);  // in history order; SearchHole ranks them per hole
    fixed_rev_.assign(unknown_.size(), 0);
    expected_us_.clear();
    for (const HistoryOp* op : unknown_) expected_us_.push_back(op->invoke_us);
    // Each lease that may hold keys is deleted once, by a commit no KV request made: its
    // deleter fills a hole like an operation of unknown outcome.
    for (const LeaseDeleter& d :
         LeaseDeleters(BuildLeaseViews(h_), &synthetic_)) {
      unknown_.push_back(d.op);
      fixed_rev_.push_back(d.fixed_revision);
      expected_us_.push_back(d.expected_us);
      if (d.fixed_revision > 0 && d.fixed_revision <= max_rev_) {
        revoke_slot_[d.op] = static_cast<int64_t>(unknown_.size()) - 1;
      }
    }
    used_.assign(unknown_.size(), false);
    for (const HistoryOp& op : h_.ops) {
      if (!op.call.request.has_request_txn()) continue;
      for (const auto& c : op.call.request.request_txn().compare()) {
        if (c.target() == etcdserverpb::Compare::VALUE) compared_values_.insert(c.value());
      }
    }
    placed_invoke_us_.assign(max_rev_ + 1, 0);
    if (auto r = PinHoles(ok); !r.ok) return r;
    auto observe = [this](const mvccpb::KeyValue& kv) {
      if (kv.version() > 0) {
        observed_[kv.key()].push_back({kv.mod_revision(), kv.create_revision(), kv.version()});
        created_at_[kv.create_revision()].insert(kv.key());
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
    IndexCompares();
    IndexUnchangedWindows(ok);
    IndexAbsences(ok);

    CheckResult result;
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
    placed_invoke_us_[rev] = op.invoke_us;
    if (model_.UsesRevokedLease(op.call.request)) {
      Fail(rev, absl::StrCat("revision ", rev,
                             ": a put with a lease whose revocation deleted its keys earlier: ",
                             FormatOp(op)));
      return false;
    }
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
      want.set_lease(v.lease);
    }
    const auto type = v.version != 0 ? mvccpb::Event::PUT : mvccpb::Event::DELETE;
    const auto& got = ev.kv();
    if (ev.type() == type && got.key() == want.key() && got.value() == want.value() &&
        got.mod_revision() == want.mod_revision() &&
        got.create_revision() == want.create_revision() && got.version() == want.version() &&
        got.lease() == want.lease()) {
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
        p.version() == prev->version && p.lease() == prev->lease) {
      return true;
    }
    if (prev != nullptr && p.key() == key && p.value() == prev->value &&
        p.mod_revision() == prev->mod_revision && p.lease() != prev->lease) {
      *why = absl::StrCat("prev_kv: lease ", p.lease(), ", want ", prev->lease);
      return false;
    }
    *why = absl::StrCat(
        "prev_kv: got ", KvText(p), ", want ",
        prev == nullptr ? std::string("none") : absl::StrCat(prev->value, "@", prev->mod_revision));
    return false;
  }

  // Every read (and no-op mutation) that answered at `rev` must match the model there.
  bool CheckReadsAt(int64_t rev) {
    for (const HistoryOp* op : reads_at_[rev]) {
      if (op->is_lease()) {
        if (!CheckLeaseOpAt(*op, rev)) return false;
        continue;
      }
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

  // A lease request answered at `rev`. The model knows leases only through their keys: a
  // revoke answered at `rev` either made the commit at `rev` (deleting every key of the
  // lease) or found no key attached, so none is attached after `rev`.
  bool CheckLeaseOpAt(const HistoryOp& op, int64_t rev) {
    if (op.call.kind != OpKind::kLeaseRevoke) return true;
    auto slot = revoke_slot_.find(&op);
    if (slot != revoke_slot_.end() && used_[slot->second]) return true;  // it made `rev`
    if (const int64_t keys = model_.KeysOfLease(op.lease_id()); keys > 0) {
      Fail(rev, absl::StrCat("after revision ", rev, ": the revoke answered there, yet ", keys,
                             " key(s) attached to the lease remain: ", FormatOp(op)));
      return false;
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
    if ((!pinned && used_[u]) || op.invoke_us > bound_[rev] ||
        (fixed_rev_[u] != 0 && fixed_rev_[u] != rev)) {
      if (pinned) {
        Fail(rev, absl::StrCat("revision ", rev, " holds a value of #", op.index,
                               ", which was invoked after an operation ordered later returned: ",
                               FormatOp(op)));
      }
      return false;
    }
    if (model_.UsesRevokedLease(op.call.request)) {
      if (pinned) {
        Fail(rev, absl::StrCat("revision ", rev, " holds a value of #", op.index,
                               ", a put with a lease revoked before: ", FormatOp(op)));
      }
      return false;
    }
    bool changed = false;
    if (op.call.kind == OpKind::kLeaseRevoke) {
      model_.ApplyLeaseRevoke(op.lease_id(), &changed);
    } else {
      model_.Apply(op.call.request, &changed);
    }
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
    placed_invoke_us_[rev] = op.invoke_us;
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
    // A key seen created at `rev` was created by this commit.
    if (auto created = created_at_.find(rev); created != created_at_.end()) {
      for (const std::string& key : created->second) {
        const KvModel::Version* v = model_.Get(key, rev);
        if (v == nullptr || v->create_revision != rev) return false;
      }
    }
    bool agrees = true;
    model_.ForEachVersionOfHead([&](const std::string& key, const KvModel::Version& v) {
      // A read at H that saw the key last modified at m proves nothing wrote it in (m, H].
      auto s = unchanged_.find(key);
      if (!agrees || s == unchanged_.end()) return;
      auto after = std::upper_bound(
          s->second.begin(), s->second.end(), rev,
          [](int64_t r, const std::pair<int64_t, int64_t>& w) { return r < w.first; });
      if (after != s->second.begin() && std::prev(after)->second >= rev) agrees = false;
    });
    if (!agrees) return false;
    for (const std::string& key : observed_keys_) {
      if (!KeyAgrees(key, rev)) return false;
    }
    return true;
  }

  // The key's state at `rev` (the model's head) against what was observed of it later.
  bool KeyAgrees(const std::string& key, int64_t rev) const {
    const KvModel::Version* v = model_.Get(key, rev);
    // The next version seen: if created at or before `rev`, the key is live at `rev` in that
    // incarnation, and exactly (seen version - version now) puts to it happen in (rev, m]:
    // at least those known (acknowledged or pinned commits), at most those plus the holes
    // still open.
    if (auto it = observed_.find(key); it != observed_.end()) {
      auto next =
          std::upper_bound(it->second.begin(), it->second.end(), rev,
                           [](int64_t r, const ObservedVersion& o) { return r < o.mod_revision; });
      if (next != it->second.end() && next->create_revision <= rev) {
        if (v == nullptr || v->create_revision != next->create_revision) return false;
        const int64_t m = next->mod_revision;
        int64_t known = 0;
        if (auto puts = known_puts_.find(key); puts != known_puts_.end()) {
          known = std::upper_bound(puts->second.begin(), puts->second.end(), m) -
                  std::upper_bound(puts->second.begin(), puts->second.end(), rev);
        }
        const int64_t open = open_holes_before_[m + 1] - open_holes_before_[rev + 1];
        if (v->version + known > next->version || next->version > v->version + known + open) {
          return false;
        }
      }
    }
    // Seen absent at H >= rev while live now: something must delete it in (rev, H].
    if (auto a = absent_at_.find(key); v != nullptr && a != absent_at_.end()) {
      auto h = std::lower_bound(a->second.begin(), a->second.end(), rev);
      if (h != a->second.end() && !MayDeleteBetween(key, rev, *h)) return false;
    }
    return true;
  }

  // Whether some commit in (from, to] may delete `key`: a hole still open, or a known
  // commit with a delete whose range holds the key (in either branch: an overestimate).
  bool MayDeleteBetween(const std::string& key, int64_t from, int64_t to) const {
    if (open_holes_before_[to + 1] - open_holes_before_[from + 1] > 0) return true;
    for (auto it = deletes_.upper_bound(from); it != deletes_.end() && it->first <= to; ++it) {
      for (const auto& [begin, end] : it->second) {
        if (end.empty() ? key == begin
                        : (key >= begin && (key < end || (end.size() == 1 && end[0] == '\0')))) {
          return true;
        }
      }
    }
    return false;
  }

  // absent_at_[key]: header revisions of current reads that found the key absent; and the
  // delete ranges of the known commits, by revision.
  void IndexAbsences(const std::vector<const HistoryOp*>& ok) {
    std::vector<std::string> universe;
    for (const auto& [key, versions] : observed_) universe.push_back(key);
    for (const auto& [key, revs] : known_puts_) universe.push_back(key);
    std::sort(universe.begin(), universe.end());
    universe.erase(std::unique(universe.begin(), universe.end()), universe.end());
    auto add = [&](const etcdserverpb::RangeRequest& req, const etcdserverpb::RangeResponse& r,
                   int64_t header) {
      if (req.revision() != 0) return;
      std::set<std::string> present;
      for (const auto& kv : r.kvs()) present.insert(kv.key());
      const std::string& end = req.range_end();
      for (auto it = std::lower_bound(universe.begin(), universe.end(), req.key());
           it != universe.end(); ++it) {
        if (end.empty() ? *it != req.key() : (!(end.size() == 1 && end[0] == '\0') && *it >= end)) {
          break;
        }
        if (r.more() && (r.kvs().empty() || *it > r.kvs().rbegin()->key())) break;
        if (present.count(*it) == 0) absent_at_[*it].push_back(header);
      }
    };
    ForEachCurrentRead(ok, add);
    // A key created at c was absent at c - 1.
    for (const auto& [key, versions] : observed_) {
      for (const ObservedVersion& o : versions) {
        if (o.create_revision >= 2) absent_at_[key].push_back(o.create_revision - 1);
      }
    }
    for (auto& [key, revs] : absent_at_) {
      std::sort(revs.begin(), revs.end());
      revs.erase(std::unique(revs.begin(), revs.end()), revs.end());
    }
    for (const auto& [key, versions] : observed_) observed_keys_.push_back(key);
    for (const auto& [key, revs] : absent_at_) observed_keys_.push_back(key);
    std::sort(observed_keys_.begin(), observed_keys_.end());
    observed_keys_.erase(std::unique(observed_keys_.begin(), observed_keys_.end()),
                         observed_keys_.end());
    auto add_deletes = [this](const RequestOp& req, int64_t rev) {
      if (req.has_request_delete_range()) {
        deletes_[rev].emplace_back(req.request_delete_range().key(),
                                   req.request_delete_range().range_end());
      }
      if (!req.has_request_txn()) return;
      for (const auto* ops : {&req.request_txn().success(), &req.request_txn().failure()}) {
        for (const RequestOp& o : *ops) {
          if (o.has_request_delete_range()) {
            deletes_[rev].emplace_back(o.request_delete_range().key(),
                                       o.request_delete_range().range_end());
          }
        }
      }
    };
    for (int64_t rev = 2; rev <= max_rev_; ++rev) {
      if (commit_at_[rev] != nullptr) add_deletes(commit_at_[rev]->call.request, rev);
      if (pinned_at_[rev] >= 0) add_deletes(unknown_[pinned_at_[rev]]->call.request, rev);
    }
  }

  // unchanged_[key]: windows [m + 1, H] in which no commit wrote the key (a current read at
  // H saw it with mod_revision m), sorted by start, each end raised to the running maximum.
  void IndexUnchangedWindows(const std::vector<const HistoryOp*>& ok) {
    auto add = [this](const etcdserverpb::RangeRequest& req, const etcdserverpb::RangeResponse& r,
                      int64_t header) {
      if (req.revision() != 0) return;
      for (const auto& kv : r.kvs()) {
        if (kv.mod_revision() < header)
          unchanged_[kv.key()].emplace_back(kv.mod_revision() + 1, header);
      }
    };
    ForEachCurrentRead(ok, add);
    for (auto& [key, windows] : unchanged_) {
      std::sort(windows.begin(), windows.end());
      for (size_t i = 1; i < windows.size(); ++i) {
        windows[i].second = std::max(windows[i].second, windows[i - 1].second);
      }
    }
  }

  // Revisions at which an acknowledged or pinned commit puts each key, and how many holes no
  // such commit explains below each revision.
  void IndexKnownPuts() {
    auto add_puts = [this](const RequestOp& req, bool success, int64_t rev) {
      if (req.has_request_put()) known_puts_[req.request_put().key()].push_back(rev);
      if (!req.has_request_txn()) return;
      for (const RequestOp& o :
           success ? req.request_txn().success() : req.request_txn().failure()) {
        if (o.has_request_put()) known_puts_[o.request_put().key()].push_back(rev);
      }
    };
    open_holes_before_.assign(max_rev_ + 2, 0);
    for (int64_t rev = 2; rev <= max_rev_; ++rev) {
      open_holes_before_[rev + 1] = open_holes_before_[rev];
      if (const HistoryOp* op = commit_at_[rev]) {
        const bool success =
            op->response.has_response_txn() && op->response.response_txn().succeeded();
        add_puts(op->call.request, success, rev);
        if (success) succeeded_txn_at_[rev] = &op->call.request.request_txn();
      } else if (const int64_t u = pinned_at_[rev]; u >= 0) {
        // The branch holding the value a read saw is the one that ran.
        const RequestOp& req = unknown_[u]->call.request;
        bool success = false;
        if (req.has_request_txn()) {
          for (const RequestOp& o : req.request_txn().success()) {
            success =
                success || (o.has_request_put() && o.request_put().value() == pinned_value_[u]);
          }
        }
        add_puts(req, success, rev);
        if (success) succeeded_txn_at_[rev] = &req.request_txn();
      } else {
        ++open_holes_before_[rev + 1];
      }
    }
  }

  // A txn whose success branch committed at R found its compares true at R - 1: a key it
  // compared mod_revision == m > 0 was unchanged over [m + 1, R - 1], one compared == 0
  // was absent at R - 1. Known before the replay gets there, these keep a wrong placement
  // in a hole below R from being carried through many holes.
  void IndexCompares() {
    for (const auto& [rev, txn] : succeeded_txn_at_) {
      for (const etcdserverpb::Compare& c : txn->compare()) {
        if (c.target() != etcdserverpb::Compare::MOD ||
            c.result() != etcdserverpb::Compare::EQUAL || !c.range_end().empty()) {
          continue;
        }
        if (c.mod_revision() == 0) {
          absent_at_[c.key()].push_back(rev - 1);
        } else if (c.mod_revision() + 1 <= rev - 1) {
          unchanged_[c.key()].emplace_back(c.mod_revision() + 1, rev - 1);
        }
      }
    }
  }

  // No acknowledged or pinned commit explains `rev`: some unknown op must have made it.
  bool SearchHole(int64_t rev) {
    // Requests are mostly sequenced in the order they were sent, so the op that made this
    // hole was most likely invoked just after the one placed below it: try those first, in
    // invocation order, then the earlier ones, latest first.
    const int64_t below_us = rev > 2 ? placed_invoke_us_[rev - 1] : 0;
    std::vector<std::pair<int64_t, size_t>> candidates;  // (rank key, index in unknown_)
    for (size_t u = 0; u < unknown_.size(); ++u) {
      if (pinned_rev_[u] != 0 || used_[u] || unknown_[u]->invoke_us > bound_[rev]) continue;
      if (fixed_rev_[u] != 0) {
        // An acknowledged revoke answered at this very revision most likely made it.
        if (fixed_rev_[u] == rev) candidates.emplace_back(-1, u);
        continue;
      }
      const int64_t t = expected_us_[u];
      candidates.emplace_back(t >= below_us ? t - below_us : kNeverUs / 2 + (below_us - t), u);
    }
    std::sort(candidates.begin(), candidates.end());
    // Candidates are unpinned: nobody saw the values they write. Two that differ only in
    // those values are interchangeable here and in every later hole (a candidate feasible now
    // stays feasible), so each effect is tried once.
    std::set<std::string> effects_tried;
    if (options_.oracle_only) {
      // Testing the checker itself: only what the server really committed here, when it
      // answered at all (a batch that survived a crash unanswered has no oracle).
      std::vector<std::pair<int64_t, size_t>> oracle;
      for (const auto& c : candidates) {
        const HistoryOp& op = *unknown_[c.second];
        if (op.server_changed && op.server_revision == rev) oracle.push_back(c);
      }
      if (!oracle.empty()) candidates = std::move(oracle);
    }
    for (const auto& [distance, u] : candidates) {
      if (!effects_tried.insert(UnknownEffectSignature(*unknown_[u], compared_values_)).second) {
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
  std::map<std::string, std::vector<int64_t>> known_puts_;        // by key, ascending
  std::map<int64_t, std::set<std::string>> created_at_;  // revision -> keys seen created there
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> unchanged_;
  std::map<std::string, std::vector<int64_t>> absent_at_;
  // Revision -> the txn whose success branch committed there (acknowledged or pinned).
  std::map<int64_t, const etcdserverpb::TxnRequest*> succeeded_txn_at_;
  std::vector<std::string> observed_keys_;  // keys of observed_ and absent_at_
  std::map<int64_t, std::vector<std::pair<std::string, std::string>>> deletes_;  // by revision
  std::vector<int64_t> open_holes_before_;  // [r]: holes below r no commit is known for
  KvModel model_;
  std::vector<WatchView> views_;
  std::vector<std::vector<size_t>> watching_at_;  // by revision: views vouching for it
  int64_t max_rev_ = 1;
  std::vector<const HistoryOp*> commit_at_;              // by revision
  std::vector<std::vector<const HistoryOp*>> reads_at_;  // by header revision
  std::vector<int64_t> bound_;                           // by revision
  std::vector<const HistoryOp*> unknown_;  // unknown mutations, then the lease deleters
  std::vector<int64_t> fixed_rev_;         // index in unknown_ -> its only revision (0: any)
  std::vector<int64_t> expected_us_;       // index in unknown_ -> when it likely happened
  std::vector<HistoryOp> synthetic_;       // the deleters no request stands for
  std::map<const HistoryOp*, int64_t> revoke_slot_;  // acknowledged revoke -> index in unknown_
  std::vector<int64_t> pinned_at_;                       // revision -> index in unknown_
  std::vector<int64_t> pinned_rev_;                      // index in unknown_ -> revision
  std::vector<std::string> pinned_value_;                // index in unknown_ -> value seen
  std::vector<int64_t> placed_invoke_us_;  // by revision: invocation of the op placed there
  std::set<std::string> compared_values_;  // values some VALUE compare names
  std::vector<bool> used_;                 // index in unknown_
  int64_t steps_ = 0;
  bool exhausted_ = false;
  int64_t deepest_rev_ = -1;
  std::string deepest_why_ = "no linearization";
  const char* deepest_checker_ = "linearizability";
};


}  // namespace

CheckResult CheckLinearizability(const History& history, const CheckOptions& options) {
  return RevisionReplay(history, options).Run();
}

}  // namespace geoetcd::sim
