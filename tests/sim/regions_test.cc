// The region protocol step by step: three real Nodes over the simulated network and disks,
// driven by hand from the test (no workload, no random faults), so that each scenario puts
// the protocol exactly where a bug would show.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sim/sim_network.h"
#include "sim/sim_node.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {
namespace {

using etcdserverpb::CompactionRequest;
using etcdserverpb::CompactionResponse;
using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;

constexpr int kRegions = 3;
constexpr int64_t kLatencyUs = 10'000;  // one way between regions
constexpr int64_t kForwardTimeoutMs = 2000;
constexpr int64_t kCatchupEntries = 5;

template <typename T>
struct Result {
  std::optional<absl::StatusOr<T>> value;
  bool done() const { return value.has_value(); }
};

template <typename T>
Reply<T> Capture(Result<T>* r) {
  return [r](absl::StatusOr<T> v) { r->value = std::move(v); };
}

class RegionsTest : public ::testing::Test {
 protected:
  RegionsTest() : world_(42), network_(&world_, world_.random().Fork()) {
    transports_.resize(kRegions, nullptr);
    for (int r = 0; r < kRegions; ++r) {
      SimNodeConfig config;
      NodeOptions& o = config.options;
      o.name = absl::StrCat("r", r);
      o.cluster_id = 7;
      o.member_id = static_cast<uint64_t>(r) + 1;
      for (int i = 0; i < kRegions; ++i) {
        o.regions.push_back({static_cast<uint64_t>(i) + 1, absl::StrCat("r", i)});
      }
      o.write_region = 1;
      o.forward_timeout_ms = kForwardTimeoutMs;
      o.forward_retry_ms = 100;
      o.gossip_interval_ms = 100;
      // W keeps at most this many entries for a region that lags (once compacted past it).
      o.log_catchup_entries_max = kCatchupEntries;
      o.on_fatal = [](const absl::Status& s) { FAIL() << s; };
      config.wall_offset_ms = 1'700'000'000'000;
      nodes_.push_back(std::make_unique<SimNode>(&world_, &network_, r, &transports_,
                                                 std::move(config), world_.random().Fork()));
      transports_[r] = &nodes_.back()->transport();
      nodes_.back()->storage().SetLatencyHook([] { return int64_t{1}; });
    }
    for (int a = 0; a < kRegions; ++a) {
      for (int b = 0; b < kRegions; ++b) network_.SetLatencyUs(a, b, a == b ? 100 : kLatencyUs);
    }
    for (auto& n : nodes_) EXPECT_TRUE(n->Start().ok());
  }

  Node* node(int r) { return nodes_[r]->node(); }
  int32_t endpoint(int r) { return nodes_[r]->endpoint(); }

  bool RunUntil(const std::function<bool()>& done, int64_t limit_us = 30'000'000) {
    return world_.RunUntil(done, world_.now_us() + limit_us);
  }
  void RunFor(int64_t us) {
    world_.RunUntil([] { return false; }, world_.now_us() + us);
  }

  // Calls `method` of region r's Node and runs the world until it answers.
  template <typename Req, typename Resp>
  absl::StatusOr<Resp> Call(int r,
                            void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>),
                            const Req& req) {
    Result<Resp> res;
    (node(r)->*method)(RequestContext(), req, Capture(&res));
    EXPECT_TRUE(RunUntil([&] { return res.done(); }));
    return res.done() ? *res.value : absl::InternalError("no answer");
  }

  absl::StatusOr<PutResponse> Put(int r, const std::string& key, const std::string& value) {
    PutRequest req;
    req.set_key(key);
    req.set_value(value);
    return Call(r, &Node::Put, req);
  }

  absl::StatusOr<RangeResponse> Range(int r, const std::string& key, bool serializable) {
    RangeRequest req;
    req.set_key(key);
    req.set_serializable(serializable);
    return Call(r, &Node::Range, req);
  }

  bool Converged() {
    const int64_t rev = node(0)->durable_revision();
    for (int r = 1; r < kRegions; ++r) {
      if (node(r) == nullptr || node(r)->durable_revision() != rev) return false;
    }
    return true;
  }

