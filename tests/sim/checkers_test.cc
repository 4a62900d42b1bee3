// The checkers on hand-made histories: each accepts a linearizable history and rejects a
// history with the defect it exists to find.
#include "sim/checkers.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd::sim {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;

mvccpb::KeyValue Kv(const std::string& key, const std::string& value, int64_t create, int64_t mod,
                    int64_t version) {
  mvccpb::KeyValue kv;
  kv.set_key(key);
  kv.set_value(value);
  kv.set_create_revision(create);
  kv.set_mod_revision(mod);
  kv.set_version(version);
  return kv;
}

// Builds histories op by op. Times are in microseconds.
class Builder {
 public:
  HistoryOp& Add(int32_t client, OpKind kind, RequestOp request, int64_t invoke, int64_t complete,
                 OpOutcome outcome) {
    HistoryOp op;
    op.index = static_cast<int64_t>(h.ops.size());
    op.client = client;
    op.call.kind = kind;
    op.call.request = std::move(request);
    op.invoke_us = invoke;
    op.complete_us = outcome == OpOutcome::kUnknown ? kNeverUs : complete;
    op.outcome = outcome;
    h.ops.push_back(std::move(op));
    return h.ops.back();
  }

  static RequestOp PutReq(const std::string& key, const std::string& value) {
    RequestOp r;
    r.mutable_request_put()->set_key(key);
    r.mutable_request_put()->set_value(value);
    return r;
  }

  void Put(int32_t client, const std::string& key, const std::string& value, int64_t invoke,
           int64_t complete, int64_t rev) {
    Add(client, OpKind::kPut, PutReq(key, value), invoke, complete, OpOutcome::kOk)
        .response.mutable_response_put()
        ->mutable_header()
        ->set_revision(rev);
  }

  void UnknownPut(int32_t client, const std::string& key, const std::string& value,
                  int64_t invoke) {
    Add(client, OpKind::kPut, PutReq(key, value), invoke, 0, OpOutcome::kUnknown);
  }

  // A read of [key, end) (end empty: one key) answering at `rev` with `kvs`.
  void Get(int32_t client, const std::string& key, const std::string& end, int64_t invoke,
           int64_t complete, int64_t rev, const std::vector<mvccpb::KeyValue>& kvs) {
    RequestOp r;
    r.mutable_request_range()->set_key(key);
    r.mutable_request_range()->set_range_end(end);
    auto& resp = *Add(client, OpKind::kRange, r, invoke, complete, OpOutcome::kOk)
                      .response.mutable_response_range();
    resp.mutable_header()->set_revision(rev);
    resp.set_count(static_cast<int64_t>(kvs.size()));
    for (const auto& kv : kvs) *resp.add_kvs() = kv;
  }

  // if mod(key) == mod then put key=value else get key.
  HistoryOp& Cas(int32_t client, const std::string& key, int64_t mod, const std::string& value,
                 int64_t invoke, int64_t complete, OpOutcome outcome) {
    RequestOp r;
    auto* txn = r.mutable_request_txn();
    Compare* c = txn->add_compare();
    c->set_key(key);
    c->set_target(Compare::MOD);
    c->set_result(Compare::EQUAL);
    c->set_mod_revision(mod);
    *txn->add_success() = PutReq(key, value);
    txn->add_failure()->mutable_request_range()->set_key(key);
    return Add(client, OpKind::kTxn, r, invoke, complete, outcome);
  }

  History h;
};

TEST(CheckersTest, ALinearizableHistoryPassesEveryChecker) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Put(1, "b", "w1", 5, 15, 3);  // concurrent with the first
  b.Get(2, "a", "", 20, 30, 3, {Kv("a", "v1", 2, 2, 1)});
  HistoryOp& cas = b.Cas(0, "a", 2, "v2", 31, 40, OpOutcome::kOk);
  auto* resp = cas.response.mutable_response_txn();
  resp->mutable_header()->set_revision(4);
  resp->set_succeeded(true);
  resp->add_responses()->mutable_response_put()->mutable_header()->set_revision(4);
  b.Get(1, "a", "c", 41, 50, 4, {Kv("a", "v2", 2, 4, 2), Kv("b", "w1", 3, 3, 1)});
  const CheckResult r = CheckHistory(b.h, CheckOptions());
  EXPECT_TRUE(r.ok) << r.checker << ": " << r.detail;
}

