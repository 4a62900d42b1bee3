// The space quota and alarms (core/quota.h) and how the Node applies them, over MemoryStorage
// and a hand-driven clock. Expected behaviours follow etcd 3.4 (cross-checked against a real
// etcd by tests/conformance/alarm_conformance_test.py).
#include "core/quota.h"

#include <memory>
#include <optional>
#include <string>

#include "core/memory_storage.h"
#include "core/node.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"

namespace geoetcd {
namespace {

using etcdserverpb::AlarmRequest;
using etcdserverpb::AlarmResponse;
using etcdserverpb::PutRequest;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

constexpr uint64_t kMemberId = 22;

PutRequest MakePut(const std::string& key, size_t value_bytes) {
  PutRequest p;
  p.set_key(key);
  p.set_value(std::string(value_bytes, 'v'));
  return p;
}

TEST(QuotaCostTest, PutCostsKeyValueAndEtcdsOverhead) {
  EXPECT_EQ(PutCostBytes(MakePut("key", 10)), 3 + 10 + 256);
  EXPECT_EQ(KeyVersionBytes(3, 10), 3 + 10 + 256);
  EXPECT_EQ(kLeaseOverheadBytes, 64);
}

TEST(QuotaCostTest, TxnCostsItsLargerBranchNestedPutsIncluded) {
  TxnRequest t;
  EXPECT_EQ(TxnCostBytes(t), 0);
  t.add_success()->mutable_request_delete_range()->set_key("d");
  t.add_success()->mutable_request_range()->set_key("r");
  EXPECT_EQ(TxnCostBytes(t), 0);  // no puts: costs nothing
  *t.add_success()->mutable_request_put() = MakePut("a", 1);     // 258
  *t.add_failure()->mutable_request_put() = MakePut("b", 100);   // 357
  EXPECT_EQ(TxnCostBytes(t), 357);
  TxnRequest nested;
  *nested.add_failure()->mutable_request_put() = MakePut("c", 500);  // 757
  *t.add_success()->mutable_request_txn() = nested;
  EXPECT_EQ(TxnCostBytes(t), 258 + 757);
}

TEST(QuotaCheckTest, Verdicts) {
  EXPECT_EQ(CheckQuota(1000, 900, 100, false), QuotaVerdict::kAdmit);  // exactly at the quota
  EXPECT_EQ(CheckQuota(1000, 900, 101, false), QuotaVerdict::kExceeded);
  EXPECT_EQ(CheckQuota(1000, 0, 1, true), QuotaVerdict::kAlarmActive);
  EXPECT_EQ(CheckQuota(1000, 5000, 0, true), QuotaVerdict::kAdmit);  // costs nothing
  EXPECT_EQ(CheckQuota(-1, int64_t{1} << 50, 1 << 20, false), QuotaVerdict::kAdmit);
  EXPECT_EQ(CheckQuota(-1, 0, 1, true), QuotaVerdict::kAlarmActive);
}

TEST(AlarmSetTest, ActivateDeactivateGetAndRecordRoundTrip) {
  AlarmSet set;
  EXPECT_TRUE(set.Activate(9, etcdserverpb::NOSPACE));
  EXPECT_FALSE(set.Activate(9, etcdserverpb::NOSPACE));
  EXPECT_TRUE(set.Activate(3, etcdserverpb::NOSPACE));
  EXPECT_TRUE(set.Activate(7, etcdserverpb::NONE));
  EXPECT_TRUE(set.Has(etcdserverpb::NOSPACE));
  EXPECT_FALSE(set.Has(etcdserverpb::CORRUPT));
  auto all = set.Get(etcdserverpb::NONE);
  ASSERT_EQ(all.size(), 3u);  // by type, then member
  EXPECT_EQ(all[0].memberid(), 7u);
  EXPECT_EQ(all[1].memberid(), 3u);
  EXPECT_EQ(all[2].memberid(), 9u);
  EXPECT_EQ(set.Get(etcdserverpb::NOSPACE).size(), 2u);
  EXPECT_TRUE(set.Get(etcdserverpb::CORRUPT).empty());

  auto decoded = AlarmSet::Decode(set.Encode());
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->Get(etcdserverpb::NONE).size(), 3u);
  EXPECT_FALSE(AlarmSet::Decode("\xff\xff").ok());

