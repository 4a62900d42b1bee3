// Whole runs: determinism, configuration errors, the checker's speed on a 10k-op history,
// and clean runs under every fault profile. (Injected bugs are caught by
// tests/sim/bugs_test.sh, which runs the CLI: one of them makes the Node abort.)
#include "sim/simulation.h"

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd::sim {
namespace {

SimConfig Config(uint64_t seed, FaultProfile faults, int64_t ops = 500) {
  SimConfig c;
  c.seed = seed;
  c.ops = ops;
  c.faults = faults;
  return c;
}

TEST(SimulationTest, SameSeedSameRunEventForEvent) {
  for (FaultProfile f : {FaultProfile::kNone, FaultProfile::kAll}) {
    auto a = RunSimulation(Config(42, f));
    auto b = RunSimulation(Config(42, f));
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->hash, b->hash);
    EXPECT_EQ(a->events, b->events);
    EXPECT_EQ(a->ops, b->ops);
    EXPECT_EQ(a->sim_seconds, b->sim_seconds);
    ASSERT_EQ(a->history.ops.size(), b->history.ops.size());
    for (size_t i = 0; i < a->history.ops.size(); ++i) {
      ASSERT_EQ(FormatOp(a->history.ops[i]), FormatOp(b->history.ops[i]));
    }
  }
}

TEST(SimulationTest, DifferentSeedsDiffer) {
  std::vector<uint64_t> hashes;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    auto r = RunSimulation(Config(seed, FaultProfile::kCrash));
    ASSERT_TRUE(r.ok());
    for (uint64_t h : hashes) EXPECT_NE(h, r->hash) << "seed " << seed;
    hashes.push_back(r->hash);
  }
}

TEST(SimulationTest, TheReplayTraceIsTheSameEachTime) {
  auto trace = [] {
    std::vector<std::string> lines;
    SimConfig c = Config(9, FaultProfile::kCrash, 100);
    c.trace = [&lines](const std::string& line) { lines.push_back(line); };
    EXPECT_TRUE(RunSimulation(c).ok());
    return lines;
  };
  const std::vector<std::string> first = trace();
  EXPECT_GT(first.size(), 500u);
  EXPECT_EQ(first, trace());
}

TEST(SimulationTest, EveryFaultProfileRunsClean) {
  for (FaultProfile f : {FaultProfile::kNone, FaultProfile::kCrash, FaultProfile::kNetwork,
                         FaultProfile::kDisk, FaultProfile::kAll}) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      auto r = RunSimulation(Config(seed, f));
      ASSERT_TRUE(r.ok());
      EXPECT_TRUE(r->ok) << FaultProfileName(f) << " seed " << seed << ": " << r->checker << ": "
                         << r->detail;
      EXPECT_GE(r->ops, 500);
    }
  }
}

TEST(SimulationTest, CrashProfilesCrashAndRecover) {
  auto r = RunSimulation(Config(3, FaultProfile::kCrash, 2000));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->detail;
  EXPECT_GT(r->stats.crashes, 1);
  EXPECT_EQ(static_cast<int64_t>(r->history.crashes.size()), r->stats.crashes);
  for (const CrashRecord& c : r->history.crashes) {
    EXPECT_FALSE(c.restart_failed);
    EXPECT_NE(c.restart_us, kNeverUs);
  }
  EXPECT_FALSE(r->history.watches.empty());
}

