// Leases in the checkers, on hand-made histories: lease deletions (revoke or expiry) are
// accounted for by the KV checkers, and the lease checker rejects each defect it exists to
// find.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sim/checkers.h"
#include "sim/lease_view.h"

namespace geoetcd::sim {
namespace {

constexpr int64_t kMs = 1000;
constexpr int64_t kSec = 1'000'000;
constexpr int64_t kLease = 77;

mvccpb::KeyValue Kv(const std::string& key, const std::string& value, int64_t create, int64_t mod,
                    int64_t version, int64_t lease = 0) {
  mvccpb::KeyValue kv;
  kv.set_key(key);
  kv.set_value(value);
  kv.set_create_revision(create);
  kv.set_mod_revision(mod);
  kv.set_version(version);
  kv.set_lease(lease);
  return kv;
}

class LeaseHistory {
 public:
  LeaseHistory() { h.lease_ttl_min_s = 1; }

  HistoryOp& Add(OpKind kind, int64_t invoke, int64_t complete, OpOutcome outcome) {
    HistoryOp op;
    op.index = static_cast<int64_t>(h.ops.size());
    op.client = static_cast<int32_t>(h.ops.size() % 4);
    op.call.kind = kind;
    op.invoke_us = invoke;
    op.complete_us = outcome == OpOutcome::kUnknown ? kNeverUs : complete;
    op.outcome = outcome;
    h.ops.push_back(std::move(op));
    return h.ops.back();
  }
  void Grant(int64_t id, int64_t ttl, int64_t invoke, int64_t complete, int64_t rev) {
    HistoryOp& op = Add(OpKind::kLeaseGrant, invoke, complete, OpOutcome::kOk);
    op.call.lease_grant.set_id(id);
    op.call.lease_grant.set_ttl(ttl);
    op.lease_grant_response.set_id(id);
    op.lease_grant_response.set_ttl(ttl);
    op.lease_grant_response.mutable_header()->set_revision(rev);
  }
  HistoryOp& Put(const std::string& key, const std::string& value, int64_t lease, int64_t invoke,
                 int64_t complete, int64_t rev, OpOutcome outcome = OpOutcome::kOk) {
    HistoryOp& op = Add(OpKind::kPut, invoke, complete, outcome);
    auto* put = op.call.request.mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    put->set_lease(lease);
    if (outcome == OpOutcome::kOk) op.response.mutable_response_put()->mutable_header()->set_revision(rev);
    return op;
  }
  void Get(const std::string& key, const std::string& end, int64_t invoke, int64_t complete,
           int64_t rev, const std::vector<mvccpb::KeyValue>& kvs) {
    HistoryOp& op = Add(OpKind::kRange, invoke, complete, OpOutcome::kOk);
    op.call.request.mutable_request_range()->set_key(key);
    op.call.request.mutable_request_range()->set_range_end(end);
    auto* resp = op.response.mutable_response_range();
    resp->mutable_header()->set_revision(rev);
    resp->set_count(static_cast<int64_t>(kvs.size()));
    for (const auto& kv : kvs) *resp->add_kvs() = kv;
  }
  void Revoke(int64_t id, int64_t invoke, int64_t complete, int64_t rev) {
    HistoryOp& op = Add(OpKind::kLeaseRevoke, invoke, complete, OpOutcome::kOk);
    op.call.lease_revoke.set_id(id);
    op.lease_revoke_response.mutable_header()->set_revision(rev);
  }
  void KeepAlive(int64_t id, int64_t ttl, int64_t invoke, int64_t complete, int64_t rev) {
    HistoryOp& op = Add(OpKind::kLeaseKeepAlive, invoke, complete, OpOutcome::kOk);
    op.call.lease_keep_alive.set_id(id);
    op.lease_keep_alive_response.set_id(id);
    op.lease_keep_alive_response.set_ttl(ttl);
    op.lease_keep_alive_response.mutable_header()->set_revision(rev);
  }
  void TimeToLive(int64_t id, int64_t ttl, int64_t granted, int64_t invoke, int64_t complete,
                  int64_t rev) {
    HistoryOp& op = Add(OpKind::kLeaseTimeToLive, invoke, complete, OpOutcome::kOk);
    op.call.lease_time_to_live.set_id(id);
    op.lease_time_to_live_response.set_id(id);
    op.lease_time_to_live_response.set_ttl(ttl);
    op.lease_time_to_live_response.set_grantedttl(granted);
    op.lease_time_to_live_response.mutable_header()->set_revision(rev);
  }
  void Crash(int64_t at, int64_t restart, int64_t recovered) {
    CrashRecord c;
    c.crash_us = at;
    c.restart_us = restart;
    c.recovered_revision = recovered;
    h.crashes.push_back(c);
  }

