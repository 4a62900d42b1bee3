// The WGL search on a register model: state = the value (0: unset).
#include "sim/wgl.h"

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

}  // namespace
}  // namespace geoetcd::sim
