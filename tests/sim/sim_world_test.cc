// SimWorld's event order and incarnations, the simulated clock and executor.
#include "sim/sim_world.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sim/sim_clock.h"

namespace geoetcd::sim {
namespace {

TEST(SimWorldTest, RunsEventsByTimeThenBySchedulingOrder) {
  SimWorld world(1);
  std::vector<std::string> ran;
  world.Schedule(20, EventType::kControl, kNoNode, [&] { ran.push_back("t20"); });
  world.Schedule(10, EventType::kControl, kNoNode, [&] { ran.push_back("t10-first"); });
  world.Schedule(10, EventType::kControl, kNoNode, [&] { ran.push_back("t10-second"); });
  world.Schedule(0, EventType::kControl, kNoNode, [&] {
    ran.push_back("t0");
    // Scheduled later at the same time as earlier events: runs after them.
    world.Schedule(10, EventType::kControl, kNoNode, [&] { ran.push_back("t10-third"); });
  });
  while (world.RunOne()) {
  }
  EXPECT_EQ(ran, (std::vector<std::string>{"t0", "t10-first", "t10-second", "t10-third", "t20"}));
  EXPECT_EQ(world.now_us(), 20);
  EXPECT_EQ(world.events_run(), 5u);
}

TEST(SimWorldTest, TimeOnlyMovesForward) {
  SimWorld world(1);
  std::vector<int64_t> times;
  for (int64_t d : {30, 5, 17, 5, 0}) {
    world.Schedule(d, EventType::kControl, kNoNode, [&] { times.push_back(world.now_us()); });
  }
  while (world.RunOne()) {
  }
  EXPECT_EQ(times, (std::vector<int64_t>{0, 5, 5, 17, 30}));
}

TEST(SimWorldTest, CrashDropsTheNodesPendingEvents) {
  SimWorld world(1);
  const int32_t a = world.AddNode();
  const int32_t b = world.AddNode();
  int ran_a = 0;
  int ran_b = 0;
  world.Schedule(10, EventType::kNodePost, a, [&] { ++ran_a; });
  world.Schedule(10, EventType::kNodePost, b, [&] { ++ran_b; });
  world.BumpIncarnation(a);  // a's process died with its event queued
  world.Schedule(20, EventType::kNodePost, a, [&] { ++ran_a; });  // the new process's event
  while (world.RunOne()) {
  }
  EXPECT_EQ(ran_a, 1);
  EXPECT_EQ(ran_b, 1);
  EXPECT_EQ(world.events_dropped(), 1u);
  EXPECT_EQ(world.incarnation(a), 2u);
}

TEST(SimWorldTest, RunUntilStopsAtDoneOrDeadline) {
  SimWorld world(1);
  int n = 0;
  for (int i = 1; i <= 10; ++i) {
    world.Schedule(i * 100, EventType::kControl, kNoNode, [&] { ++n; });
  }
  EXPECT_TRUE(world.RunUntil([&] { return n == 3; }, 10'000));
  EXPECT_EQ(world.now_us(), 300);
  EXPECT_FALSE(world.RunUntil([&] { return n == 100; }, 650));
  EXPECT_EQ(n, 6);  // events after the deadline stay queued
  EXPECT_EQ(world.events_pending(), 4u);
}

// A run's trace hash is a function of the seed and what happened, event for event.
uint64_t HashOfRun(uint64_t seed) {
  SimWorld world(seed);
  const int32_t node = world.AddNode();
  for (int i = 0; i < 50; ++i) {
    const int64_t delay = world.random().Range(0, 1000);
    world.Schedule(delay, EventType::kNodePost, node, [&world] { world.Fold(world.now_us()); });
  }
  while (world.RunOne()) {
  }
  return world.trace_hash();
}

TEST(SimWorldTest, SameSeedSameHashDifferentSeedsDiffer) {
  EXPECT_EQ(HashOfRun(7), HashOfRun(7));
  EXPECT_NE(HashOfRun(7), HashOfRun(8));
  EXPECT_NE(HashOfRun(1), HashOfRun(2));
}

TEST(SimWorldTest, TraceSinkSeesEveryEventAndNote) {
  SimWorld world(1);
  std::vector<std::string> lines;
  world.SetTraceSink([&](const std::string& line) { lines.push_back(line); });
  world.Schedule(1'500'000, EventType::kFault, kNoNode, [&] { world.TraceNote("boom"); });
  world.RunOne();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "t=1.500000 fault node=-1");
  EXPECT_EQ(lines[1], "  boom");
}

TEST(SimWorldTest, AQueueBeyondItsBoundRefusesAndFlagsOverflow) {
  SimWorld world(1);
  for (size_t i = 0; i < SimWorld::kEventsPendingMax; ++i) {
    ASSERT_TRUE(world.Schedule(1, EventType::kControl, kNoNode, [] {}));
  }
  EXPECT_FALSE(world.overflowed());
  EXPECT_FALSE(world.Schedule(1, EventType::kControl, kNoNode, [] {}));
  EXPECT_TRUE(world.overflowed());
}

TEST(SimClockTest, DriftSkewAndJumps) {
  SimWorld world(1);
  SimClock fast(&world, /*wall_offset_ms=*/5'000, /*drift_ppm=*/10'000);  // 1% fast
  SimClock exact(&world, 0, 0);
  world.Schedule(10'000'000, EventType::kControl, kNoNode, [] {});  // 10 s
  world.RunOne();
  EXPECT_EQ(exact.MonotonicMs() - SimClock::kMonotonicBaseMs, 10'000);
  EXPECT_EQ(fast.MonotonicMs() - SimClock::kMonotonicBaseMs, 10'100);
  EXPECT_EQ(fast.WallMs(), fast.MonotonicMs() + 5'000);
  const int64_t mono = fast.MonotonicMs();
  fast.JumpWallMs(-60'000);  // NTP steps the wall clock back a minute
  EXPECT_EQ(fast.WallMs(), mono - 55'000);
  EXPECT_EQ(fast.MonotonicMs(), mono);  // monotonic time does not care
}

TEST(SimClockTest, TimersWaitTheirDelayInTheNodesOwnTime) {
  for (int32_t drift : {-50'000, -1, 0, 7, 50'000}) {
    for (int64_t ms : {0, 1, 3, 250}) {
      SimWorld world(1);
      const int32_t node = world.AddNode();
      SimClock clock(&world, 0, drift);
      SimExecutor executor(&world, node, &clock);
      int64_t before_ms = 0;
      int64_t posted_us = 0;
      int64_t fired_ms = -1;
      int64_t fired_us = -1;
      world.Schedule(1'234'567, EventType::kControl, kNoNode, [&] {
        before_ms = clock.MonotonicMs();
        posted_us = world.now_us();
        executor.PostAfter(ms, [&] {
          fired_ms = clock.MonotonicMs();
          fired_us = world.now_us();
        });
      });
      while (world.RunOne()) {
      }
      EXPECT_GE(fired_ms, before_ms + ms) << "drift " << drift << " delay " << ms;
      // ...and no later than the delay at the clock's rate, plus rounding.
      const double rate = 1.0 + drift / 1e6;
      EXPECT_LE(fired_us - posted_us, static_cast<int64_t>(ms * 1000 / rate) + 2)
          << "drift " << drift << " delay " << ms;
    }
  }
}

TEST(SimExecutorTest, PostRunsLaterTimersFireAndCancelWorks) {
  SimWorld world(1);
  const int32_t node = world.AddNode();
  SimClock clock(&world, 0, 0);
  SimExecutor executor(&world, node, &clock);
  std::vector<std::string> ran;
  executor.Post([&] { ran.push_back("post"); });
  executor.PostAfter(5, [&] { ran.push_back("timer5"); });
  const auto cancelled = executor.PostAfter(3, [&] { ran.push_back("cancelled"); });
  executor.PostAfter(1, [&] { ran.push_back("timer1"); });
  EXPECT_TRUE(ran.empty());  // nothing runs inline
  executor.Cancel(cancelled);
  executor.Cancel(999);  // unknown: a no-op
  while (world.RunOne()) {
  }
  EXPECT_EQ(ran, (std::vector<std::string>{"post", "timer1", "timer5"}));
  EXPECT_EQ(world.now_us(), 5000);
  EXPECT_EQ(executor.live_timers(), 0u);
}

TEST(SimExecutorTest, ACrashedProcessRunsNothingMore) {
  SimWorld world(1);
  const int32_t node = world.AddNode();
  SimClock clock(&world, 0, 0);
  SimExecutor executor(&world, node, &clock);
  int ran = 0;
  executor.Post([&] { ++ran; });
  executor.PostAfter(10, [&] { ++ran; });
  world.BumpIncarnation(node);
  executor.OnCrash();
  executor.Post([&] { ran += 10; });  // the restarted process
  while (world.RunOne()) {
  }
  EXPECT_EQ(ran, 10);
}

}  // namespace
}  // namespace geoetcd::sim
