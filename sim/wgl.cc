#include "sim/wgl.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/check.h"
#include "core/random.h"
#include "sim/history.h"

namespace geoetcd::sim {
namespace {

struct Entry {
  size_t op = 0;
  bool is_return = false;
  Entry* prev = nullptr;
  Entry* next = nullptr;
  Entry* match = nullptr;  // a call's return entry
};

// A visited (linearized set, state): two independent 64-bit Zobrist fingerprints of the
// set, each mixed with the state. A false "visited" would need both to collide.
struct Fingerprint {
  uint64_t a;
  uint64_t b;
  bool operator==(const Fingerprint& o) const { return a == o.a && b == o.b; }
};
struct FingerprintHash {
  size_t operator()(const Fingerprint& f) const { return static_cast<size_t>(f.a ^ (f.b >> 7)); }
};

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

void Lift(Entry* call) {
  call->prev->next = call->next;
  if (call->next != nullptr) call->next->prev = call->prev;
  Entry* ret = call->match;
  ret->prev->next = ret->next;
  if (ret->next != nullptr) ret->next->prev = ret->prev;
}

void Unlift(Entry* call) {
  Entry* ret = call->match;
  ret->prev->next = ret;
  if (ret->next != nullptr) ret->next->prev = ret;
  call->prev->next = call;
  if (call->next != nullptr) call->next->prev = call;
}

struct Frame {
  Entry* call;
  uint64_t state_before;
  size_t candidate;  // its index among the configuration's candidates
  size_t alternative;
};

}  // namespace

WglResult CheckWgl(const std::vector<WglOp>& ops, uint64_t initial_state, const WglStep& step,
                   int64_t steps_max) {
  WglResult result;
  const size_t n = ops.size();
  if (n == 0) return result;

  // Entries in time order; at equal times calls come first, so touching ops count as
  // concurrent (the permissive reading: it never invents a violation).
  std::vector<Entry> entries(2 * n);
  std::vector<Entry*> order;
  order.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    CHECK(ops[i].complete_us >= ops[i].invoke_us);
    entries[2 * i] = Entry{i, false, nullptr, nullptr, &entries[2 * i + 1]};
    entries[2 * i + 1] = Entry{i, true, nullptr, nullptr, nullptr};
    order.push_back(&entries[2 * i]);
    order.push_back(&entries[2 * i + 1]);
  }
  auto time_of = [&ops](const Entry* e) {
    return e->is_return ? ops[e->op].complete_us : ops[e->op].invoke_us;
  };
  std::sort(order.begin(), order.end(), [&](const Entry* x, const Entry* y) {
    const int64_t tx = time_of(x);
    const int64_t ty = time_of(y);
    if (tx != ty) return tx < ty;
    if (x->is_return != y->is_return) return !x->is_return;
    return x->op < y->op;
  });
  Entry head;
  Entry* prev = &head;
  for (Entry* e : order) {
    prev->next = e;
    e->prev = prev;
    prev = e;
  }

  // Each op's rank in its symmetry class (by invocation, then index), and how many of each
  // class are placed: an op is placed only when every one ranked before it is.
  std::vector<int32_t> rank(n, 0);
  std::vector<int32_t> placed_in_class;
  {
    std::vector<size_t> by_invoke;
    for (size_t i = 0; i < n; ++i) {
      if (ops[i].symmetry_class < 0) continue;
      CHECK(ops[i].complete_us == kNeverUs);
      by_invoke.push_back(i);
      placed_in_class.resize(
          std::max(placed_in_class.size(), static_cast<size_t>(ops[i].symmetry_class) + 1), 0);
    }
    std::sort(by_invoke.begin(), by_invoke.end(), [&ops](size_t x, size_t y) {
      return ops[x].invoke_us != ops[y].invoke_us ? ops[x].invoke_us < ops[y].invoke_us : x < y;
    });
    std::vector<int32_t> next_rank(placed_in_class.size(), 0);
    for (size_t i : by_invoke) rank[i] = next_rank[ops[i].symmetry_class]++;
  }
  auto in_turn = [&](size_t op) {
    const int32_t c = ops[op].symmetry_class;
    return c < 0 || placed_in_class[c] == rank[op];
  };