TEST(SimulationTest, CheckersJudgeTenThousandOpsWellUnderASecond) {
  auto r = RunSimulation(Config(11, FaultProfile::kAll, 10'000));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->checker << ": " << r->detail;
  EXPECT_GE(r->history.ops.size(), 10'000u);
  const auto start = std::chrono::steady_clock::now();
  const CheckResult check = CheckHistory(r->history, CheckOptions());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(check.ok);
  EXPECT_LT(seconds, 1.0);
  std::printf("checked %zu ops and %zu watch sessions in %.3f s\n", r->history.ops.size(),
              r->history.watches.size(), seconds);
}

// The replay's pruning rules only ever reject placements no linearization can have: with
// each hole filled by the op the server really committed there, no rule objects.
TEST(SimulationTest, TheSearchNeverPrunesWhatTheServerReallyDid) {
  for (FaultProfile f : {FaultProfile::kCrash, FaultProfile::kNetwork, FaultProfile::kAll}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      SimConfig c = Config(seed, f, 2000);
      c.buggify = BuggifyMode::kOn;
      auto r = RunSimulation(c);
      ASSERT_TRUE(r.ok());
      CheckOptions oracle;
      oracle.oracle_only = true;
      const CheckResult check = CheckLinearizability(r->history, oracle);
      EXPECT_TRUE(check.ok && check.notes.empty()) << FaultProfileName(f) << " seed " << seed
                                                   << ": " << check.checker << ": " << check.detail;
    }
  }
}

// Leases are exercised in an ordinary run: granted, given keys, kept alive, and some
// found gone (expired or revoked) while the run goes on; --no-leases leaves them out.
TEST(SimulationTest, LeasesComeAndGoInAnOrdinaryRun) {
  auto r = RunSimulation(Config(3, FaultProfile::kNone, 2000));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok) << r->checker << ": " << r->detail;
  int grants = 0, puts = 0, renewals = 0, gone = 0, revokes = 0;
  for (const HistoryOp& op : r->history.ops) {
    if (op.outcome != OpOutcome::kOk) continue;
    grants += op.call.kind == OpKind::kLeaseGrant;
    puts += op.call.kind == OpKind::kPut && op.call.request.request_put().lease() != 0;
    renewals += op.call.kind == OpKind::kLeaseKeepAlive && op.lease_keep_alive_response.ttl() > 0;
    gone += (op.call.kind == OpKind::kLeaseKeepAlive && op.lease_keep_alive_response.ttl() == 0) ||
            (op.call.kind == OpKind::kLeaseTimeToLive && op.lease_time_to_live_response.ttl() < 0);
    revokes += op.call.kind == OpKind::kLeaseRevoke;
  }
  EXPECT_GT(grants, 10);
  EXPECT_GT(puts, 20);
  EXPECT_GT(renewals, 10);
  EXPECT_GT(gone, 0);
  EXPECT_GT(revokes, 0);

  SimConfig without = Config(3, FaultProfile::kNone, 500);
  without.leases = false;
  auto w = RunSimulation(without);
  ASSERT_TRUE(w.ok());
  for (const HistoryOp& op : w->history.ops) EXPECT_FALSE(op.is_lease()) << FormatOp(op);
}

TEST(SimulationTest, ThreeRegionsConvergeWithoutFaults) {
  SimConfig c = Config(1, FaultProfile::kNone);
  c.regions = 3;
  auto r = RunSimulation(c);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->ok) << r->checker << ": " << r->detail;
}

TEST(SimulationTest, RegionsOutsideTheBoundAreRefused) {
  SimConfig c = Config(1, FaultProfile::kNone);
  c.regions = kRegionsMax + 1;
  EXPECT_FALSE(RunSimulation(c).ok());
  c.regions = 0;
  EXPECT_FALSE(RunSimulation(c).ok());
}

TEST(SimulationTest, ParsesProfilesAndBugNames) {
  FaultProfile f;
  EXPECT_TRUE(ParseFaultProfile("network", &f));
  EXPECT_EQ(f, FaultProfile::kNetwork);
  EXPECT_FALSE(ParseFaultProfile("gremlins", &f));
  for (const std::string& name : InjectedBugNames()) {
    InjectedBugs bugs;
    EXPECT_TRUE(ParseInjectedBug(name, &bugs).ok()) << name;
  }
  InjectedBugs bugs;
  ASSERT_TRUE(ParseInjectedBug("txn-not-atomic", &bugs).ok());
  EXPECT_TRUE(bugs.txn_not_atomic);
  EXPECT_FALSE(bugs.ack_before_fsync);
  EXPECT_FALSE(ParseInjectedBug("no-such-bug", &bugs).ok());
  ASSERT_TRUE(ParseInjectedBug("lease-revoke-not-atomic", &bugs).ok());
  EXPECT_TRUE(bugs.lease_revoke_not_atomic);
}

}  // namespace
}  // namespace geoetcd::sim
