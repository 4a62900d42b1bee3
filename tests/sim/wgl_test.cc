// The WGL search on a register model: state = the value (0: unset).
#include "sim/wgl.h"

#include <cstdio>
#include <vector>

#include "gtest/gtest.h"
#include "sim/history.h"

namespace geoetcd::sim {
namespace {

struct RegisterOp {
  bool write;
  uint64_t value;  // written, or read
};

WglResult Check(const std::vector<WglOp>& ops, const std::vector<RegisterOp>& what,
                int64_t steps_max = 1'000'000) {
  return CheckWgl(
      ops, 0,
      [&what](size_t i, uint64_t state, std::vector<uint64_t>* next) {
        if (what[i].write) {
          next->push_back(what[i].value);
        } else if (what[i].value == state) {
          next->push_back(state);
        }
      },
      steps_max);
}

TEST(WglTest, SequentialHistories) {
  EXPECT_EQ(Check({{0, 1}, {2, 3}}, {{true, 5}, {false, 5}}).verdict, WglVerdict::kLinearizable);
  EXPECT_EQ(Check({{0, 1}, {2, 3}}, {{true, 5}, {false, 0}}).verdict, WglVerdict::kNotLinearizable);
}

TEST(WglTest, ConcurrentOperationsMayTakeEffectInEitherOrder) {
  // The read overlaps both writes and may see either of them (or neither).
  const std::vector<WglOp> ops = {{0, 10}, {0, 10}, {5, 20}};
  for (uint64_t seen : {0, 1, 2}) {
    EXPECT_EQ(Check(ops, {{true, 1}, {true, 2}, {false, seen}}).verdict, WglVerdict::kLinearizable)
        << seen;
  }
  EXPECT_EQ(Check(ops, {{true, 1}, {true, 2}, {false, 3}}).verdict, WglVerdict::kNotLinearizable);
}

TEST(WglTest, ReadsMustRespectRealTimeOrder) {
  // w(1) then w(2) both complete before two sequential reads; the reads can't go back.
  const std::vector<WglOp> ops = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  EXPECT_EQ(Check(ops, {{true, 1}, {true, 2}, {false, 2}, {false, 2}}).verdict,
            WglVerdict::kLinearizable);
  const WglResult r = Check(ops, {{true, 1}, {true, 2}, {false, 2}, {false, 1}});
  EXPECT_EQ(r.verdict, WglVerdict::kNotLinearizable);
  EXPECT_EQ(r.stuck_op, 3u);
}

TEST(WglTest, AnOperationWithoutAReturnMayHappenLateOrNever) {
  // The unknown write w(9) may be placed anywhere after its invocation.
  const std::vector<WglOp> ops = {{0, 1}, {2, kNeverUs}, {3, 4}, {5, 6}};
  EXPECT_EQ(Check(ops, {{true, 1}, {true, 9}, {false, 1}, {false, 9}}).verdict,
            WglVerdict::kLinearizable);
  EXPECT_EQ(Check(ops, {{true, 1}, {true, 9}, {false, 1}, {false, 1}}).verdict,
            WglVerdict::kLinearizable);
  // ...but not before it was invoked.
  const std::vector<WglOp> early = {{0, 1}, {10, kNeverUs}, {3, 4}};
  EXPECT_EQ(Check(early, {{true, 1}, {true, 9}, {false, 9}}).verdict, WglVerdict::kNotLinearizable);
}

TEST(WglTest, NondeterministicStepsAreExplored) {
  // Op 0 may leave the register at 1 or 2 (a txn whose branch depends on another key).
  const std::vector<WglOp> ops = {{0, 1}, {2, 3}};
  auto step = [](size_t i, uint64_t state, std::vector<uint64_t>* next) {
    if (i == 0) {
      next->push_back(1);
      next->push_back(2);
    } else if (state == 2) {
      next->push_back(state);  // the read saw 2
    }
  };
  EXPECT_EQ(CheckWgl(ops, 0, step, 1000).verdict, WglVerdict::kLinearizable);
}

TEST(WglTest, TheStepBudgetEndsTheSearchAsInconclusive) {
  std::vector<WglOp> ops;
  std::vector<RegisterOp> what;
  for (int i = 0; i < 20; ++i) {
    ops.push_back({0, 100});
    what.push_back({true, static_cast<uint64_t>(i + 1)});
  }
  ops.push_back({200, 300});
  what.push_back({false, 77});  // no write wrote 77: every order must be tried
  EXPECT_EQ(Check(ops, what, 1000).verdict, WglVerdict::kBudgetExhausted);
}

// A register with maybe-applied writes of a value nobody reads (junk, state 9) and
// maybe-applied deletes (state 0): the kind of history a run with many lost replies makes.
std::vector<uint64_t> JunkOrDelete(bool junk, uint64_t) { return {junk ? 9u : 0u}; }

TEST(WglTest, ManyMaybeAppliedOpsDoNotMultiplyTheSearch) {
  // 40 unknown junk writes and 40 unknown deletes, interleaved with writes and reads that
  // need a delete (an absence seen) between some of them.
  std::vector<WglOp> ops;
  std::vector<int> what;  // 0: unknown junk, 1: unknown delete, 2 + v: write v, -2 - v: read v
  for (int i = 0; i < 40; ++i) {
    ops.push_back({i * 10, kNeverUs, 0});
    what.push_back(0);
    ops.push_back({i * 10 + 1, kNeverUs, 1});
    what.push_back(1);
    ops.push_back({i * 10 + 2, i * 10 + 3});
    what.push_back(2 + i + 1);
    ops.push_back({i * 10 + 4, i * 10 + 5});
    what.push_back(i % 3 == 0 ? -2 : -2 - (i + 1));  // every third read sees the key absent
  }
  auto step = [&what](size_t i, uint64_t state, std::vector<uint64_t>* next) {
    const int w = what[i];
    if (w == 0 || w == 1) {
      *next = JunkOrDelete(w == 0, state);
    } else if (w >= 2) {
      next->push_back(static_cast<uint64_t>(w - 2));
    } else if (state == static_cast<uint64_t>(-2 - w)) {
      next->push_back(state);
    }
  };
  const WglResult ok = CheckWgl(ops, 0, step, 20'000);
  EXPECT_EQ(ok.verdict, WglVerdict::kLinearizable) << ok.steps;
  // A read of a value written later can't be explained by any of them: found quickly.
  what.back() = -2 - 39;  // the last read sees the value of the write before last
  const WglResult bad = CheckWgl(ops, 0, step, 200'000);
  EXPECT_EQ(bad.verdict, WglVerdict::kNotLinearizable) << bad.steps;
  std::printf("linearizable in %lld steps, refuted in %lld\n", static_cast<long long>(ok.steps),
              static_cast<long long>(bad.steps));
}

TEST(WglTest, InterchangeableMaybeAppliedOpsAreTriedInInvocationOrder) {
  // Two interchangeable unknown writes of 5; a read needs one of them, after the second
  // was invoked. Either may serve; the search must still find it.
  const std::vector<WglOp> ops = {{0, kNeverUs, 0}, {10, kNeverUs, 0}, {20, 30}};
  EXPECT_EQ(Check(ops, {{true, 5}, {true, 5}, {false, 5}}).verdict, WglVerdict::kLinearizable);
  // The first was invoked after the read returned: only the second can serve.
  const std::vector<WglOp> late = {{40, kNeverUs, 0}, {10, kNeverUs, 0}, {20, 30}};
  EXPECT_EQ(Check(late, {{true, 5}, {true, 5}, {false, 5}}).verdict, WglVerdict::kLinearizable);
  const std::vector<WglOp> both_late = {{40, kNeverUs, 0}, {50, kNeverUs, 0}, {20, 30}};
  EXPECT_EQ(Check(both_late, {{true, 5}, {true, 5}, {false, 5}}).verdict,
            WglVerdict::kNotLinearizable);
}

}  // namespace
}  // namespace geoetcd::sim