  Random zobrist_random(0x77676c'5a6f62ULL);
  std::vector<uint64_t> zobrist_a(n);
  std::vector<uint64_t> zobrist_b(n);
  for (size_t i = 0; i < n; ++i) {
    zobrist_a[i] = zobrist_random.Next();
    zobrist_b[i] = zobrist_random.Next();
  }

  std::unordered_set<Fingerprint, FingerprintHash> visited;
  // Dominance: of two configurations with the same returning ops placed and the same
  // state, the one that used no more ops of any symmetry class has every option the other
  // has (the unused ones of a class are the later-invoked ones, and those never return).
  // So a configuration is skipped when one visited before dominates it: that one failed,
  // or it is on the current path, which the run rule below keeps from coming back to the
  // same state without a returning op placed. Kept for runs whose never-returning ops all
  // have a class, within a memory bound.
  static constexpr size_t kDominanceCountsMax = 8'000'000;  // 16 MB of counts
  bool dominance = true;
  for (const WglOp& op : ops) {
    dominance = dominance && (op.complete_us != kNeverUs || op.symmetry_class >= 0);
  }
  std::unordered_map<Fingerprint, std::vector<std::vector<uint16_t>>, FingerprintHash> used_by;
  size_t dominance_counts = 0;
  uint64_t returning_a = 0;  // fingerprints of the placed returning ops
  uint64_t returning_b = 0;
  std::vector<Frame> stack;
  std::vector<uint64_t> next_states;
  uint64_t set_a = 0;
  uint64_t set_b = 0;
  uint64_t state = initial_state;
  size_t deepest_backtrack = 0;

  // The calls that may be placed next: those before the first return still listed (its
  // call must be placed before anything after it). Ops that return come first, ops that
  // never do last: an unknown outcome is used only where the returning ops cannot go on
  // without it, which finds a linearization of a correct history without wandering through
  // the ways to sprinkle maybe-applied ops. The order only steers the search; the memo
  // keeps it complete.
  std::vector<Entry*> candidates;
  std::vector<Entry*> deferred;
  Entry* blocking = nullptr;  // the first return still listed
  auto collect = [&] {
    candidates.clear();
    deferred.clear();
    Entry* e = head.next;
    for (; e != nullptr && !e->is_return; e = e->next) {
      if (ops[e->op].complete_us != kNeverUs) {
        candidates.push_back(e);
      } else if (in_turn(e->op)) {
        deferred.push_back(e);
      }
    }
    blocking = e;
    candidates.insert(candidates.end(), deferred.begin(), deferred.end());
  };

  // A run: ops that never return, placed one after another with no returning op between.
  // Placing one more is skipped (while returning ops remain) when the run would be
  // redundant: when it comes back to a state the run already passed through (the ops of
  // that cycle change nothing), or when the new op alone leads from the run's first state
  // to where the run now leads (the ops before it in the run are then for nothing). Either
  // way the ops left out could as well go last, after every returning op, where nobody sees
  // them: an op that never returns can be applied in every state (see wgl.h). The new op
  // could have been placed at the run's start, since no return was passed in between.
  // Without this, maybe-applied ops that undo each other (a write nobody read and a
  // delete) multiply the configurations without end.
  std::vector<uint64_t> run_states;
  auto RedundantInRun = [&](size_t op, uint64_t next) {
    if (next == state) return true;
    auto f = stack.rbegin();
    for (; f != stack.rend() && ops[f->call->op].complete_us == kNeverUs; ++f) {
      if (f->state_before == next) return true;
    }
    if (f == stack.rbegin()) return false;  // the run is empty
    const uint64_t run_start = std::prev(f)->state_before;
    run_states.clear();
    step(op, run_start, &run_states);
    return std::find(run_states.begin(), run_states.end(), next) != run_states.end();
  };
  size_t returning_unplaced = 0;
  for (const WglOp& op : ops) returning_unplaced += op.complete_us != kNeverUs ? 1 : 0;
  // Whether placing `op` to reach `next` leads to a configuration no visited one
  // dominates; if so, records it.
  std::vector<uint16_t> counts;
  auto DominanceAllows = [&](size_t op, uint64_t next) {
    const bool returns = ops[op].complete_us != kNeverUs;
    const uint64_t ra = returning_a ^ (returns ? zobrist_a[op] : 0);
    const uint64_t rb = returning_b ^ (returns ? zobrist_b[op] : 0);
    const Fingerprint key{ra ^ Mix(next), rb ^ Mix(next + 0x9e37)};
    counts.assign(placed_in_class.begin(), placed_in_class.end());
    if (ops[op].symmetry_class >= 0) ++counts[ops[op].symmetry_class];
    auto it = used_by.find(key);
    if (it != used_by.end() && returning_unplaced > (returns ? 1 : 0)) {
      for (const std::vector<uint16_t>& seen : it->second) {
        bool dominates = true;
        for (size_t c = 0; c < counts.size() && dominates; ++c) dominates = seen[c] <= counts[c];
        if (dominates) return false;
      }
    }
    if (dominance_counts + counts.size() <= kDominanceCountsMax) {
      used_by[key].push_back(counts);
      dominance_counts += counts.size() + 1;
    }
    return true;
  };
  collect();
  size_t candidate_start = 0;
  size_t alternative_start = 0;
  while (head.next != nullptr) {
    bool placed = false;
    for (size_t c = candidate_start; c < candidates.size() && !placed; ++c) {
      if (++result.steps > steps_max) {
        result.verdict = WglVerdict::kBudgetExhausted;
        return result;
      }
      Entry* entry = candidates[c];
      next_states.clear();
      step(entry->op, state, &next_states);
      for (size_t alt = c == candidate_start ? alternative_start : 0; alt < next_states.size();
           ++alt) {
        if (ops[entry->op].complete_us == kNeverUs && returning_unplaced > 0 &&
            RedundantInRun(entry->op, next_states[alt])) {
          continue;
        }
        const uint64_t a = set_a ^ zobrist_a[entry->op];
        const uint64_t b = set_b ^ zobrist_b[entry->op];
        const Fingerprint fp{a ^ Mix(next_states[alt]), b ^ Mix(next_states[alt] + 0x9e37)};
        if (visited.count(fp) != 0) continue;
        if (dominance && !DominanceAllows(entry->op, next_states[alt])) continue;
        visited.insert(fp);
        stack.push_back({entry, state, c, alt});
        set_a = a;
        set_b = b;
        state = next_states[alt];
        Lift(entry);
        if (ops[entry->op].symmetry_class >= 0) ++placed_in_class[ops[entry->op].symmetry_class];
        if (ops[entry->op].complete_us != kNeverUs) {
          --returning_unplaced;
          returning_a ^= zobrist_a[entry->op];
          returning_b ^= zobrist_b[entry->op];
        }
        result.linearized_max = std::max(result.linearized_max, stack.size());
        placed = true;
        break;
      }
    }
    if (placed) {
      collect();
      candidate_start = 0;
      alternative_start = 0;
      continue;
    }
    // Nothing can be placed before the blocking return: undo the last placement and try
    // its next alternative (or the next candidate).
    if (blocking != nullptr && stack.size() >= deepest_backtrack) {
      deepest_backtrack = stack.size();
      result.stuck_op = blocking->op;
    }
    if (stack.empty()) {
      result.verdict = WglVerdict::kNotLinearizable;
      return result;
    }
    const Frame frame = stack.back();
    stack.pop_back();
    set_a ^= zobrist_a[frame.call->op];
    set_b ^= zobrist_b[frame.call->op];
    state = frame.state_before;
    Unlift(frame.call);
    if (ops[frame.call->op].complete_us != kNeverUs) {
      ++returning_unplaced;
      returning_a ^= zobrist_a[frame.call->op];
      returning_b ^= zobrist_b[frame.call->op];
    }
    if (ops[frame.call->op].symmetry_class >= 0) {
      --placed_in_class[ops[frame.call->op].symmetry_class];
    }
    // The restored configuration lists the same candidates as when the frame was pushed.
    collect();
    candidate_start = frame.candidate;
    alternative_start = frame.alternative + 1;
  }
  return result;
}

}  // namespace geoetcd::sim