  SimWorld world_;
  SimNetwork network_;
  std::vector<SimTransport*> transports_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
};

TEST_F(RegionsTest, ForwardedPutIsWsAnswerAndReadableAtTheOriginAtOnce) {
  auto put = Put(2, "k", "v");
  ASSERT_TRUE(put.ok()) << put.status();
  const int64_t rev = put->header().revision();
  EXPECT_EQ(put->header().member_id(), 1u);  // W's own answer
  EXPECT_EQ(node(0)->durable_revision(), rev);
  // Answered only once the origin made it durable: its own state has it, no round trip.
  EXPECT_GE(node(2)->durable_revision(), rev);
  Result<RangeResponse> local;
  RangeRequest req;
  req.set_key("k");
  req.set_serializable(true);
  ASSERT_TRUE(node(2)->ReadsInPlace(RequestContext(), req));
  auto read = node(2)->ReadRange(RequestContext(), req);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->kvs_size(), 1);
  EXPECT_EQ(read->kvs(0).mod_revision(), rev);
  EXPECT_TRUE(RunUntil([&] { return Converged(); }));
  EXPECT_EQ(node(1)->KvHashAt("default", rev), node(0)->KvHashAt("default", rev));
}

TEST_F(RegionsTest, LinearizableRangeAwayFromWWaitsForTheReadIndex) {
  // r2 stops hearing from W (one way): it cannot have W's newest write by replication.
  network_.PartitionOneWay(endpoint(0), endpoint(2));
  network_.PartitionOneWay(endpoint(1), endpoint(2));
  auto put = Put(0, "k", "new");
  ASSERT_TRUE(put.ok());
  EXPECT_LT(node(2)->durable_revision(), put->header().revision());
  // A serializable read there is stale; a linearizable one learns W's index, which needs
  // W's reply: it waits (and would time out) while W cannot reach r2.
  auto stale = Range(2, "k", /*serializable=*/true);
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->kvs_size(), 0);
  Result<RangeResponse> lin;
  RangeRequest req;
  req.set_key("k");
  node(2)->Range(RequestContext(), req, Capture(&lin));
  RunFor(500'000);
  EXPECT_FALSE(lin.done());
  network_.HealAll();
  ASSERT_TRUE(RunUntil([&] { return lin.done(); }));
  ASSERT_TRUE(lin.value->ok()) << lin.value->status();
  ASSERT_EQ((*lin.value)->kvs_size(), 1);
  EXPECT_EQ((*lin.value)->kvs(0).value(), "new");
}

TEST_F(RegionsTest, ForwardTimesOutWhenWIsUnreachableAndAppliesNothingHalfway) {
  network_.Partition(endpoint(0), endpoint(1));
  const int64_t start = world_.now_us();
  auto put = Put(1, "k", "v");
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.status().message(), "etcdserver: request timed out");
  EXPECT_GE(world_.now_us() - start, kForwardTimeoutMs * 1000);
  EXPECT_LE(world_.now_us() - start, kForwardTimeoutMs * 1000 + 200'000);
  // Lease keep-alives live at W too: cut off, one times out and extends nothing.
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(10);
  auto granted = Call(0, &Node::LeaseGrant, grant);
  ASSERT_TRUE(granted.ok());
  etcdserverpb::LeaseKeepAliveRequest keep;
  keep.set_id(granted->id());
  auto kept = Call(1, &Node::LeaseKeepAlive, keep);
  ASSERT_FALSE(kept.ok());
  EXPECT_EQ(kept.status().message(), "etcdserver: request timed out");
  // Serializable reads at the cut-off region still answer.
  EXPECT_TRUE(Range(1, "k", /*serializable=*/true).ok());
  network_.HealAll();
  EXPECT_TRUE(RunUntil([&] { return Converged(); }));
  // The partition lost every copy of the forward: nothing was executed.
  EXPECT_EQ(node(0)->durable_revision(), 1);
  EXPECT_EQ(node(0)->peer_stats().forwards_executed, 0u);  // neither the put nor the keep-alive
}

