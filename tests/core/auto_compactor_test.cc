// etcd's --auto-compaction policy: the pure decision (AutoCompactor) and the Node acting on
// it over the Clock port.
#include "core/auto_compactor.h"

#include <memory>
#include <optional>

#include "core/memory_storage.h"
#include "core/node.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"

namespace geoetcd {
namespace {

constexpr int64_t kMinute = 60 * 1000;
constexpr int64_t kHour = 60 * kMinute;

AutoCompactionPolicy Periodic(int64_t period_ms) {
  AutoCompactionPolicy p;
  p.period_ms = period_ms;
  return p;
}

AutoCompactionPolicy Revisions(int64_t n) {
  AutoCompactionPolicy p;
  p.revisions = n;
  return p;
}

TEST(AutoCompactorTest, PeriodicSamplesATenthOfThePeriodCappedAtAnHour) {
  EXPECT_EQ(AutoCompactor(Periodic(10 * kMinute), 0, 1).tick_ms(), kMinute);
  EXPECT_EQ(AutoCompactor(Periodic(kHour), 0, 1).tick_ms(), 6 * kMinute);
  EXPECT_EQ(AutoCompactor(Periodic(72 * kHour), 0, 1).tick_ms(), 6 * kMinute);
  EXPECT_EQ(AutoCompactor(Periodic(5), 0, 1).tick_ms(), 1);
  EXPECT_EQ(AutoCompactor(Revisions(1000), 0, 1).tick_ms(), 5 * kMinute);
}

TEST(AutoCompactorTest, PeriodicKeepsExactlyOnePeriodOfHistory) {
  // One revision per minute; keep 10 minutes.
  AutoCompactor c(Periodic(10 * kMinute), 0, 1);
  int64_t compacted = -1;
  for (int64_t minute = 1; minute <= 60; ++minute) {
    const int64_t head = 1 + minute;
    const int64_t target = c.OnTick(minute * kMinute, head, compacted);
    if (minute < 10) {
      EXPECT_EQ(target, 0) << "minute " << minute << ": less than a period of history";
    }
    if (target != 0) {
      // The revision that was head exactly one period ago.
      EXPECT_EQ(target, head - 10) << "minute " << minute;
      EXPECT_EQ(minute % 10, 0) << "compacts once per period, at minute " << minute;
      compacted = target;
    }
  }
  EXPECT_EQ(compacted, 51);
}

TEST(AutoCompactorTest, LongPeriodsCompactHourly) {
  AutoCompactor c(Periodic(3 * kHour), 0, 1);
  int compactions = 0;
  int64_t compacted = -1;
  for (int64_t t = c.tick_ms(); t <= 6 * kHour; t += c.tick_ms()) {
    const int64_t head = 1 + t / kMinute;
    const int64_t target = c.OnTick(t, head, compacted);
    if (target != 0) {
      ++compactions;
      EXPECT_EQ(target, head - 180) << "t=" << t;
      compacted = target;
    }
  }
  EXPECT_EQ(compactions, 4);  // at 3h, 4h, 5h, 6h
}

TEST(AutoCompactorTest, IdleStoreIsNotCompactedAgain) {
  AutoCompactor c(Periodic(10 * kMinute), 0, 5);
  int64_t compacted = -1;
  for (int64_t minute = 1; minute <= 40; ++minute) {
    const int64_t target = c.OnTick(minute * kMinute, 5, compacted);
    if (target != 0) {
      EXPECT_EQ(compacted, -1) << "compacted twice at the same revision";
      compacted = target;
    }
  }
  EXPECT_EQ(compacted, 5);
}

TEST(AutoCompactorTest, RevisionModeKeepsTheNewestRetentionRevisions) {
  AutoCompactor c(Revisions(100), 0, 1);
  EXPECT_EQ(c.OnTick(5 * kMinute, 100, -1), 0);   // only 99 revisions so far
  EXPECT_EQ(c.OnTick(10 * kMinute, 101, -1), 1);  // head - retention, at the bound
  EXPECT_EQ(c.OnTick(15 * kMinute, 350, 1), 250);
  EXPECT_EQ(c.OnTick(20 * kMinute, 350, 250), 0);  // nothing new
  EXPECT_EQ(c.OnTick(25 * kMinute, 349, 300), 0);  // already compacted further
}

// The Node runs the policy on its own timer and compacts like a client Compact would.
class AutoCompactionNodeTest : public ::testing::Test {
 protected:
  AutoCompactionNodeTest() : executor_(&clock_), storage_(&executor_) {}

  void Start(AutoCompactionPolicy policy) {
    NodeOptions options;
    options.auto_compaction = policy;
    Ports ports;
    ports.clock = &clock_;
    ports.executor = &executor_;
    ports.storage = &storage_;
    node_ = std::make_unique<Node>(options, ports, Random(7));
    ASSERT_TRUE(node_->Start().ok());
  }

  void Put(const std::string& key) {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value("v");
    std::optional<absl::StatusOr<etcdserverpb::PutResponse>> out;
    node_->Put(RequestContext(), req, [&](auto r) { out = std::move(r); });
    executor_.RunUntilIdle();
    ASSERT_TRUE(out.has_value() && out->ok());
  }

  testing::ManualClock clock_;
  testing::ManualExecutor executor_;
  MemoryStorage storage_;
  std::unique_ptr<Node> node_;
};

TEST_F(AutoCompactionNodeTest, OffByDefault) {
  Start(AutoCompactionPolicy());
  for (int i = 0; i < 30; ++i) {
    Put("k");
    executor_.AdvanceMs(kMinute);
  }
  EXPECT_EQ(node_->compact_revision(), -1);
}

TEST_F(AutoCompactionNodeTest, PeriodicCompactsToTheRevisionOnePeriodAgo) {
  Start(Periodic(10 * kMinute));
  // One put per minute: revision 1 + n after minute n's put.
  for (int minute = 1; minute <= 25; ++minute) {
    Put("k");
    executor_.AdvanceMs(kMinute);
    node_->CheckInvariants();
  }
  // Compactions ran at minutes 10 and 20; the second kept revisions from minute 10 on.
  EXPECT_EQ(node_->compact_revision(), 11);
  etcdserverpb::RangeRequest old_read;
  old_read.set_key("k");
  old_read.set_revision(10);
  EXPECT_EQ(node_->ReadRange(RequestContext(), old_read).status().code(),
            absl::StatusCode::kOutOfRange);
  old_read.set_revision(11);
  EXPECT_TRUE(node_->ReadRange(RequestContext(), old_read).ok());
}

TEST_F(AutoCompactionNodeTest, RevisionModeCompactsEveryFiveMinutes) {
  Start(Revisions(20));
  for (int i = 0; i < 50; ++i) Put("k" + std::to_string(i));  // head 51
  EXPECT_EQ(node_->compact_revision(), -1);
  executor_.AdvanceMs(5 * kMinute);
  EXPECT_EQ(node_->compact_revision(), 31);
  executor_.AdvanceMs(5 * kMinute);
  EXPECT_EQ(node_->compact_revision(), 31);  // nothing written meanwhile
}

}  // namespace
}  // namespace geoetcd