TEST(CheckersTest, RevisionRejectsTwoWritesAcknowledgedAtOneRevision) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Put(1, "b", "w1", 0, 10, 2);
  EXPECT_EQ(CheckRevisions(b.h).checker, "revision");
  EXPECT_EQ(CheckHistory(b.h, CheckOptions()).checker, "revision");
}

TEST(CheckersTest, RevisionRejectsAHoleNoUnknownWriteExplains) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Put(0, "a", "v2", 20, 30, 4);  // revision 3 came from nowhere
  EXPECT_EQ(CheckRevisions(b.h).checker, "revision");
  // A write of unknown outcome invoked early enough may have made it.
  b.UnknownPut(1, "b", "x", 5);
  EXPECT_TRUE(CheckRevisions(b.h).ok);
  // But not one invoked after a later commit had already been acknowledged.
  Builder late;
  late.Put(0, "a", "v1", 0, 10, 2);
  late.Put(0, "a", "v2", 20, 30, 4);
  late.UnknownPut(1, "b", "x", 35);
  EXPECT_EQ(CheckRevisions(late.h).checker, "revision");
}

TEST(CheckersTest, LinearizabilityRejectsAReadThatMissesACompletedWrite) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Get(1, "a", "", 20, 30, 1, {});  // started after the put returned, read before it
  const CheckResult r = CheckLinearizability(b.h, CheckOptions());
  EXPECT_EQ(r.checker, "linearizability");
  EXPECT_NE(r.detail.find("real-time"), std::string::npos) << r.detail;
}

TEST(CheckersTest, LinearizabilityAcceptsAConcurrentReadOfEitherState) {
  Builder b;
  b.Put(0, "a", "v1", 0, 100, 2);
  b.Get(1, "a", "", 10, 20, 1, {});                        // before the put took effect
  b.Get(2, "a", "", 30, 40, 2, {Kv("a", "v1", 2, 2, 1)});  // after
  EXPECT_TRUE(CheckLinearizability(b.h, CheckOptions()).ok);
  EXPECT_TRUE(CheckPerKeyWgl(b.h, CheckOptions()).ok);
}

TEST(CheckersTest, LinearizabilityRejectsAWrongValueAtARevision) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Get(1, "a", "", 20, 30, 2, {Kv("a", "v1", 2, 2, 7)});  // version 7 is made up
  const CheckResult r = CheckLinearizability(b.h, CheckOptions());
  EXPECT_EQ(r.checker, "linearizability");
  EXPECT_NE(r.detail.find("want a=v1@2(c2,v1)"), std::string::npos) << r.detail;
}

TEST(CheckersTest, LinearizabilityRejectsAFailedCompareThatShouldHaveSucceeded) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  HistoryOp& cas = b.Cas(0, "a", 2, "v2", 20, 30, OpOutcome::kOk);
  auto* resp = cas.response.mutable_response_txn();
  resp->mutable_header()->set_revision(2);
  resp->set_succeeded(false);
  *resp->add_responses()->mutable_response_range()->add_kvs() = Kv("a", "v1", 2, 2, 1);
  resp->mutable_responses(0)->mutable_response_range()->set_count(1);
  EXPECT_EQ(CheckLinearizability(b.h, CheckOptions()).checker, "linearizability");
}

TEST(CheckersTest, AWriteOfUnknownOutcomeMayOrMayNotHaveHappened) {
  for (bool applied : {false, true}) {
    Builder b;
    b.Put(0, "a", "v1", 0, 10, 2);
    b.UnknownPut(1, "a", "x", 15);  // its reply never came
    if (applied) {
      b.Get(2, "a", "", 40, 50, 3, {Kv("a", "x", 2, 3, 2)});
    } else {
      b.Get(2, "a", "", 40, 50, 2, {Kv("a", "v1", 2, 2, 1)});
    }
    const CheckResult r = CheckHistory(b.h, CheckOptions());
    EXPECT_TRUE(r.ok) << applied << " " << r.checker << ": " << r.detail;
  }
}

