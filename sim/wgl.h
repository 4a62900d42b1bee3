// A linearizability search: Wing & Gong's algorithm with Lowe's memoization, as porcupine
// implements it (a list of call/return entries, lifting linearized calls, backtracking on
// a return whose call cannot be placed, and a cache of visited (linearized set, state)).
//
// The model is a step function over 64-bit states. It may be nondeterministic: a step
// lists every state the op can lead to (none: the op cannot be linearized in that state),
// which is how an op of unknown outcome, or a projection of a multi-key txn onto one key,
// is expressed. An op that never returned has complete_us == kNeverUs: it may be placed
// anywhere after its invocation, including after every other op (not applied at all, when
// the model lets it be a no-op there).
#ifndef GEOETCD_SIM_WGL_H_
#define GEOETCD_SIM_WGL_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace geoetcd::sim {

struct WglOp {
  int64_t invoke_us = 0;
  int64_t complete_us = 0;
};

// Appends to `next` every state `op` may lead to from `state`.
using WglStep = std::function<void(size_t op, uint64_t state, std::vector<uint64_t>* next)>;

enum class WglVerdict { kLinearizable, kNotLinearizable, kBudgetExhausted };

struct WglResult {
  WglVerdict verdict = WglVerdict::kLinearizable;
  int64_t steps = 0;
  // When not linearizable: the largest set of ops linearized at once and the op whose
  // return could not be explained then (for the report).
  size_t linearized_max = 0;
  size_t stuck_op = 0;
};

WglResult CheckWgl(const std::vector<WglOp>& ops, uint64_t initial_state, const WglStep& step,
                   int64_t steps_max);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_WGL_H_