  EXPECT_FALSE(set.Deactivate(9, etcdserverpb::CORRUPT));
  EXPECT_TRUE(set.Deactivate(9, etcdserverpb::NOSPACE));
  EXPECT_TRUE(set.Deactivate(3, etcdserverpb::NOSPACE));
  EXPECT_FALSE(set.Has(etcdserverpb::NOSPACE));
}

TEST(AlarmSetTest, TextIsWhatEtcdPrints) {
  etcdserverpb::AlarmMember m;
  m.set_memberid(13668033151171901709u);
  m.set_alarm(etcdserverpb::NOSPACE);
  EXPECT_EQ(AlarmText(m), "memberID:13668033151171901709 alarm:NOSPACE ");
  m.set_alarm(etcdserverpb::NONE);
  EXPECT_EQ(AlarmText(m), "memberID:13668033151171901709 ");
}

class NodeQuotaTest : public ::testing::Test {
 protected:
  // A quota that holds exactly two 1 KiB puts of key "kN" (2 bytes) and nothing more.
  static constexpr int64_t kQuotaBytes = 2 * (2 + 1024 + 256);

  NodeQuotaTest() : executor_(&clock_), storage_(&executor_) { Restart(); }

  void Restart() {
    node_.reset();
    NodeOptions options;
    options.cluster_id = 11;
    options.member_id = kMemberId;
    options.quota_bytes = quota_bytes_;
    Ports ports;
    ports.clock = &clock_;
    ports.executor = &executor_;
    ports.storage = &storage_;
    node_ = std::make_unique<Node>(options, ports, Random(1));
    ASSERT_TRUE(node_->Start().ok());
  }

  template <typename Resp, typename Req>
  absl::StatusOr<Resp> Call(void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>),
                            const Req& req) {
    std::optional<absl::StatusOr<Resp>> out;
    (node_.get()->*method)(RequestContext(), req, [&](absl::StatusOr<Resp> r) { out = r; });
    EXPECT_FALSE(out.has_value()) << "reply ran inline";
    executor_.AdvanceMs(10);
    EXPECT_TRUE(out.has_value()) << "no reply";
    if (!out) return absl::InternalError("no reply");
    node_->CheckInvariants();
    return *out;
  }

  absl::Status Put(const std::string& key, size_t value_bytes, int64_t lease = 0) {
    PutRequest p = MakePut(key, value_bytes);
    p.set_lease(lease);
    return Call(&Node::Put, p).status();
  }

  absl::StatusOr<AlarmResponse> Alarm(AlarmRequest::AlarmAction action,
                                      etcdserverpb::AlarmType type = etcdserverpb::NONE,
                                      uint64_t member = 0) {
    AlarmRequest req;
    req.set_action(action);
    req.set_alarm(type);
    req.set_memberid(member);
    return Call(&Node::Alarm, req);
  }

  bool Armed() {
    auto r = Alarm(AlarmRequest::GET, etcdserverpb::NOSPACE);
    return r.ok() && r->alarms_size() > 0;
  }

  // Fills the quota to one byte short (with the lease of a test that granted one) and raises
  // NOSPACE with a put that does not fit.
  void Arm() {
    ASSERT_TRUE(Put("k1", 1024).ok());
    ASSERT_TRUE(Put("k2", 1023).ok());
    EXPECT_EQ(node_->used_bytes(), quota_bytes_ - 1);
    ExpectNoSpace(Put("k3", 0));
    ASSERT_TRUE(Armed());
  }

  static void ExpectNoSpace(const absl::Status& s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(s.message(), "etcdserver: mvcc: database space exceeded");
  }

  int64_t quota_bytes_ = kQuotaBytes;
  testing::ManualClock clock_;
  testing::ManualExecutor executor_;
  MemoryStorage storage_;
  std::unique_ptr<Node> node_;
};

TEST_F(NodeQuotaTest, PutLandingExactlyOnTheQuotaIsAccepted) {
  ASSERT_TRUE(Put("k1", 1024).ok());
  ASSERT_TRUE(Put("k2", 1024).ok());
  EXPECT_EQ(node_->used_bytes(), kQuotaBytes);
  EXPECT_FALSE(Armed());
  // Nothing more fits, not even an empty value.
  ExpectNoSpace(Put("k", 0));
  EXPECT_TRUE(Armed());
}