TEST(CheckersTest, LinearizabilityRejectsATxnThatTookEffectInPart) {
  Builder b;
  RequestOp r;
  *r.mutable_request_txn()->add_success() = Builder::PutReq("a", "t1");
  *r.mutable_request_txn()->add_success() = Builder::PutReq("b", "t2");
  b.Add(0, OpKind::kTxn, r, 0, 0, OpOutcome::kUnknown);  // a crash took its reply
  // After the restart: a from the txn is there, b is not.
  b.Get(1, "a", "c", 100, 110, 2, {Kv("a", "t1", 2, 2, 1)});
  const CheckResult result = CheckHistory(b.h, CheckOptions());
  EXPECT_EQ(result.checker, "linearizability") << result.detail;
}

TEST(CheckersTest, DurabilityRejectsALostAcknowledgedWrite) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  CrashRecord crash;
  crash.crash_us = 20;
  crash.restart_us = 30;
  crash.recovered_revision = 1;  // the acknowledged revision 2 did not survive
  b.h.crashes.push_back(crash);
  EXPECT_EQ(CheckDurability(b.h).checker, "durability");
  b.h.crashes[0].recovered_revision = 2;
  EXPECT_TRUE(CheckDurability(b.h).ok);
  b.Get(1, "a", "", 40, 50, 1, {});  // a read after the restart still misses it
  EXPECT_EQ(CheckDurability(b.h).checker, "durability");
}

TEST(CheckersTest, WglRejectsAStaleReadWithoutLookingAtRevisions) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  b.Put(0, "a", "v2", 20, 30, 3);
  b.Get(1, "a", "", 40, 50, 3, {Kv("a", "v1", 2, 2, 1)});
  const CheckResult r = CheckPerKeyWgl(b.h, CheckOptions());
  EXPECT_EQ(r.checker, "wgl");
  EXPECT_NE(r.detail.find("key a"), std::string::npos) << r.detail;
}

TEST(CheckersTest, WglProjectsCompareAndSwapChains) {
  Builder b;
  b.Put(0, "a", "v1", 0, 10, 2);
  // Two concurrent CAS on the same mod: at most one may succeed.
  for (int client : {1, 2}) {
    HistoryOp& cas = b.Cas(client, "a", 2, "c" + std::to_string(client), 20, 40, OpOutcome::kOk);
    auto* resp = cas.response.mutable_response_txn();
    resp->mutable_header()->set_revision(client + 2);
    resp->set_succeeded(true);
    resp->add_responses()->mutable_response_put()->mutable_header()->set_revision(client + 2);
  }
  EXPECT_EQ(CheckPerKeyWgl(b.h, CheckOptions()).checker, "wgl");
  b.h.ops.back().response.mutable_response_txn()->set_succeeded(false);
  b.h.ops.back().response.mutable_response_txn()->clear_responses();
  auto* get =
      b.h.ops.back().response.mutable_response_txn()->add_responses()->mutable_response_range();
  *get->add_kvs() = Kv("a", "c1", 2, 3, 2);
  get->set_count(1);
  EXPECT_TRUE(CheckPerKeyWgl(b.h, CheckOptions()).ok);
}

// A watch session on [a, c) from revision 2 that received `events` (revision, key, value).
WatchSession Session(bool prev_kv, const std::vector<etcdserverpb::WatchResponse>& responses) {
  WatchSession s;
  s.create.set_key("a");
  s.create.set_range_end("c");
  s.create.set_start_revision(2);
  s.create.set_prev_kv(prev_kv);
  etcdserverpb::WatchResponse created;
  created.set_created(true);
  created.mutable_header()->set_revision(1);
  s.responses.push_back({1, created});
  int64_t t = 100;
  for (const auto& r : responses) s.responses.push_back({t++, r});
  return s;
}