TEST_F(RegionsTest, RegionCutFromWCatchesUpThroughAThirdRegion) {
  network_.Partition(endpoint(0), endpoint(2));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(i % 2, absl::StrCat("k", i), "v").ok());
  const int64_t rev = node(0)->durable_revision();
  ASSERT_TRUE(RunUntil([&] { return node(2)->durable_revision() == rev; }, 10'000'000));
  EXPECT_GT(node(2)->peer_stats().pulls_sent, 0u);
  EXPECT_EQ(node(2)->KvHashAt("default", rev), node(0)->KvHashAt("default", rev));
}

TEST_F(RegionsTest, WReportsTheLagOfARegionCutOffFromEveryone) {
  network_.Partition(endpoint(0), endpoint(2));
  network_.Partition(endpoint(1), endpoint(2));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(i % 2, absl::StrCat("k", i), "v").ok());
  RunFor(2'000'000);
  std::vector<AccountStats> at_w = node(0)->account_stats();
  ASSERT_EQ(at_w.size(), 1u);
  EXPECT_EQ(at_w[0].lag_entries.at(3), 10u);  // r2 (member 3) lacks all ten
  EXPECT_EQ(at_w[0].lag_entries.at(2), 0u);
  // The oldest missing entry was committed at least the 2 s run above ago.
  EXPECT_GE(at_w[0].lag_ms.at(3), 2000);
  EXPECT_EQ(at_w[0].lag_ms.at(2), 0);
  // r1 measures itself against what it heard: nothing missing.
  EXPECT_EQ(node(1)->account_stats()[0].lag_entries.at(2), 0u);
  EXPECT_TRUE(node(1)->account_stats()[0].lag_ms.empty());  // only W reports seconds
  // Forwards were counted where they left and where they ran.
  EXPECT_EQ(node(1)->peer_stats().forwards_sent, 5u);
  EXPECT_EQ(node(0)->peer_stats().forwards_executed, 5u);
  network_.Heal(endpoint(0), endpoint(2));
  network_.Heal(endpoint(1), endpoint(2));
  ASSERT_TRUE(RunUntil([&] { return node(0)->account_stats()[0].lag_entries.at(3) == 0; }));
  EXPECT_EQ(node(0)->account_stats()[0].lag_ms.at(3), 0);
}

TEST_F(RegionsTest, AntiEntropyBytesAreCountedWhereDigestsAndPullsLeave) {
  network_.Partition(endpoint(0), endpoint(2));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(0, absl::StrCat("k", i), "v").ok());
  const uint64_t r1_before = node(1)->peer_stats().antientropy_bytes_sent;
  const int64_t rev = node(0)->durable_revision();
  ASSERT_TRUE(RunUntil([&] { return node(2)->durable_revision() == rev; }, 10'000'000));
  // r2 pulled from r1, whose answers carry the entries: well over the digests' size.
  EXPECT_GT(node(2)->peer_stats().antientropy_bytes_sent, 0u);
  EXPECT_GT(node(1)->peer_stats().antientropy_bytes_sent - r1_before, 20u * 10u);
}

// A compaction forwarded to W whose answer is lost, W restarting once the compaction is
// durable, and the forward retried: W must not execute it again (it would answer "required
// revision has been compacted" to a compaction that succeeded). The compaction's log entry
// is staged after the forward's call returns, so it must still record the forward.
TEST_F(RegionsTest, ForwardedCompactionRetriedAcrossAWRestartRunsOnce) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Put(0, absl::StrCat("k", i), "v").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  network_.PartitionOneWay(endpoint(0), endpoint(1));  // W's answers to r1 are lost
  Result<CompactionResponse> res;
  CompactionRequest req;
  req.set_revision(4);
  node(1)->Compact(RequestContext(), req, Capture(&res));
  // Crash W the moment the compaction is durable there, before anything after it is.
  ASSERT_TRUE(RunUntil([&] {
    return node(0)->compact_revision() == 4 && !node(0)->log_tail().empty() &&
           node(0)->log_tail().back().compact_revision() == 4 &&
           node(0)->durable_index() == node(0)->log_tail().back().index();
  }));
  const uint64_t executed_before = node(0)->peer_stats().forwards_executed;
  EXPECT_EQ(executed_before, 1u);
  nodes_[0]->Crash(0);
  ASSERT_TRUE(nodes_[0]->Start().ok());
  EXPECT_EQ(node(0)->compact_revision(), 4);
  network_.HealAll();
  ASSERT_TRUE(RunUntil([&] { return res.done(); }));
  // The retry learns only that the outcome is unknown (the answer died with W), never a
  // second execution's error.
  EXPECT_EQ(node(0)->peer_stats().forwards_executed, 0u);  // the new incarnation's count
  EXPECT_GT(node(0)->peer_stats().forwards_deduplicated, 0u);
  ASSERT_FALSE(res.value->ok());
  EXPECT_EQ(res.value->status().message(), "etcdserver: request timed out");
}

