#include "sim/wgl.h"

#include <algorithm>
#include <unordered_set>

#include "core/check.h"
#include "core/random.h"

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

  Random zobrist_random(0x77676c'5a6f62ULL);
  std::vector<uint64_t> zobrist_a(n);
  std::vector<uint64_t> zobrist_b(n);
  for (size_t i = 0; i < n; ++i) {
    zobrist_a[i] = zobrist_random.Next();
    zobrist_b[i] = zobrist_random.Next();
  }

  std::unordered_set<Fingerprint, FingerprintHash> visited;
  std::vector<Frame> stack;
  std::vector<uint64_t> next_states;
  uint64_t set_a = 0;
  uint64_t set_b = 0;
  uint64_t state = initial_state;
  Entry* entry = head.next;
  size_t alternative_start = 0;
  size_t deepest_backtrack = 0;

  while (head.next != nullptr) {
    if (++result.steps > steps_max) {
      result.verdict = WglVerdict::kBudgetExhausted;
      return result;
    }
    if (!entry->is_return) {
      next_states.clear();
      step(entry->op, state, &next_states);
      bool placed = false;
      for (size_t alt = alternative_start; alt < next_states.size(); ++alt) {
        const uint64_t a = set_a ^ zobrist_a[entry->op];
        const uint64_t b = set_b ^ zobrist_b[entry->op];
        const Fingerprint fp{a ^ Mix(next_states[alt]), b ^ Mix(next_states[alt] + 0x9e37)};
        if (!visited.insert(fp).second) continue;
        stack.push_back({entry, state, alt});
        set_a = a;
        set_b = b;
        state = next_states[alt];
        Lift(entry);
        result.linearized_max = std::max(result.linearized_max, stack.size());
        entry = head.next;
        placed = true;
        break;
      }
      alternative_start = 0;
      if (!placed) entry = entry->next;
      continue;
    }
    // A return whose call is still unplaced: undo the last placement and try the next
    // alternative (or the next call).
    if (stack.size() >= deepest_backtrack) {
      deepest_backtrack = stack.size();
      result.stuck_op = entry->op;
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
    entry = frame.call;
    alternative_start = frame.alternative + 1;
  }
  return result;
}

}  // namespace geoetcd::sim