  // A lease with keys a and b (revisions 2 and 3), granted with TTL 2 s at 0.
  void LeaseWithTwoKeys() {
    Grant(kLease, 2, 0, 1 * kMs, 1);
    Put("a", "va", kLease, 2 * kMs, 3 * kMs, 2);
    Put("b", "vb", kLease, 4 * kMs, 5 * kMs, 3);
    Get("a", "c", 6 * kMs, 7 * kMs, 3, {Kv("a", "va", 2, 2, 1, kLease), Kv("b", "vb", 3, 3, 1, kLease)});
  }

  History h;
};

TEST(LeaseCheckersTest, AnExpiryDeletesEveryKeyOfItsLeaseInOneRevisionNobodyAskedFor) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  // The lease expired: revision 4 deleted both keys, and no client made it.
  b.Get("a", "c", 3 * kSec, 3 * kSec + kMs, 4, {});
  b.Put("c", "vc", 0, 3 * kSec + 2 * kMs, 3 * kSec + 3 * kMs, 5);
  b.TimeToLive(kLease, -1, 0, 3 * kSec + 4 * kMs, 3 * kSec + 5 * kMs, 5);
  const CheckResult r = CheckHistory(b.h, CheckOptions());
  EXPECT_TRUE(r.ok) << r.checker << ": " << r.detail;
}

TEST(LeaseCheckersTest, AnExpiryDeletingKeysOneRevisionAtATimeIsCaught) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.Get("a", "c", 3 * kSec, 3 * kSec + kMs, 4, {Kv("b", "vb", 3, 3, 1, kLease)});
  b.Get("a", "c", 3 * kSec + 2 * kMs, 3 * kSec + 3 * kMs, 5, {});
  const CheckResult r = CheckHistory(b.h, CheckOptions());
  EXPECT_FALSE(r.ok);
  // Two revisions, but the lease's deletion can make only one.
  EXPECT_EQ(r.checker, "revision") << r.detail;
  EXPECT_EQ(CheckLinearizability(b.h, CheckOptions()).checker, "linearizability");
}

TEST(LeaseCheckersTest, AnAcknowledgedRevokeMakesItsCommitAtItsRevision) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.Revoke(kLease, 10 * kMs, 11 * kMs, 4);
  b.Get("a", "c", 12 * kMs, 13 * kMs, 4, {});
  EXPECT_TRUE(CheckHistory(b.h, CheckOptions()).ok);

  LeaseHistory split;  // revoke answered at 5, but its keys went at 4 and 5
  split.LeaseWithTwoKeys();
  split.Revoke(kLease, 10 * kMs, 14 * kMs, 5);
  split.Get("a", "c", 11 * kMs, 12 * kMs, 4, {Kv("b", "vb", 3, 3, 1, kLease)});
  split.Get("a", "c", 15 * kMs, 16 * kMs, 5, {});
  EXPECT_FALSE(CheckLinearizability(split.h, CheckOptions()).ok);
}

TEST(LeaseCheckersTest, KeysOfARevokedLeaseAreNeverSeenAgain) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.Revoke(kLease, 10 * kMs, 11 * kMs, 4);
  b.Get("a", "c", 12 * kMs, 13 * kMs, 4, {Kv("a", "va", 2, 2, 1, kLease)});
  EXPECT_EQ(CheckLeases(b.h, CheckOptions()).checker, "lease");
  EXPECT_FALSE(CheckHistory(b.h, CheckOptions()).ok);
}

TEST(LeaseCheckersTest, ALeaseKnownGoneStaysGone) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.KeepAlive(kLease, 0, 3 * kSec, 3 * kSec + kMs, 4);  // expired
  b.Put("d", "vd", kLease, 3 * kSec + 2 * kMs, 3 * kSec + 3 * kMs, 5);  // yet it takes a key
  EXPECT_EQ(CheckLeases(b.h, CheckOptions()).checker, "lease");

  LeaseHistory seen;
  seen.LeaseWithTwoKeys();
  seen.KeepAlive(kLease, 0, 3 * kSec, 3 * kSec + kMs, 3);  // "gone", but its keys remain
  seen.Get("a", "c", 3 * kSec + 2 * kMs, 3 * kSec + 3 * kMs, 3,
           {Kv("a", "va", 2, 2, 1, kLease), Kv("b", "vb", 3, 3, 1, kLease)});
  EXPECT_EQ(CheckLeases(seen.h, CheckOptions()).checker, "lease");
}

