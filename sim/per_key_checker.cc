// The "wgl" checker: each operation projected onto each key it touches, as an operation on
// a register holding that key's value (or nothing), then a WGL search per key. It ignores
// revisions entirely, so it stands apart from the revision-ordered checkers.
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/checkers.h"
#include "sim/lease_view.h"
#include "sim/wgl.h"

namespace geoetcd::sim {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

// Register states are value ids: 0 is "absent", written values are numbered from 1.
constexpr int32_t kAbsent = 0;
constexpr int32_t kAny = -1;          // an expectation nobody observed
constexpr int32_t kNoSuchValue = -2;  // a value no write ever wrote
// Every value of a key that no read expects and no compare names: such values are
// indistinguishable to every operation on the key, so they share one state.
constexpr int32_t kUnobserved = std::numeric_limits<int32_t>::max();

struct Micro {
  enum Kind : uint8_t { kPut, kDelete, kRead, kLeaseDelete };
  Kind kind;
  // kPut: the value id; kRead: the expected id or kAny; kDelete: expected deleted (0 or 1)
  // or kAny; kLeaseDelete: the lease (its number, from 1), whose deletion deletes the key
  // if the key's value was written with that lease.
  int32_t arg;
  int32_t lease = 0;  // kPut: the number of the lease the value is written with (0: none)
};

// The lease (number) each value of a key was written with; values are unique per write.
using LeaseOfValue = std::unordered_map<int32_t, int32_t>;

// A compare's meaning for this key's register, when it can be told from the value alone.
struct Cond {
  enum Kind : uint8_t { kEq, kNe, kIsAbsent, kIsPresent, kPresentNe, kUnknown };
  Kind kind;
  int32_t value = 0;
};

struct KeyOp {
  const HistoryOp* op = nullptr;  // what it projects (a lease deleter's may be synthetic)
  // Every compare of the txn is on this key and can be evaluated: the state picks the
  // branch. Otherwise other keys have a say.
  bool decides = true;
  std::vector<Cond> conds;
  int8_t branch = 1;  // -1 unknown, 0 failure, 1 success (plain requests: 1)
  std::vector<Micro> ops[2];
};

// -1 false, 0 unknown, 1 true.
int Eval(const Cond& c, int32_t s) {
  switch (c.kind) {
    case Cond::kEq:
      return s == c.value ? 1 : -1;
    case Cond::kNe:
      return s != c.value ? 1 : -1;
    case Cond::kIsAbsent:
      return s == kAbsent ? 1 : -1;
    case Cond::kIsPresent:
      return s != kAbsent ? 1 : -1;
    case Cond::kPresentNe:
      return s != kAbsent && s != c.value ? 1 : -1;
    case Cond::kUnknown:
      return 0;
  }
  return 0;
}

bool Run(const std::vector<Micro>& micros, const LeaseOfValue& lease_of, int32_t* s) {
  for (const Micro& m : micros) {
    switch (m.kind) {
      case Micro::kPut:
        *s = m.arg;
        break;
      case Micro::kLeaseDelete:
        if (*s != kAbsent) {
          auto it = lease_of.find(*s);
          if (it != lease_of.end() && it->second == m.arg) *s = kAbsent;
        }
        break;
      case Micro::kDelete:
        if (m.arg != kAny && (*s != kAbsent) != (m.arg == 1)) return false;
        *s = kAbsent;
        break;
      case Micro::kRead:
        if (m.arg != kAny && *s != m.arg) return false;
        break;
    }
  }
  return true;
}

void Step(const KeyOp& op, const LeaseOfValue& lease_of, int32_t s, std::vector<uint64_t>* next) {
  int eval = 1;
  for (const Cond& c : op.conds) {
    const int e = Eval(c, s);
    if (e < 0) {
      eval = -1;
      break;
    }
    if (e == 0) eval = 0;
  }
  int branches[2];
  int n = 0;
  if (op.branch >= 0) {
    if (op.decides && (eval == 1) != (op.branch == 1)) return;
    if (op.branch == 1 && eval < 0) return;  // success needs every compare to hold
    branches[n++] = op.branch;
  } else if (op.decides) {
    branches[n++] = eval == 1 ? 1 : 0;
  } else {
    branches[n++] = 0;
    if (eval >= 0) branches[n++] = 1;
  }
  for (int i = 0; i < n; ++i) {
    int32_t t = s;
    if (!Run(op.ops[branches[i]], lease_of, &t)) continue;
    const uint64_t state = static_cast<uint32_t>(t);
    if (next->empty() || next->back() != state) next->push_back(state);
  }
}

// Keys are numbered in byte order, so a key range is a contiguous run of ids.
class Projector {
 public:
  explicit Projector(const History& h) : h_(h) {
    std::vector<std::string> keys;
    for (const HistoryOp& op : h.ops) {
      if (op.call.kind == OpKind::kCompact) continue;
      CollectKeys(op.call.request, &keys);
      if (op.outcome == OpOutcome::kOk)
        ForEachObservedKv(op.response, [&](const mvccpb::KeyValue& kv) { keys.push_back(kv.key()); });
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    keys_ = std::move(keys);
    for (const HistoryOp& op : h.ops) {
      if (op.call.kind != OpKind::kCompact && !op.is_lease() && op.outcome == OpOutcome::kOk) {
        Observe(op);
      }
    }
  }

  const std::string& key(size_t id) const { return keys_[id]; }

  // Projects every operation, and each lease deleter onto every key a put with its lease
  // wrote (there it deletes the key if the key's value carries the lease, and does nothing
  // otherwise); returns the operation list of each key id.
  std::vector<std::vector<KeyOp>> Project(const std::vector<LeaseDeleter>& deleters) {
    std::vector<std::vector<KeyOp>> per_key(keys_.size());
    std::map<int32_t, KeyOp> touched;
    for (const HistoryOp& op : h_.ops) {
      if (op.call.kind == OpKind::kCompact || op.is_lease() || op.outcome == OpOutcome::kFail) {
        continue;
      }
      if (op.outcome == OpOutcome::kUnknown && !op.is_mutation()) continue;
      touched.clear();
      ProjectOne(op, &touched);
      for (auto& [key, kop] : touched) {
        kop.op = &op;
        per_key[key].push_back(std::move(kop));
      }
    }
    std::map<int64_t, std::set<int32_t>> lease_keys;
    for (const HistoryOp& op : h_.ops) {
      if (op.outcome != OpOutcome::kFail && op.call.request.has_request_put() &&
          op.call.request.request_put().lease() != 0) {
        lease_keys[op.call.request.request_put().lease()].insert(
            IdOfKey(op.call.request.request_put().key()));
      }
    }
    for (const LeaseDeleter& d : deleters) {
      for (int32_t key : lease_keys[d.lease]) {
        KeyOp kop;
        kop.op = d.op;
        kop.ops[1].push_back({Micro::kLeaseDelete, LeaseNumber(d.lease)});
        per_key[key].push_back(std::move(kop));
      }
    }
    return per_key;
  }

 private:
  using Touched = std::map<int32_t, KeyOp>;

  static void CollectKeys(const RequestOp& op, std::vector<std::string>* keys) {
    if (op.has_request_put()) keys->push_back(op.request_put().key());
    if (op.has_request_txn()) {
      for (const auto& o : op.request_txn().success()) CollectKeys(o, keys);
      for (const auto& o : op.request_txn().failure()) CollectKeys(o, keys);
    }
  }

  // [first, last) ids of the keys in etcd's (key, range_end).
  std::pair<int32_t, int32_t> IdsIn(const std::string& key, const std::string& end) const {
    const auto lo = std::lower_bound(keys_.begin(), keys_.end(), key);
    if (end.empty()) {
      if (lo == keys_.end() || *lo != key) return {0, 0};
      return {static_cast<int32_t>(lo - keys_.begin()),
              static_cast<int32_t>(lo - keys_.begin()) + 1};
    }
    const bool unbounded = end.size() == 1 && end[0] == '\0';
    const auto hi = unbounded ? keys_.end() : std::lower_bound(lo, keys_.end(), end);
    return {static_cast<int32_t>(lo - keys_.begin()), static_cast<int32_t>(hi - keys_.begin())};
  }
  // The id of a key that is in the universe (every put or observed key is).
  int32_t IdOfKey(const std::string& key) const {
    return static_cast<int32_t>(std::lower_bound(keys_.begin(), keys_.end(), key) - keys_.begin());
  }

  // Leases are numbered from 1 in order of appearance; 0 is "no lease".
  int32_t LeaseNumber(int64_t lease) {
    if (lease == 0) return 0;
    return lease_numbers_.try_emplace(lease, static_cast<int32_t>(lease_numbers_.size()) + 1)
        .first->second;
  }

  int32_t IdOf(const std::string& value) {
    auto [it, inserted] = ids_.try_emplace(value, static_cast<int32_t>(ids_.size()) + 1);
    return it->second;
  }
  int32_t KnownIdOf(const std::string& value) const {
    auto it = ids_.find(value);
    return it == ids_.end() ? kNoSuchValue : it->second;
  }
  static uint64_t ModKey(int32_t key, int64_t mod) {
    return (static_cast<uint64_t>(key) << 40) ^ static_cast<uint64_t>(mod);
  }

  void ObserveKv(const mvccpb::KeyValue& kv) {
    mods_.try_emplace(ModKey(IdOfKey(kv.key()), kv.mod_revision()), IdOf(kv.value()));
  }

  void ObserveResponse(const RequestOp& req, const ResponseOp& r, int64_t rev) {
    ForEachObservedKv(r, [this](const mvccpb::KeyValue& kv) { ObserveKv(kv); });
    if (r.has_response_put() && req.has_request_put()) {
      mods_.try_emplace(ModKey(IdOfKey(req.request_put().key()), rev),
                        IdOf(req.request_put().value()));
    }
  }

  // Learns every value and which value each (key, mod_revision) holds.
  void Observe(const HistoryOp& op) {
    const int64_t rev = op.header_revision();
    const RequestOp& req = op.call.request;
    if (!req.has_request_txn()) return ObserveResponse(req, op.response, rev);
    const auto& t = req.request_txn();
    const auto& branch = op.response.response_txn().succeeded() ? t.success() : t.failure();
    const auto& resps = op.response.response_txn().responses();
    for (int i = 0; i < branch.size() && i < resps.size(); ++i) {
      ObserveResponse(branch.Get(i), resps.Get(i), rev);
    }
  }

  Cond CondOf(const Compare& c) const {
    const bool zero = [&] {
      switch (c.target()) {
        case Compare::VERSION:
          return c.version() == 0;
        case Compare::CREATE:
          return c.create_revision() == 0;
        case Compare::MOD:
          return c.mod_revision() == 0;
        default:
          return false;
      }
    }();
    if (c.target() == Compare::VALUE) {
      const int32_t id = KnownIdOf(c.value());
      if (c.result() == Compare::EQUAL) return {Cond::kEq, id};
      if (c.result() == Compare::NOT_EQUAL) return {Cond::kPresentNe, id};
      return {Cond::kUnknown};
    }
    if (zero) {
      // A missing key compares as 0; a present one has version, create and mod >= 1.
      if (c.result() == Compare::EQUAL) return {Cond::kIsAbsent};
      if (c.result() == Compare::NOT_EQUAL || c.result() == Compare::GREATER) {
        return {Cond::kIsPresent};
      }
      return {Cond::kUnknown};
    }
    if (c.target() == Compare::MOD &&
        (c.result() == Compare::EQUAL || c.result() == Compare::NOT_EQUAL)) {
      auto it = mods_.find(ModKey(IdOfKey(c.key()), c.mod_revision()));
      if (it == mods_.end()) return {Cond::kUnknown};
      return {c.result() == Compare::EQUAL ? Cond::kEq : Cond::kNe, it->second};
    }
    return {Cond::kUnknown};
  }

  // Appends the micro-ops of one request (with its response when known) to branch `b`.
  void AddOne(const RequestOp& o, const ResponseOp* r, int b, Touched* touched) {
    if (o.has_request_range()) {
      const auto& req = o.request_range();
      if (r == nullptr || req.revision() != 0) return;  // tells nothing about "now"
      const auto& resp = r->response_range();
      auto [first, last] = IdsIn(req.key(), req.range_end());
      // With `more`, keys past the last returned one were not reported.
      if (resp.more()) {
        last = resp.kvs().empty() ? first : IdOfKey(resp.kvs().rbegin()->key()) + 1;
      }
      int kv = 0;
      for (int32_t k = first; k < last; ++k) {
        int32_t expect = kAbsent;
        if (kv < resp.kvs_size() && resp.kvs(kv).key() == keys_[k]) {
          expect = KnownIdOf(resp.kvs(kv++).value());
        }
        (*touched)[k].ops[b].push_back({Micro::kRead, expect});
      }
    } else if (o.has_request_put()) {
      const auto& req = o.request_put();
      auto& micros = (*touched)[IdOfKey(req.key())].ops[b];
      if (r != nullptr && req.prev_kv()) {
        const auto& resp = r->response_put();
        micros.push_back(
            {Micro::kRead, resp.has_prev_kv() ? KnownIdOf(resp.prev_kv().value()) : kAbsent});
      }
      micros.push_back({Micro::kPut, KnownIdOf(req.value()), LeaseNumber(req.lease())});
    } else if (o.has_request_delete_range()) {
      const auto& req = o.request_delete_range();
      const auto [first, last] = IdsIn(req.key(), req.range_end());
      int prev = 0;
      for (int32_t k = first; k < last; ++k) {
        int32_t expect = kAny;
        auto& micros = (*touched)[k].ops[b];
        if (r != nullptr) {
          const auto& resp = r->response_delete_range();
          if (req.prev_kv()) {
            const bool was = prev < resp.prev_kvs_size() && resp.prev_kvs(prev).key() == keys_[k];
            if (was) micros.push_back({Micro::kRead, KnownIdOf(resp.prev_kvs(prev++).value())});
            expect = was ? 1 : 0;
          } else if (req.range_end().empty() || resp.deleted() == 0) {
            expect = resp.deleted() > 0 ? 1 : 0;
          }
        }
        micros.push_back({Micro::kDelete, expect});
      }
    }
  }

  void ProjectOne(const HistoryOp& op, Touched* touched) {
    const RequestOp& req = op.call.request;
    const bool known = op.outcome == OpOutcome::kOk;
    if (!req.has_request_txn()) return AddOne(req, known ? &op.response : nullptr, 1, touched);
    const auto& t = req.request_txn();
    const int8_t branch = known ? (op.response.response_txn().succeeded() ? 1 : 0) : -1;
    if (known) {
      const auto& ops = branch == 1 ? t.success() : t.failure();
      const auto& resps = op.response.response_txn().responses();
      for (int i = 0; i < ops.size(); ++i) {
        AddOne(ops.Get(i), i < resps.size() ? &resps.Get(i) : nullptr, branch, touched);
      }
    } else {
      for (const auto& o : t.success()) AddOne(o, nullptr, 1, touched);
      for (const auto& o : t.failure()) AddOne(o, nullptr, 0, touched);
    }
    // Single-key compares constrain their key; a key decides the branch alone only when
    // every compare is on it and can be evaluated.
    std::map<int32_t, std::vector<Cond>> conds;
    bool other_compares = false;
    for (const Compare& c : t.compare()) {
      const auto [first, last] = IdsIn(c.key(), c.range_end());
      if (!c.range_end().empty() || first == last) {
        // A range compare, or one on a key nobody wrote: no single register to judge it by.
        other_compares = true;
        continue;
      }
      conds[first].push_back(CondOf(c));
    }
    for (const auto& [key, cs] : conds) (*touched)[key];  // a compared key is touched
    for (auto& [key, kop] : *touched) {
      kop.branch = branch;
      auto it = conds.find(key);
      kop.decides = !other_compares && conds.size() <= 1 && (conds.empty() || it != conds.end());
      if (it != conds.end()) kop.conds = it->second;
      for (const Cond& c : kop.conds) kop.decides = kop.decides && c.kind != Cond::kUnknown;
    }
  }

  const History& h_;
  std::vector<std::string> keys_;  // sorted: the key universe
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, int32_t> mods_;
  std::unordered_map<int64_t, int32_t> lease_numbers_;
};

}  // namespace

namespace {

// Writes of values nobody can tell apart (see kUnobserved; an acknowledged write's value
// has an id even when nobody read it, an unanswered one's is kNoSuchValue) become writes
// of kUnobserved:
// the states they lead to behave alike, so the search's memo merges them, and unknown
// operations that differ only in such values become interchangeable.
void MergeUnobservedValues(std::vector<KeyOp>* kops, LeaseOfValue* lease_of) {
  std::unordered_map<int32_t, bool> observed;
  for (const KeyOp& k : *kops) {
    for (const Cond& c : k.conds) observed[c.value] = true;
    for (const auto& micros : k.ops) {
      for (const Micro& m : micros) {
        if (m.kind == Micro::kRead) observed[m.arg] = true;
      }
    }
  }
  for (KeyOp& k : *kops) {
    for (auto& micros : k.ops) {
      for (Micro& m : micros) {
        if (m.kind != Micro::kPut) continue;
        // A lease deletion tells values with different leases apart.
        if (observed.count(m.arg) == 0) m.arg = kUnobserved - m.lease;
        if (m.lease != 0) (*lease_of)[m.arg] = m.lease;
      }
    }
  }
}

// What an operation does to the key's register, as text: equal signatures, equal steps.
std::string StepSignature(const KeyOp& k) {
  std::string sig = absl::StrCat(k.decides, ",", k.branch, "|");
  for (const Cond& c : k.conds) absl::StrAppend(&sig, static_cast<int>(c.kind), ":", c.value, ",");
  for (const auto& micros : k.ops) {
    absl::StrAppend(&sig, "|");
    for (const Micro& m : micros) {
      absl::StrAppend(&sig, static_cast<int>(m.kind), ":", m.arg, ":", m.lease, ",");
    }
  }
  return sig;
}

WglResult SearchKey(const std::vector<const KeyOp*>& kops, const LeaseOfValue& lease_of,
                    int64_t steps_max) {
  std::vector<WglOp> ops;
  ops.reserve(kops.size());
  std::unordered_map<std::string, int32_t> classes;  // of operations that never returned
  for (const KeyOp* k : kops) {
    const HistoryOp& op = *k->op;
    WglOp w{op.invoke_us, op.complete_us};
    if (op.complete_us == kNeverUs) {
      w.symmetry_class =
          classes.try_emplace(StepSignature(*k), static_cast<int32_t>(classes.size()))
              .first->second;
    }
    ops.push_back(w);
  }
  return CheckWgl(
      ops, kAbsent,
      [&kops, &lease_of](size_t i, uint64_t state, std::vector<uint64_t>* next) {
        Step(*kops[i], lease_of, static_cast<int32_t>(state), next);
      },
      steps_max);
}

// Leaving out operations of unknown outcome can only make a history harder to linearize
// (each could be put back last, where whatever it does is seen by nobody), so a
// linearization without some of them proves the whole history linearizable. Most unknown
// operations wrote values nobody read: all of those are left out first; then the deletes
// among them are kept (a read may have seen an absence only they explain), then also the
// guarded ones; only if all that fails does the search face every operation.
enum class Keep { kObserved, kDeletes, kDeletesAndGuarded };

std::vector<const KeyOp*> WithoutUnobservedUnknowns(const std::vector<KeyOp>& kops, Keep keep) {
  std::vector<bool> read_values;
  for (const KeyOp& k : kops) {
    for (const auto& micros : k.ops) {
      for (const Micro& m : micros) {
        if (m.kind != Micro::kRead || m.arg <= 0) continue;
        if (read_values.size() <= static_cast<size_t>(m.arg)) read_values.resize(m.arg + 1);
        read_values[m.arg] = true;
      }
    }
  }
  std::vector<const KeyOp*> kept;
  for (const KeyOp& k : kops) {
    bool matters = k.op->outcome != OpOutcome::kUnknown ||
                   (keep == Keep::kDeletesAndGuarded && !k.conds.empty());
    for (const auto& micros : k.ops) {
      for (const Micro& m : micros) {
        if (keep != Keep::kObserved &&
            (m.kind == Micro::kDelete || m.kind == Micro::kLeaseDelete)) {
          matters = true;
        }
        if (m.kind == Micro::kPut && m.arg > 0 && static_cast<size_t>(m.arg) < read_values.size() &&
            read_values[m.arg]) {
          matters = true;
        }
      }
    }
    if (matters) kept.push_back(&k);
  }
  return kept;
}

}  // namespace

CheckResult CheckPerKeyWgl(const History& history, const CheckOptions& options) {
  CheckResult result;
  Projector projector(history);
  std::vector<HistoryOp> synthetic;  // lease deleters no request stands for
  std::vector<std::vector<KeyOp>> per_key = projector.Project(
      LeaseDeleters(BuildLeaseViews(history), &synthetic));
  for (size_t key_id = 0; key_id < per_key.size(); ++key_id) {
    LeaseOfValue lease_of;
    MergeUnobservedValues(&per_key[key_id], &lease_of);
    const std::string& key = projector.key(key_id);
    bool linearizable = false;
    size_t tried = 0;  // operations in the last reduced try
    for (Keep keep : {Keep::kObserved, Keep::kDeletesAndGuarded}) {
      const std::vector<const KeyOp*> reduced =
          WithoutUnobservedUnknowns(per_key[key_id], keep);
      // Nothing left out, or nothing more kept than in the last try: nothing new to learn.
      if (linearizable || reduced.size() == per_key[key_id].size() || reduced.size() == tried) {
        continue;
      }
      tried = reduced.size();
      const int64_t budget =
          keep == Keep::kObserved ? options.wgl_steps_max / 8 : options.wgl_steps_max;
      linearizable = SearchKey(reduced, lease_of, budget).verdict == WglVerdict::kLinearizable;
    }
    if (linearizable) continue;
    std::vector<const KeyOp*> kops;
    for (const KeyOp& k : per_key[key_id]) kops.push_back(&k);
    const WglResult r = SearchKey(kops, lease_of, options.wgl_steps_max);
    if (r.verdict == WglVerdict::kBudgetExhausted) {
      result.notes.push_back(
          absl::StrCat("wgl: key ", key, " inconclusive after ", r.steps, " steps"));
    } else if (r.verdict == WglVerdict::kNotLinearizable) {
      return CheckResult::Violation(
          "wgl", absl::StrCat("key ", key, ": no linearization of its ", kops.size(),
                              " operations (", r.linearized_max, " placed at most); stuck at ",
                              FormatOp(*kops[r.stuck_op]->op)));
    }
  }
  return result;
}

}  // namespace geoetcd::sim
