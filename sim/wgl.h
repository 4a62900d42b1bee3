// A linearizability search: Wing & Gong's algorithm with Lowe's memoization, as porcupine
// implements it (a list of call/return entries, lifting linearized calls, backtracking on
// a return whose call cannot be placed, and a cache of visited (linearized set, state)).
//
// The model is a step function over 64-bit states. It may be nondeterministic: a step
// lists every state the op can lead to (none: the op cannot be linearized in that state),
// which is how an op of unknown outcome, or a projection of a multi-key txn onto one key,
// is expressed. An op that never returned has complete_us == kNeverUs: it may be placed
// anywhere after its invocation, including after every other op (not applied at all, when
// the model lets it be a no-op there). Such an op must be applicable in every state (the
// search relies on being able to move it last).
//
// Ops that never return are what makes the search explode (each may go anywhere after its
// invocation), so the search treats them apart, without giving up completeness: it tries
// them only after the returning ops at each point; interchangeable ones (a symmetry class)
// are used in invocation order; a run of them between two returning ops is never
// redundant (never comes back to a state it passed, never does what its last op alone
// does); and a configuration that used no fewer of every class than one already visited
// with the same returning ops and state is skipped (it has no option the other lacked).
#ifndef GEOETCD_SIM_WGL_H_
#define GEOETCD_SIM_WGL_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace geoetcd::sim {

struct WglOp {
  int64_t invoke_us = 0;
  int64_t complete_us = 0;
  // Ops of one class (>= 0) are interchangeable: they never return (complete_us ==
  // kNeverUs) and their steps are the same function of the state. The search then places
  // them only in invocation order: any linearization that places a later-invoked one while
  // an earlier one is still pending stays valid with the two swapped (the earlier one was
  // invoked before, and neither returns), so nothing is lost, and the 2^n subsets of a
  // class of n shrink to n + 1 prefixes.
  int32_t symmetry_class = -1;
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