// Entries of W's stream lost on the way, then later ones arriving past the hole: the region
// reports the gap and W resends from it at once. Neither W's retransmission timer nor the
// region's pulls (one message each) may be what recovers, as they were when a region
// pulling from W made W see progress and never go back.
TEST_F(RegionsTest, AHoleInWsStreamIsResentAtOnce) {
  for (auto& n : nodes_) n->Crash(0);
  for (auto& n : nodes_) {
    n->options().retransmit_ms = 60'000;
    n->options().forward_retry_ms = 5'000;
    n->options().gossip_interval_ms = 60'000;
    n->options().append_bytes_max = 200;  // about one entry per message
    ASSERT_TRUE(n->Start().ok());
  }
  ASSERT_TRUE(Put(0, "first", "v").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  network_.PartitionOneWay(endpoint(0), endpoint(2));  // W's appends to r2 are lost
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(0, absl::StrCat("lost", i), "v").ok());
  RunFor(100'000);
  network_.HealAll();
  ASSERT_TRUE(Put(0, "after", "v").ok());  // arrives at r2 past the hole
  const int64_t rev = node(0)->durable_revision();
  EXPECT_TRUE(RunUntil([&] { return node(2)->durable_revision() == rev; }, 1'000'000))
      << "r2 at " << node(2)->durable_revision() << ", W at " << rev;
}

// Every region keeps a Merkle tree over its registers (key, value, revisions, lease and the
// stamp (hlc, origin) of the commit that wrote it); regions that applied the same log hold
// equal trees, through deletes, compaction and a restart (which rebuilds it from disk).
TEST_F(RegionsTest, RegionsThatAppliedTheSameLogHoldEqualRegisterTrees) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(i % 3, absl::StrCat("k", i % 4), "v").ok());
  etcdserverpb::DeleteRangeRequest dreq;
  dreq.set_key("k1");
  ASSERT_TRUE(Call(2, &Node::DeleteRange, dreq).ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  const uint64_t root = node(0)->merkle_root();
  EXPECT_NE(root, 0u);
  for (int r = 1; r < kRegions; ++r) EXPECT_EQ(node(r)->merkle_root(), root) << r;
  for (int r = 0; r < kRegions; ++r) node(r)->CheckRegisterTrees();  // holds its keyspace

  // A tombstone at exactly the compaction revision stays; one below it goes.
  ASSERT_TRUE(Put(0, "k0", "later").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  const uint64_t before = node(0)->merkle_root();
  EXPECT_NE(before, root);
  CompactionRequest creq;
  creq.set_revision(node(0)->durable_revision());
  ASSERT_TRUE(Call(1, &Node::Compact, creq).ok());
  ASSERT_TRUE(RunUntil([&] {
    return Converged() && node(2)->compact_revision() == node(0)->compact_revision();
  }));
  const uint64_t after = node(0)->merkle_root();
  EXPECT_NE(after, before);  // the deleted key's tombstone register is gone
  for (int r = 1; r < kRegions; ++r) EXPECT_EQ(node(r)->merkle_root(), after) << r;

  nodes_[1]->Crash(0);
  ASSERT_TRUE(nodes_[1]->Start().ok());
  EXPECT_EQ(node(1)->merkle_root(), after);
  for (int r = 0; r < kRegions; ++r) EXPECT_EQ(node(r)->peer_stats().digests_diverged, 0u);
}

// A region whose state differs from the others' for the same log prefix (here: the
// drop-replicated-commit bug, which claims entries without applying their changes) is
// seen in gossip: a digest at the same applied index carries another root.
TEST_F(RegionsTest, GossipSeesARegionWhoseRegistersDivergedAtTheSameIndex) {
  nodes_[2]->Crash(0);
  nodes_[2]->options().bugs.drop_replicated_commit = true;
  ASSERT_TRUE(nodes_[2]->Start().ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Put(0, absl::StrCat("k", i), "v").ok());
  ASSERT_TRUE(RunUntil([&] {
    return node(2)->durable_index() == node(0)->durable_index();
  }));
  EXPECT_NE(node(2)->merkle_root(), node(0)->merkle_root());
  ASSERT_TRUE(RunUntil([&] {
    uint64_t seen = 0;
    for (int r = 0; r < kRegions; ++r) seen += node(r)->peer_stats().digests_diverged;
    return seen > 0;
  }, 10'000'000));
  // Once W's own digest shows it, the diverged region stops serving its state and says why.
  ASSERT_TRUE(RunUntil([&] { return !node(2)->alarms().empty(); }, 10'000'000));
  EXPECT_EQ(node(2)->alarms()[0].alarm(), etcdserverpb::CORRUPT);
  EXPECT_EQ(node(2)->alarms()[0].memberid(), 3u);
  auto read = Range(2, "k1", /*serializable=*/true);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().message(), "etcdserver: corrupt cluster");
  EXPECT_TRUE(node(1)->alarms().empty());  // the healthy region keeps serving
  EXPECT_TRUE(Range(1, "k1", /*serializable=*/true).ok());
}

