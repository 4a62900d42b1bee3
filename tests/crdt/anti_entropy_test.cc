#include "crdt/anti_entropy.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/crdt/crdt_test_util.h"

namespace geoetcd {
namespace {

using crdt_test::MapKeyspace;
using crdt_test::RandomRegister;
using crdt_test::RepairRun;
using crdt_test::RunRepair;
using crdt_test::Seed;

constexpr uint64_t kSession = 77;
constexpr int64_t kRevision = 1000;

Register Reg(const std::string& key, const std::string& value, Hlc hlc, uint64_t origin = 1) {
  Register r;
  r.key = key;
  r.value = value;
  r.create_revision = 1;
  r.mod_revision = static_cast<int64_t>(hlc);
  r.version = 1;
  r.stamp = {hlc, origin};
  return r;
}

RepairRun Repair(MapKeyspace* local, const MapKeyspace& source,
                 RepairMode mode = RepairMode::kAdoptSource, Random* chaos = nullptr,
                 MerkleRepair** out = nullptr) {
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleRepair repair(local->Keyspace(), kSession, kRevision, mode);
  RepairRun run =
      RunRepair(&repair, src, [local](const RepairChange& c) { local->Apply(c); }, chaos);
  EXPECT_TRUE(repair.done());
  EXPECT_FALSE(repair.failed());
  EXPECT_EQ(repair.source_root(), source.tree().Root());
  return run;
}

// --- Digest ---------------------------------------------------------------------------

TEST(DigestTest, ProtoRoundTrip) {
  const Digest d{3, 41, 40, 17, 0xfeedfacecafebeefULL};
  EXPECT_EQ(DigestFromProto(DigestToProto(d)), d);
  EXPECT_EQ(DigestToProto(d).merkle_root(), 0xfeedfacecafebeefULL);
}

TEST(DigestTest, CompareDecidesWhoIsBehindAndHow) {
  const Digest ahead{2, 100, 100, 50, 9};
  Digest same = ahead;
  EXPECT_EQ(CompareDigests(ahead, same),
            (DigestComparison{DigestRelation::kInSync, CatchUpMethod::kNone}));
  same.merkle_root = 8;
  EXPECT_EQ(CompareDigests(ahead, same),
            (DigestComparison{DigestRelation::kDiverged, CatchUpMethod::kMerkleRepair}));

  const Digest log_reachable{2, 60, 60, 10, 1};  // 60 >= ahead's compact revision 50
  EXPECT_EQ(CompareDigests(log_reachable, ahead),
            (DigestComparison{DigestRelation::kLocalBehind, CatchUpMethod::kLog}));
  EXPECT_EQ(CompareDigests(ahead, log_reachable),
            (DigestComparison{DigestRelation::kRemoteBehind, CatchUpMethod::kLog}));

  const Digest compacted_past{2, 40, 40, 10, 1};  // 40 < 50: the log it needs is gone
  EXPECT_EQ(CompareDigests(compacted_past, ahead),
            (DigestComparison{DigestRelation::kLocalBehind, CatchUpMethod::kMerkleRepair}));

  // A later epoch is ahead even at a lower index.
  const Digest new_epoch{3, 90, 90, 10, 1};
  EXPECT_EQ(CompareDigests(ahead, new_epoch).relation, DigestRelation::kLocalBehind);
  EXPECT_EQ(CompareDigests(new_epoch, ahead).relation, DigestRelation::kRemoteBehind);
}

// --- Repair ---------------------------------------------------------------------------

TEST(MerkleRepairTest, EqualTreesCostOneRoundTrip) {
  MapKeyspace a(3), b(3);
  for (int i = 0; i < 200; ++i) {
    a.Put(Reg("k" + std::to_string(i), "v", 10));
    b.Put(Reg("k" + std::to_string(i), "v", 10));
  }
  const RepairRun run = Repair(&a, b);
  EXPECT_EQ(run.messages, 2u);
  EXPECT_LT(run.bytes, 200u);
}

TEST(MerkleRepairTest, RepairsEveryKindOfDifference) {
  MapKeyspace local(2), source(2);
  for (int i = 0; i < 300; ++i) {
    local.Put(Reg("same" + std::to_string(i), "v", 10));
    source.Put(Reg("same" + std::to_string(i), "v", 10));
  }
  local.Put(Reg("only-local", "x", 10));
  source.Put(Reg("only-source", "y", 10));
  local.Put(Reg("differs", "old", 10));
  source.Put(Reg("differs", "new", 20));
  Register tomb = Reg("deleted-at-source", "", 30);
  tomb.tombstone = true;
  local.Put(Reg("deleted-at-source", "alive", 10));
  source.Put(tomb);
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_EQ(local.tree().Root(), source.tree().Root());
  EXPECT_TRUE(run.conflicts.empty());
  local.tree().CheckInvariants();
}

TEST(MerkleRepairTest, AdoptModeReplacesNewerLocalRegistersAndReportsThem) {
  MapKeyspace local(2), source(2);
  local.Put(Reg("k", "from-old-epoch", 50));  // newer stamp than the source's
  source.Put(Reg("k", "committed", 40));
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  ASSERT_EQ(run.conflicts.size(), 1u);
  EXPECT_EQ(run.conflicts[0].local.value, "from-old-epoch");
  EXPECT_EQ(run.conflicts[0].source.value, "committed");
}

TEST(MerkleRepairTest, MergeModeKeepsWinnersAndLocalOnlyKeys) {
  MapKeyspace local(2), source(2);
  local.Put(Reg("newer-here", "mine", 50));
  source.Put(Reg("newer-here", "theirs", 40));
  local.Put(Reg("older-here", "mine", 10));
  source.Put(Reg("older-here", "theirs", 40));
  local.Put(Reg("only-local", "mine", 10));
  source.Put(Reg("only-source", "theirs", 10));
  const RepairRun run = Repair(&local, source, RepairMode::kMergeLww);
  EXPECT_EQ(local.registers().at("newer-here").value, "mine");
  EXPECT_EQ(local.registers().at("older-here").value, "theirs");
  EXPECT_EQ(local.registers().at("only-local").value, "mine");
  EXPECT_EQ(local.registers().at("only-source").value, "theirs");
  ASSERT_EQ(run.conflicts.size(), 1u);
  EXPECT_EQ(run.conflicts[0].local.key, "newer-here");
}

TEST(MerkleRepairTest, ConvergesOnRandomDivergentPairs) {
  Random rnd(Seed("MerkleRepairTest.ConvergesOnRandomDivergentPairs", 41));
  for (int round = 0; round < 60; ++round) {
    const int depth = 1 + static_cast<int>(rnd.Uniform(3));
    MapKeyspace local(depth), source(depth);
    const int keys = static_cast<int>(rnd.Uniform(1500));
    for (int i = 0; i < keys; ++i) {
      const std::string key = "key/" + std::to_string(rnd.Uniform(100000));
      const Register r = RandomRegister(rnd, key);
      const uint64_t kind = rnd.Uniform(10);
      if (kind < 6) {  // the same on both sides
        local.Put(r);
        source.Put(r);
      } else if (kind == 6) {
        local.Put(r);
      } else if (kind == 7) {
        source.Put(r);
      } else {  // on both, differing (possibly only in the tie-break)
        local.Put(r);
        Register other = RandomRegister(rnd, key);
        if (other == r) other.value += "!";
        source.Put(other);
      }
    }
    const bool chaos = rnd.Chance(0.5);
    Random chaos_rnd = rnd.Fork();
    Repair(&local, source, RepairMode::kAdoptSource, chaos ? &chaos_rnd : nullptr);
    ASSERT_EQ(local.registers(), source.registers()) << "round " << round;
    ASSERT_EQ(local.tree().Root(), source.tree().Root()) << "round " << round;
    local.tree().CheckInvariants();
  }
}

// Merge mode: afterwards every key the source has holds the LWW merge of both sides.
TEST(MerkleRepairTest, MergeModeEndsAtTheMergeOnRandomPairs) {
  Random rnd(Seed("MerkleRepairTest.MergeModeEndsAtTheMergeOnRandomPairs", 42));
  for (int round = 0; round < 40; ++round) {
    MapKeyspace local(2), source(2);
    std::map<std::string, Register> expected;
    for (int i = 0; i < 400; ++i) {
      const std::string key = "key/" + std::to_string(rnd.Uniform(300));
      if (rnd.Chance(0.5)) {
        local.Put(RandomRegister(rnd, key));
      } else {
        source.Put(RandomRegister(rnd, key));
      }
    }
    expected = local.registers();
    for (const auto& [key, r] : source.registers()) {
      auto it = expected.find(key);
      if (it == expected.end()) {
        expected[key] = r;
      } else {
        MergeInto(&it->second, r);
      }
    }
    Repair(&local, source, RepairMode::kMergeLww);
    ASSERT_EQ(local.registers(), expected) << "round " << round;
  }
}

TEST(MerkleRepairTest, LargeBucketsAreSplitWithinTheByteBound) {
  // Depth 1: 16 buckets of ~5 registers of 400 KiB: most fetches exceed the 1 MiB budget.
  MapKeyspace local(1), source(1);
  for (int i = 0; i < 80; ++i) {
    source.Put(Reg("big" + std::to_string(i), std::string(400 << 10, 'a' + i % 26), 10));
  }
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_LE(run.response_payload_bytes_max, kMerkleResponseBytesMax);
  // 1 nodes round trip, 16 bucket listings, and more than 16 register fetches.
  EXPECT_GT(run.messages, 2u * (1 + 16 + 16));
}

TEST(MerkleRepairTest, RegisterLargerThanTheBudgetTravelsAlone) {
  MapKeyspace local(1), source(1);
  source.Put(Reg("huge", std::string(kMerkleResponseBytesMax + 10, 'h'), 10));
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_GT(run.response_payload_bytes_max, kMerkleResponseBytesMax);
}

TEST(MerkleRepairTest, ManyDifferingBucketsStayWithinTheInFlightBound) {
  MapKeyspace local(3), source(3);
  for (int i = 0; i < 3000; ++i) source.Put(Reg("k" + std::to_string(i), "v", 10));
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleRepair repair(local.Keyspace(), kSession, kRevision);
  std::vector<MerkleNodesRequest> nodes{repair.Start()};
  std::vector<MerkleBucketRequest> buckets;
  std::vector<MerkleRegistersRequest> registers;
  std::set<uint64_t> in_progress;  // buckets listed or fetched, not finished
  size_t in_flight_max = 0;
  while (!nodes.empty() || !buckets.empty() || !registers.empty()) {
    absl::StatusOr<RepairStep> step;
    // Nodes first, then listings, so that buckets pile up against the bound.
    if (!nodes.empty()) {
      ASSERT_LE(static_cast<size_t>(nodes.back().indices_size()), kMerkleIndicesPerRequestMax);
      auto response = src.OnNodesRequest(nodes.back());
      nodes.pop_back();
      ASSERT_TRUE(response.ok());
      step = repair.OnNodes(*response);
    } else if (!buckets.empty()) {
      auto response = src.OnBucketRequest(buckets.back());
      buckets.pop_back();
      ASSERT_TRUE(response.ok());
      step = repair.OnBucket(*response);
    } else {
      auto response = src.OnRegistersRequest(registers.back());
      registers.pop_back();
      ASSERT_TRUE(response.ok());
      step = repair.OnRegisters(*response);
    }
    ASSERT_TRUE(step.ok()) << step.status();
    for (const RepairChange& c : step->changes) local.Apply(c);
    nodes.insert(nodes.end(), step->node_requests.begin(), step->node_requests.end());
    buckets.insert(buckets.end(), step->bucket_requests.begin(), step->bucket_requests.end());
    registers.insert(registers.end(), step->register_requests.begin(),
                     step->register_requests.end());
    for (const auto& r : step->bucket_requests) in_progress.insert(r.bucket());
    std::set<uint64_t> open;
    for (const auto& r : buckets) open.insert(r.bucket());
    for (const auto& r : registers) open.insert(r.bucket());
    in_flight_max = std::max(in_flight_max, open.size());
  }
  EXPECT_GT(in_progress.size(), kRepairBucketsInFlightMax);
  EXPECT_TRUE(repair.done());
  EXPECT_EQ(in_flight_max, kRepairBucketsInFlightMax);
  EXPECT_EQ(local.tree().Root(), source.tree().Root());
}

TEST(MerkleRepairTest, OtherSessionsAndRevisionsAreIgnored) {
  MapKeyspace local(2), source(2);
  source.Put(Reg("k", "v", 10));
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleRepair repair(local.Keyspace(), kSession, kRevision);
  MerkleNodesRequest request = repair.Start();
  MerkleNodesResponse response = *src.OnNodesRequest(request);
  MerkleNodesResponse stale = response;
  stale.set_session(kSession + 1);
  absl::StatusOr<RepairStep> step = repair.OnNodes(stale);
  ASSERT_TRUE(step.ok());
  EXPECT_TRUE(step->node_requests.empty());
  EXPECT_EQ(repair.stats().ignored_messages, 1u);
  EXPECT_FALSE(repair.done());
  step = repair.OnNodes(response);
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(step->node_requests.size(), 1u);
  step = repair.OnNodes(response);  // a duplicate
  ASSERT_TRUE(step.ok());
  EXPECT_TRUE(step->node_requests.empty());
  EXPECT_EQ(repair.stats().ignored_messages, 2u);
}

TEST(MerkleRepairTest, MalformedResponsesFailTheRepair) {
  MapKeyspace local(1), source(1);
  source.Put(Reg("k", "v", 10));
  MerkleRepairSource src(source.Keyspace(), kRevision);
  {
    MerkleRepair repair(local.Keyspace(), kSession, kRevision);
    MerkleNodesResponse response = *src.OnNodesRequest(repair.Start());
    response.mutable_nodes(0)->mutable_child_hashes()->RemoveLast();
    EXPECT_FALSE(repair.OnNodes(response).ok());
    EXPECT_TRUE(repair.failed());
    EXPECT_FALSE(repair.OnNodes(response).ok());
  }
  {
    MerkleRepair repair(local.Keyspace(), kSession, kRevision);
    absl::StatusOr<RepairStep> step = repair.OnNodes(*src.OnNodesRequest(repair.Start()));
    ASSERT_TRUE(step.ok());
    ASSERT_EQ(step->bucket_requests.size(), 1u);
    MerkleBucketResponse response = *src.OnBucketRequest(step->bucket_requests[0]);
    MerkleBucketResponse wrong_bucket_key = response;
    // A key from another bucket.
    std::string other = "x";
    while (MerkleTree::BucketOf(other, 1) == response.bucket()) other += "x";
    wrong_bucket_key.mutable_entries(0)->set_key(other);
    EXPECT_FALSE(repair.OnBucket(wrong_bucket_key).ok());
    EXPECT_TRUE(repair.failed());
  }
  {
    MerkleRepair repair(local.Keyspace(), kSession, kRevision);
    absl::StatusOr<RepairStep> step = repair.OnNodes(*src.OnNodesRequest(repair.Start()));
    MerkleBucketResponse listing = *src.OnBucketRequest(step->bucket_requests[0]);
    step = repair.OnBucket(listing);
    ASSERT_TRUE(step.ok());
    ASSERT_EQ(step->register_requests.size(), 1u);
    MerkleRegistersResponse response = *src.OnRegistersRequest(step->register_requests[0]);
    MerkleRegistersResponse truncated = response;
    truncated.mutable_registers(0)->pop_back();
    EXPECT_FALSE(repair.OnRegisters(truncated).ok());
    EXPECT_TRUE(repair.failed());
  }
  {
    MerkleRepair repair(local.Keyspace(), kSession, kRevision);
    absl::StatusOr<RepairStep> step = repair.OnNodes(*src.OnNodesRequest(repair.Start()));
    step = repair.OnBucket(*src.OnBucketRequest(step->bucket_requests[0]));
    MerkleRegistersResponse response = *src.OnRegistersRequest(step->register_requests[0]);
    MerkleRegistersResponse other_key = response;
    other_key.set_registers(0, EncodeRegister(Reg("k2", "v", 10)));
    EXPECT_FALSE(repair.OnRegisters(other_key).ok());
  }
  {
    MerkleRepair repair(local.Keyspace(), kSession, kRevision);
    absl::StatusOr<RepairStep> step = repair.OnNodes(*src.OnNodesRequest(repair.Start()));
    step = repair.OnBucket(*src.OnBucketRequest(step->bucket_requests[0]));
    MerkleRegistersResponse response = *src.OnRegistersRequest(step->register_requests[0]);
    MerkleRegistersResponse too_many = response;
    too_many.add_registers(response.registers(0));
    EXPECT_FALSE(repair.OnRegisters(too_many).ok());
  }
}

// A register batch the source cuts short is asked for again, not lost.
TEST(MerkleRepairTest, PartlyAnsweredRegisterBatchesAreRequestedAgain) {
  MapKeyspace local(1), source(1);
  // Keys of one bucket whose registers together exceed the response budget.
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 4; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (MerkleTree::BucketOf(key, 1) == 0) keys.push_back(key);
  }
  for (const std::string& key : keys) {
    source.Put(Reg(key, std::string(kMerkleResponseBytesMax / 3, 'v'), 10));
  }
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_LE(run.response_payload_bytes_max, kMerkleResponseBytesMax);
  // nodes, listing, then 4 registers of a third of the budget need two responses.
  EXPECT_EQ(run.messages, 2u * 4);
}

TEST(MerkleRepairTest, RegisterRequestsStayWithinTheKeyBound) {
  MapKeyspace local(1), source(1);
  for (int i = 0; i < 16 * 400; ++i) source.Put(Reg("k" + std::to_string(i), "v", 10));
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleRepair repair(local.Keyspace(), kSession, kRevision);
  RunRepair(&repair, src, [&](const RepairChange& c) { local.Apply(c); });
  EXPECT_EQ(local.registers(), source.registers());
  // ~400 keys per bucket and at most kMerkleKeysPerRequestMax per request (the source
  // refuses more, and RunRepair fails on a refusal): at least two requests per bucket.
  EXPECT_GE(repair.stats().register_requests, 32u);
}

TEST(MerkleRepairTest, HugeKeysSplitListingsAndRequests) {
  MapKeyspace local(1), source(1);
  for (int i = 0; i < 400; ++i) {
    std::string key(kRegisterKeyBytesMax - 16, 'k');
    key += std::to_string(i);
    source.Put(Reg(key, "", 10));
  }
  const RepairRun run = Repair(&local, source);
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_LE(run.response_payload_bytes_max, kMerkleResponseBytesMax);
  // 16 buckets of ~25 keys of 64 KiB: listings and key batches both need continuations.
  EXPECT_GT(run.messages, 2u * (1 + 2 * 16 + 2 * 16));
}

// Only the registers that differ travel, not the whole bucket.
TEST(MerkleRepairTest, OnlyDifferingRegistersAreFetched) {
  MapKeyspace local(1), source(1);
  for (int i = 0; i < 500; ++i) {
    const Register r = Reg("k" + std::to_string(i), std::string(100, 'v'), 10);
    local.Put(r);
    source.Put(r);
  }
  source.Put(Reg("k7", "changed", 20));
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleRepair repair(local.Keyspace(), kSession, kRevision);
  RunRepair(&repair, src, [&](const RepairChange& c) { local.Apply(c); });
  EXPECT_EQ(local.registers(), source.registers());
  EXPECT_EQ(repair.stats().registers_received, 1u);
  EXPECT_GT(repair.stats().key_hashes_received, 10u);  // the bucket's keys and hashes
  EXPECT_EQ(repair.stats().changes, 1u);
}

TEST(MerkleRepairSourceTest, RejectsRequestsOutsideItsBounds) {
  MapKeyspace source(2);
  MerkleRepairSource src(source.Keyspace(), kRevision);
  MerkleNodesRequest ok;
  ok.set_revision(kRevision);
  ok.set_depth(2);
  ok.set_level(1);
  ok.add_indices(3);
  ok.add_indices(15);
  EXPECT_TRUE(src.OnNodesRequest(ok).ok());

  MerkleNodesRequest r = ok;
  r.set_revision(kRevision + 1);
  EXPECT_EQ(src.OnNodesRequest(r).status().code(), absl::StatusCode::kFailedPrecondition);
  r = ok;
  r.set_depth(3);
  EXPECT_EQ(src.OnNodesRequest(r).status().code(), absl::StatusCode::kInvalidArgument);
  r = ok;
  r.set_level(2);  // leaves have no children
  EXPECT_FALSE(src.OnNodesRequest(r).ok());
  r = ok;
  r.add_indices(16);  // out of range at level 1
  EXPECT_FALSE(src.OnNodesRequest(r).ok());
  r = ok;
  r.add_indices(3);  // out of order
  EXPECT_FALSE(src.OnNodesRequest(r).ok());
  r = ok;
  r.clear_indices();
  EXPECT_FALSE(src.OnNodesRequest(r).ok());
  MerkleNodesRequest many = ok;
  many.set_depth(2);
  many.clear_indices();
  many.set_level(1);
  for (uint64_t i = 0; i < 16; ++i) many.add_indices(i);
  EXPECT_TRUE(src.OnNodesRequest(many).ok());
  MapKeyspace deep(3);
  MerkleRepairSource deep_src(deep.Keyspace(), kRevision);
  many.set_depth(3);
  many.set_level(2);
  many.clear_indices();
  for (uint64_t i = 0; i <= kMerkleIndicesPerRequestMax; ++i) many.add_indices(i);
  EXPECT_FALSE(deep_src.OnNodesRequest(many).ok());
  many.mutable_indices()->RemoveLast();
  EXPECT_TRUE(deep_src.OnNodesRequest(many).ok());

  MerkleRegistersRequest fetch;
  fetch.set_revision(kRevision);
  fetch.set_depth(2);
  std::vector<std::string> bucket_keys;
  for (int i = 0; bucket_keys.size() <= kMerkleKeysPerRequestMax; ++i) {
    const std::string key = "k" + std::to_string(i);
    if (MerkleTree::BucketOf(key, 2) == 9) bucket_keys.push_back(key);
  }
  std::sort(bucket_keys.begin(), bucket_keys.end());
  fetch.set_bucket(9);
  for (size_t i = 0; i < kMerkleKeysPerRequestMax; ++i) fetch.add_keys(bucket_keys[i]);
  absl::StatusOr<MerkleRegistersResponse> fetched = src.OnRegistersRequest(fetch);
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(fetched->registers_size(), static_cast<int>(kMerkleKeysPerRequestMax));
  EXPECT_TRUE(fetched->registers(0).empty());  // the source has no such key
  MerkleRegistersRequest bad = fetch;
  bad.add_keys(bucket_keys[kMerkleKeysPerRequestMax]);  // one key too many
  EXPECT_FALSE(src.OnRegistersRequest(bad).ok());
  bad = fetch;
  bad.set_bucket(10);  // keys not in the bucket
  EXPECT_FALSE(src.OnRegistersRequest(bad).ok());
  bad = fetch;
  bad.mutable_keys()->SwapElements(0, 1);  // out of order
  EXPECT_FALSE(src.OnRegistersRequest(bad).ok());
  bad = fetch;
  bad.clear_keys();
  EXPECT_FALSE(src.OnRegistersRequest(bad).ok());

  MerkleBucketRequest bucket;
  bucket.set_revision(kRevision);
  bucket.set_depth(2);
  bucket.set_bucket(255);
  EXPECT_TRUE(src.OnBucketRequest(bucket).ok());
  bucket.set_bucket(256);
  EXPECT_FALSE(src.OnBucketRequest(bucket).ok());
}

}  // namespace
}  // namespace geoetcd