TEST(LeaseCheckersTest, UnknownLeasesAnswerLikeEtcd) {
  LeaseHistory b;
  b.KeepAlive(999, 0, 0, kMs, 1);
  b.TimeToLive(999, -1, 0, 2 * kMs, 3 * kMs, 1);
  EXPECT_TRUE(CheckLeases(b.h, CheckOptions()).ok);
  b.KeepAlive(998, 5, 4 * kMs, 5 * kMs, 1);
  EXPECT_EQ(CheckLeases(b.h, CheckOptions()).checker, "lease");

  LeaseHistory put;
  put.Put("a", "va", 999, 0, kMs, 2);  // a lease nobody granted
  EXPECT_EQ(CheckLeases(put.h, CheckOptions()).checker, "lease");
}

TEST(LeaseCheckersTest, ALeaseLivesItsTtl) {
  LeaseHistory b;
  b.Grant(kLease, 10, 0, kMs, 1);
  b.KeepAlive(kLease, 0, 5 * kSec, 5 * kSec + kMs, 1);  // gone after 5 of 10 s
  EXPECT_EQ(CheckLeases(b.h, CheckOptions()).checker, "lease");

  LeaseHistory late;
  late.Grant(kLease, 10, 0, kMs, 1);
  late.KeepAlive(kLease, 0, 12 * kSec, 12 * kSec + kMs, 1);
  EXPECT_TRUE(CheckLeases(late.h, CheckOptions()).ok);
}

TEST(LeaseCheckersTest, ARestartGrantsLeasesTheirFullTtlAgain) {
  LeaseHistory b;
  b.Grant(kLease, 10, 0, kMs, 1);
  b.Crash(5 * kSec, 5 * kSec + 100 * kMs, 1);
  b.TimeToLive(kLease, 9, 10, 6 * kSec, 6 * kSec + kMs, 1);
  EXPECT_TRUE(CheckLeases(b.h, CheckOptions()).ok);

  LeaseHistory kept_deadline;  // the old deadline survived the restart: 4 s left, not 9
  kept_deadline.Grant(kLease, 10, 0, kMs, 1);
  kept_deadline.Crash(5 * kSec, 5 * kSec + 100 * kMs, 1);
  kept_deadline.TimeToLive(kLease, 4, 10, 6 * kSec, 6 * kSec + kMs, 1);
  EXPECT_EQ(CheckLeases(kept_deadline.h, CheckOptions()).checker, "lease");

  LeaseHistory lost;  // gone 12 s after the grant, but 7 s after the restart
  lost.Grant(kLease, 10, 0, kMs, 1);
  lost.Crash(5 * kSec, 5 * kSec + 100 * kMs, 1);
  lost.KeepAlive(kLease, 0, 12 * kSec, 12 * kSec + kMs, 1);
  EXPECT_EQ(CheckLeases(lost.h, CheckOptions()).checker, "lease");
}

TEST(LeaseCheckersTest, PerKeyWglAcceptsAnExpiryAndRejectsAKeyThatOutlivesItsRevoke) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.Get("a", "", 3 * kSec, 3 * kSec + kMs, 4, {});  // expired
  EXPECT_TRUE(CheckPerKeyWgl(b.h, CheckOptions()).ok);

  LeaseHistory revoked;
  revoked.LeaseWithTwoKeys();
  revoked.Revoke(kLease, 10 * kMs, 11 * kMs, 4);
  revoked.Get("a", "", 12 * kMs, 13 * kMs, 4, {Kv("a", "va", 2, 2, 1, kLease)});
  EXPECT_EQ(CheckPerKeyWgl(revoked.h, CheckOptions()).checker, "wgl");
}

TEST(LeaseCheckersTest, OneDeleterPerLeaseThatKeysWereAttachedTo) {
  LeaseHistory b;
  b.LeaseWithTwoKeys();
  b.Grant(88, 5, 0, kMs, 1);  // no keys: its expiry changes nothing
  std::vector<HistoryOp> synthetic;
  const std::vector<LeaseDeleter> deleters = LeaseDeleters(BuildLeaseViews(b.h), &synthetic);
  ASSERT_EQ(deleters.size(), 1u);
  EXPECT_EQ(deleters[0].lease, kLease);
  EXPECT_EQ(deleters[0].fixed_revision, 0);
  EXPECT_EQ(deleters[0].op->outcome, OpOutcome::kUnknown);
  EXPECT_EQ(deleters[0].op->invoke_us, 0);
}

}  // namespace
}  // namespace geoetcd::sim
