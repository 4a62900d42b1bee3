#include "consistency/read_gate.h"

#include "gtest/gtest.h"

namespace geoetcd {
namespace {

ReadGateInput At(Level level, int64_t applied) {
  ReadGateInput in;
  in.level = level;
  in.applied_revision = applied;
  in.now_ms = 10'000;
  return in;
}

TEST(ReadGateTest, AtTheWriteRegionEveryLevelReadsLocally) {
  for (Level l : {Level::kStrong, Level::kBounded, Level::kSession, Level::kConsistentPrefix,
                  Level::kEventual}) {
    ReadGateInput in = At(l, 5);
    in.at_write_region = true;
    in.session_revision = 100;  // whatever a session asks, W has it
    EXPECT_EQ(DecideRead(in).action, ReadAction::kServeLocal) << LevelName(l);
  }
}

TEST(ReadGateTest, StrongTakesAReadIndexAndPrefixAndEventualNeverWait) {
  EXPECT_EQ(DecideRead(At(Level::kStrong, 5)).action, ReadAction::kReadIndex);
  EXPECT_EQ(DecideRead(At(Level::kConsistentPrefix, 5)).action, ReadAction::kServeLocal);
  EXPECT_EQ(DecideRead(At(Level::kEventual, 0)).action, ReadAction::kServeLocal);
}

TEST(ReadGateTest, SessionWaitsForItsOwnRevisionOnly) {
  ReadGateInput in = At(Level::kSession, 7);
  in.session_revision = 7;
  EXPECT_EQ(DecideRead(in).action, ReadAction::kServeLocal);
  in.session_revision = 9;
  EXPECT_EQ(DecideRead(in), (ReadDecision{ReadAction::kWaitForRevision, 9}));
  in.session_revision = 0;  // no session yet
  EXPECT_EQ(DecideRead(in).action, ReadAction::kServeLocal);
}

TEST(ReadGateTest, BoundedAtTheBoundsOfKAndT) {
  ReadGateInput in = At(Level::kBounded, 90);
  in.max_staleness_revisions = 10;
  in.max_staleness_ms = 2000;
  EXPECT_EQ(DecideRead(in).action, ReadAction::kServeAtWriteRegion);  // no heartbeat yet
  in.beacon = WriteRegionBeacon{100, 8'000};                          // exactly T old
  EXPECT_EQ(DecideRead(in).action, ReadAction::kServeLocal);          // exactly K behind
  in.applied_revision = 89;                                           // K + 1 behind
  EXPECT_EQ(DecideRead(in), (ReadDecision{ReadAction::kWaitForRevision, 90}));
  in.applied_revision = 100;
  in.beacon->received_ms = 7'999;  // T + 1 ms old: W may have moved on unseen
  EXPECT_EQ(DecideRead(in).action, ReadAction::kServeAtWriteRegion);
}

}  // namespace
}  // namespace geoetcd