etcdserverpb::WatchResponse Events(int64_t header, const std::vector<mvccpb::KeyValue>& puts) {
  etcdserverpb::WatchResponse r;
  r.mutable_header()->set_revision(header);
  for (const auto& kv : puts) {
    auto* ev = r.add_events();
    ev->set_type(mvccpb::Event::PUT);
    *ev->mutable_kv() = kv;
  }
  return r;
}

etcdserverpb::WatchResponse Progress(int64_t header) {
  etcdserverpb::WatchResponse r;
  r.mutable_header()->set_revision(header);
  r.set_watch_id(-1);
  return r;
}

class WatchCheckersTest : public ::testing::Test {
 protected:
  WatchCheckersTest() {
    b_.Put(0, "a", "v1", 0, 10, 2);
    b_.Put(0, "b", "w1", 20, 30, 3);
    b_.Put(0, "a", "v2", 40, 50, 4);
  }
  CheckResult Check(WatchSession s) {
    b_.h.watches = {std::move(s)};
    return CheckHistory(b_.h, CheckOptions());
  }
  Builder b_;
  const mvccpb::KeyValue a1_ = Kv("a", "v1", 2, 2, 1);
  const mvccpb::KeyValue b1_ = Kv("b", "w1", 3, 3, 1);
  const mvccpb::KeyValue a2_ = Kv("a", "v2", 2, 4, 2);
};

TEST_F(WatchCheckersTest, EveryEventOnceInOrderPasses) {
  const CheckResult r =
      Check(Session(false, {Events(2, {a1_}), Events(3, {b1_}), Events(4, {a2_}), Progress(4)}));
  EXPECT_TRUE(r.ok) << r.checker << ": " << r.detail;
}

TEST_F(WatchCheckersTest, AMissingEventIsCaught) {
  const CheckResult r = Check(Session(false, {Events(2, {a1_}), Events(4, {a2_})}));
  EXPECT_EQ(r.checker, "watch");
  EXPECT_NE(r.detail.find("reliable"), std::string::npos) << r.detail;
}

TEST_F(WatchCheckersTest, AMissingEventBeforeABookmarkIsCaught) {
  // Nothing after revision 2 arrived, yet the bookmark vouches for everything up to 4.
  EXPECT_EQ(Check(Session(false, {Events(2, {a1_}), Progress(4)})).checker, "watch");
  // Without the bookmark the stream may simply not have caught up yet.
  EXPECT_TRUE(Check(Session(false, {Events(2, {a1_})})).ok);
}

TEST_F(WatchCheckersTest, OutOfOrderAndDuplicateEventsAreCaught) {
  EXPECT_EQ(Check(Session(false, {Events(3, {b1_}), Events(3, {a1_})})).checker, "watch");
  EXPECT_EQ(Check(Session(false, {Events(2, {a1_}), Events(2, {a1_})})).checker, "watch");
}

TEST_F(WatchCheckersTest, AnEventAtOrBelowABookmarkAfterItIsCaught) {
  const CheckResult r = Check(Session(false, {Events(2, {a1_}), Progress(3), Events(3, {b1_})}));
  EXPECT_EQ(r.checker, "watch");
}

TEST_F(WatchCheckersTest, PrevKvMustBeTheVersionBefore) {
  etcdserverpb::WatchResponse third = Events(4, {a2_});
  *third.mutable_events(0)->mutable_prev_kv() = a1_;
  EXPECT_TRUE(Check(Session(true, {Events(2, {a1_}), Events(3, {b1_}), third, Progress(4)})).ok);
  *third.mutable_events(0)->mutable_prev_kv() = b1_;  // someone else's version
  EXPECT_EQ(Check(Session(true, {Events(2, {a1_}), Events(3, {b1_}), third})).checker, "watch");
  third.mutable_events(0)->clear_prev_kv();  // missing, and nothing was compacted
  EXPECT_EQ(Check(Session(true, {Events(2, {a1_}), Events(3, {b1_}), third})).checker, "watch");
}

TEST_F(WatchCheckersTest, AnEventNoCommitExplainsIsCaught) {
  const CheckResult r = Check(Session(false, {Events(2, {Kv("a", "ghost", 2, 2, 1)})}));
  EXPECT_EQ(r.checker, "watch");
}

}  // namespace
}  // namespace geoetcd::sim