TEST_F(RegionsTest, RegionRestartedAfterAKillCatchesUpFromItsDurableIndex) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(0, absl::StrCat("a", i), "v").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  nodes_[2]->Crash(0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put(1, absl::StrCat("b", i), "v").ok());
  ASSERT_TRUE(nodes_[2]->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  const int64_t rev = node(0)->durable_revision();
  EXPECT_EQ(rev, 21);
  EXPECT_EQ(node(2)->KvHashAt("default", rev), node(0)->KvHashAt("default", rev));
}

// A region down while W wrote more than the catch-up window and compacted: W's log no longer
// reaches back to it, so it adopts W's registers by Merkle repair, fetching only what
// differs, and then follows the stream again.
TEST_F(RegionsTest, RegionDownWhileWCompactedPastItRepairsByMerkleAndFollowsOn) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Put(0, absl::StrCat("a", i), "old").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  nodes_[2]->Crash(0);
  ASSERT_TRUE(Put(1, "a1", "new").ok());
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("a2");
  ASSERT_TRUE(Call(0, &Node::DeleteRange, del).ok());
  for (int i = 0; i < 3 * kCatchupEntries; ++i) {
    ASSERT_TRUE(Put(0, absl::StrCat("b", i), "v").ok());
  }
  CompactionRequest compact;
  compact.set_revision(node(0)->durable_revision());
  ASSERT_TRUE(Call(0, &Node::Compact, compact).ok());
  RunFor(500'000);  // gossip ticks: W truncates its log past the region that is down
  ASSERT_TRUE(nodes_[2]->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  const PeerStats& stats = node(2)->peer_stats();
  EXPECT_EQ(stats.repairs_completed, 1u);
  EXPECT_EQ(stats.repairs_abandoned, 0u);
  // Only what differs travelled: 16 registers of 55 keys (a1, b0..b14); a2, whose
  // tombstone W compacted away, is removed from the bucket listing alone.
  EXPECT_EQ(stats.repair_registers_received, 16u);
  const int64_t rev = node(0)->durable_revision();
  EXPECT_EQ(node(2)->compact_revision(), rev);  // no history below the adopted revision
  EXPECT_EQ(node(2)->KvHashAt("default", rev), node(0)->KvHashAt("default", rev));
  EXPECT_EQ(node(2)->merkle_root(), node(0)->merkle_root());
  node(2)->CheckInvariants();
  node(2)->CheckRegisterTrees();
  auto a1 = Range(2, "a1", /*serializable=*/true);
  ASSERT_TRUE(a1.ok()) << a1.status();
  ASSERT_EQ(a1->kvs_size(), 1);
  EXPECT_EQ(a1->kvs(0).value(), "new");
  EXPECT_EQ(a1->kvs(0).version(), 2);
  auto a2 = Range(2, "a2", /*serializable=*/true);
  ASSERT_TRUE(a2.ok());
  EXPECT_EQ(a2->kvs_size(), 0);
  RangeRequest old;
  old.set_key("a1");
  old.set_revision(rev - 1);
  old.set_serializable(true);
  EXPECT_EQ(Call(2, &Node::Range, old).status().message(),
            "etcdserver: mvcc: required revision has been compacted");
  // The stream goes on from the adopted state, and a restart finds it on disk.
  auto put = Put(2, "c", "after");
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  nodes_[2]->Crash(0);
  ASSERT_TRUE(nodes_[2]->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  const int64_t last = node(0)->durable_revision();
  EXPECT_EQ(last, put->header().revision());
  EXPECT_EQ(node(2)->compact_revision(), rev);
  EXPECT_EQ(node(2)->KvHashAt("default", last), node(0)->KvHashAt("default", last));
  EXPECT_EQ(node(2)->merkle_root(), node(0)->merkle_root());
}

// Under a majority write quorum W answers a write only once a second region holds it
// durably (one round trip later), and a write no majority can hold times out with etcd's
// error while staying applied at W, as a write to an etcd leader that lost its quorum.
TEST_F(RegionsTest, MajorityQuorumAcknowledgesOnceASecondRegionHoldsTheWrite) {
  for (auto& n : nodes_) {
    n->Crash(0);
    n->options().write_quorum = WriteQuorum::kMajority;
    ASSERT_TRUE(n->Start().ok());
  }
  network_.Partition(endpoint(0), endpoint(2));
  const int64_t start_us = world_.now_us();
  auto put = Put(0, "q", "1");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_GE(world_.now_us() - start_us, 2 * kLatencyUs);  // W -> r1 -> W
  EXPECT_GE(node(1)->durable_revision(), put->header().revision());
  EXPECT_LT(node(2)->durable_revision(), put->header().revision());

  network_.Partition(endpoint(0), endpoint(1));  // W alone now
  auto lost = Put(0, "q", "2");
  EXPECT_EQ(lost.status().message(), "etcdserver: request timed out");
  EXPECT_EQ(node(0)->durable_revision(), put->header().revision() + 1);  // applied at W
  network_.HealAll();
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  auto read = Range(2, "q", /*serializable=*/true);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->kvs_size(), 1);
  EXPECT_EQ(read->kvs(0).value(), "2");
  // And with the quorum back, writes are acknowledged again.
  EXPECT_TRUE(Put(0, "q", "3").ok());
}

// The repair survives an unreliable network: lost and duplicated requests and replies are
// resent or ignored, and the result is still W's state.
TEST_F(RegionsTest, RepairCompletesOverALossyNetwork) {
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(Put(0, absl::StrCat("k", i), "v0").ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }));
  nodes_[1]->Crash(0);
  for (int i = 0; i < 60; i += 2) ASSERT_TRUE(Put(0, absl::StrCat("k", i), "v1").ok());
  CompactionRequest compact;
  compact.set_revision(node(0)->durable_revision());
  ASSERT_TRUE(Call(0, &Node::Compact, compact).ok());
  RunFor(500'000);
  NetworkFaults faults;
  faults.loss = 0.2;
  faults.duplicate = 0.2;
  network_.SetFaults(faults);
  ASSERT_TRUE(nodes_[1]->Start().ok());
  ASSERT_TRUE(RunUntil([&] { return Converged(); }, 120'000'000));
  network_.SetFaults(NetworkFaults());
  const int64_t rev = node(0)->durable_revision();
  EXPECT_GE(node(1)->peer_stats().repairs_completed, 1u);
  EXPECT_EQ(node(1)->KvHashAt("default", rev), node(0)->KvHashAt("default", rev));
  EXPECT_EQ(node(1)->merkle_root(), node(0)->merkle_root());
}

}  // namespace
}  // namespace geoetcd::sim