TEST_F(NodeQuotaTest, PutOneByteOverTheQuotaIsRefusedAndRaisesNospace) {
  ASSERT_TRUE(Put("k1", 1024).ok());
  ExpectNoSpace(Put("k2", 1025));
  auto alarms = Alarm(AlarmRequest::GET);
  ASSERT_TRUE(alarms.ok());
  ASSERT_EQ(alarms->alarms_size(), 1);
  EXPECT_EQ(alarms->alarms(0).memberid(), kMemberId);
  EXPECT_EQ(alarms->alarms(0).alarm(), etcdserverpb::NOSPACE);
  EXPECT_FALSE(alarms->has_header());  // as etcd
  EXPECT_EQ(node_->head_revision(), 2);  // the refused put changed nothing
  EXPECT_EQ(node_->used_bytes(), 2 + 1024 + 256);
}

TEST_F(NodeQuotaTest, WhileArmedWritesThatAddDataAreRefusedAndTheRestIsServed) {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_id(5);
  grant.set_ttl(60);
  ASSERT_TRUE(Call(&Node::LeaseGrant, grant).ok());
  quota_bytes_ = kQuotaBytes + kLeaseOverheadBytes;
  Restart();
  Arm();

  ExpectNoSpace(Put("tiny", 0));
  grant.set_id(6);
  ExpectNoSpace(Call(&Node::LeaseGrant, grant).status());
  grant.set_ttl(9'000'000'001);  // etcd refuses for space before it looks at the TTL
  ExpectNoSpace(Call(&Node::LeaseGrant, grant).status());

  TxnRequest txn_put;
  *txn_put.add_success()->mutable_request_put() = MakePut("t", 0);
  ExpectNoSpace(Call(&Node::Txn, txn_put).status());
  TxnRequest failure_put;  // only the branch not taken puts: still costs, as in etcd
  *failure_put.add_failure()->mutable_request_put() = MakePut("t", 0);
  ExpectNoSpace(Call(&Node::Txn, failure_put).status());
  TxnRequest nested_put;
  *nested_put.add_success()->mutable_request_txn()->add_success()->mutable_request_put() =
      MakePut("t", 0);
  ExpectNoSpace(Call(&Node::Txn, nested_put).status());

  etcdserverpb::RangeRequest range;
  range.set_key("k1");
  EXPECT_EQ(Call(&Node::Range, range)->count(), 1);
  TxnRequest txn_delete;
  txn_delete.add_success()->mutable_request_delete_range()->set_key("k1");
  EXPECT_EQ(Call(&Node::Txn, txn_delete)->responses(0).response_delete_range().deleted(), 1);
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("k2");
  EXPECT_EQ(Call(&Node::DeleteRange, del)->deleted(), 1);
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(node_->head_revision());
  EXPECT_TRUE(Call(&Node::Compact, compact).ok());
  etcdserverpb::LeaseKeepAliveRequest keepalive;
  keepalive.set_id(5);
  EXPECT_EQ(Call(&Node::LeaseKeepAlive, keepalive)->ttl(), 60);
  etcdserverpb::LeaseTimeToLiveRequest ttl;
  ttl.set_id(5);
  EXPECT_GT(Call(&Node::LeaseTimeToLive, ttl)->ttl(), 0);
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(5);
  EXPECT_TRUE(Call(&Node::LeaseRevoke, revoke).ok());
  // Space was freed, but the alarm stays until it is disarmed (as in etcd).
  EXPECT_TRUE(Armed());
  ExpectNoSpace(Put("tiny", 0));
}

TEST_F(NodeQuotaTest, DisarmRestoresWritesUntilTheQuotaIsExceededAgain) {
  Arm();  // k1 (rev 2) and k2 (rev 3) use kQuotaBytes - 1
  // Free space while armed: delete k1 (its tombstone at rev 4 stays, the put goes).
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("k1");
  ASSERT_TRUE(Call(&Node::DeleteRange, del).ok());
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(4);
  ASSERT_TRUE(Call(&Node::Compact, compact).ok());
  const int64_t used = (2 + 1023 + 256) + (2 + 0 + 256);
  EXPECT_EQ(node_->used_bytes(), used);
  const size_t fits = static_cast<size_t>(kQuotaBytes - used - 2 - 256);
  ExpectNoSpace(Put("k3", fits));  // fits, but the alarm is still active

  auto disarmed = Alarm(AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE, kMemberId);
  ASSERT_TRUE(disarmed.ok());
  ASSERT_EQ(disarmed->alarms_size(), 1);
  EXPECT_EQ(disarmed->alarms(0).memberid(), kMemberId);
  EXPECT_FALSE(Armed());
  ASSERT_TRUE(Put("k3", fits).ok());
  EXPECT_EQ(node_->used_bytes(), kQuotaBytes);
  ExpectNoSpace(Put("k4", 0));
  EXPECT_TRUE(Armed());
}

TEST_F(NodeQuotaTest, AlarmSurvivesRestart) {
  Arm();
  Restart();
  EXPECT_TRUE(Armed());
  ExpectNoSpace(Put("x", 0));
  ASSERT_TRUE(Alarm(AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE, kMemberId).ok());
  Restart();
  EXPECT_FALSE(Armed());
}

TEST_F(NodeQuotaTest, UsedBytesAreRecoveredAtStartAndFreedByCompaction) {
  quota_bytes_ = -1;  // no quota: only the accounting is under test
  Restart();
  ASSERT_TRUE(Put("a", 10).ok());                      // 267
  ASSERT_TRUE(Put("a", 20).ok());                      // 277
  etcdserverpb::DeleteRangeRequest del;
  del.set_key("a");
  ASSERT_TRUE(Call(&Node::DeleteRange, del).ok());     // tombstone: 257
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_id(8);
  grant.set_ttl(60);
  ASSERT_TRUE(Call(&Node::LeaseGrant, grant).ok());    // 64
  ASSERT_TRUE(Put("bb", 5).ok());                      // 263
  const int64_t used = 267 + 277 + 257 + 64 + 263;
  EXPECT_EQ(node_->used_bytes(), used);
  Restart();
  EXPECT_EQ(node_->used_bytes(), used);
  // Compacting past the delete drops the key's whole history.
  etcdserverpb::CompactionRequest compact;
  compact.set_revision(node_->head_revision());
  ASSERT_TRUE(Call(&Node::Compact, compact).ok());
  EXPECT_EQ(node_->used_bytes(), 64 + 263);
  Restart();
  EXPECT_EQ(node_->used_bytes(), 64 + 263);
}

TEST_F(NodeQuotaTest, NegativeQuotaDisablesTheLimitButAnActivatedAlarmStillHolds) {
  quota_bytes_ = -1;
  Restart();
  ASSERT_TRUE(Put("big", 1 << 20).ok());
  auto raised = Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NOSPACE, 5);
  ASSERT_TRUE(raised.ok());
  ASSERT_EQ(raised->alarms_size(), 1);
  EXPECT_EQ(raised->alarms(0).memberid(), 5u);
  ExpectNoSpace(Put("small", 1));
}

TEST_F(NodeQuotaTest, AlarmRpcAsEtcd) {
  // ACTIVATE answers with the alarm even when it is already active.
  for (int i = 0; i < 2; ++i) {
    auto r = Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NOSPACE, 5);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->alarms_size(), 1);
  }
  ASSERT_TRUE(Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NONE, 7).ok());
  EXPECT_EQ(Alarm(AlarmRequest::GET)->alarms_size(), 2);
  EXPECT_EQ(Alarm(AlarmRequest::GET, etcdserverpb::NOSPACE)->alarms_size(), 1);
  EXPECT_EQ(Alarm(AlarmRequest::GET, etcdserverpb::CORRUPT)->alarms_size(), 0);
  // Deactivating what is not active answers no alarm.
  EXPECT_EQ(Alarm(AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE, 6)->alarms_size(), 0);
  EXPECT_EQ(Alarm(AlarmRequest::DEACTIVATE, etcdserverpb::CORRUPT, 5)->alarms_size(), 0);
  auto corrupt = Alarm(AlarmRequest::ACTIVATE, etcdserverpb::CORRUPT, 5);
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kUnimplemented);
  ASSERT_EQ(node_->alarms().size(), 2u);
  EXPECT_EQ(AlarmText(node_->alarms()[1]), "memberID:5 alarm:NOSPACE ");
  EXPECT_EQ(Alarm(AlarmRequest::DEACTIVATE, etcdserverpb::NOSPACE, 5)->alarms_size(), 1);
  EXPECT_TRUE(Put("k1", 1).ok());
}

TEST_F(NodeQuotaTest, AlarmsPerAccountAreBounded) {
  for (size_t i = 0; i < kAlarmsMax; ++i) {
    ASSERT_TRUE(Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NONE, i + 1).ok());
  }
  auto r = Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NONE, kAlarmsMax + 1);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Alarm(AlarmRequest::ACTIVATE, etcdserverpb::NONE, 1).ok());  // already active
  EXPECT_EQ(node_->alarms().size(), kAlarmsMax);
}

}  // namespace
}  // namespace geoetcd
