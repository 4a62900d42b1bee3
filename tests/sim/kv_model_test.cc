// The checkers' model of etcd: revisions, versions, txns, ranges and undo.
#include "sim/kv_model.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace geoetcd::sim {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

RequestOp Put(const std::string& k, const std::string& v, bool prev_kv = false) {
  RequestOp r;
  r.mutable_request_put()->set_key(k);
  r.mutable_request_put()->set_value(v);
  r.mutable_request_put()->set_prev_kv(prev_kv);
  return r;
}

RequestOp Get(const std::string& k, const std::string& end = "", int64_t limit = 0,
              int64_t rev = 0) {
  RequestOp r;
  r.mutable_request_range()->set_key(k);
  r.mutable_request_range()->set_range_end(end);
  r.mutable_request_range()->set_limit(limit);
  r.mutable_request_range()->set_revision(rev);
  return r;
}

RequestOp Del(const std::string& k, const std::string& end = "") {
  RequestOp r;
  r.mutable_request_delete_range()->set_key(k);
  r.mutable_request_delete_range()->set_range_end(end);
  r.mutable_request_delete_range()->set_prev_kv(true);
  return r;
}

TEST(KvModelTest, PutsTakeRevisionsAndVersions) {
  KvModel m;
  bool changed = false;
  EXPECT_EQ(m.Apply(Put("a", "1"), &changed).response_put().header().revision(), 2);
  EXPECT_TRUE(changed);
  const ResponseOp r = m.Apply(Put("a", "2", true), &changed);
  EXPECT_EQ(r.response_put().prev_kv().value(), "1");
  const KvModel::Version* v = m.Get("a", 3);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->create_revision, 2);
  EXPECT_EQ(v->mod_revision, 3);
  EXPECT_EQ(v->version, 2);
  EXPECT_EQ(m.Get("a", 2)->value, "1");  // history is kept
  EXPECT_EQ(m.Get("a", 1), nullptr);
}

TEST(KvModelTest, DeleteOfNothingKeepsTheRevision) {
  KvModel m;
  bool changed = true;
  const ResponseOp r = m.Apply(Del("nope"), &changed);
  EXPECT_FALSE(changed);
  EXPECT_EQ(r.response_delete_range().deleted(), 0);
  EXPECT_EQ(r.response_delete_range().header().revision(), 1);
  m.Apply(Put("a", "1"), &changed);
  m.Apply(Put("b", "1"), &changed);
  const ResponseOp d = m.Apply(Del("a", "c"), &changed);
  EXPECT_TRUE(changed);
  EXPECT_EQ(d.response_delete_range().deleted(), 2);
  EXPECT_EQ(m.revision(), 4);  // one revision for the whole range
  // Recreated after a delete: version starts over, create is the new revision.
  m.Apply(Put("a", "again"), &changed);
  EXPECT_EQ(m.Get("a", 5)->version, 1);
  EXPECT_EQ(m.Get("a", 5)->create_revision, 5);
}

TEST(KvModelTest, RangeLimitCountAndMore) {
  KvModel m;
  bool changed;
  for (const char* k : {"a", "b", "c"}) m.Apply(Put(k, "x"), &changed);
  const auto r = m.Apply(Get("a", std::string(1, '\0'), 2), &changed).response_range();
  EXPECT_EQ(r.kvs_size(), 2);
  EXPECT_EQ(r.count(), 3);
  EXPECT_TRUE(r.more());
  EXPECT_EQ(m.Apply(Get("a", "", 0, 2), &changed).response_range().kvs_size(), 1);  // at 2
  EXPECT_EQ(m.Apply(Get("b", "", 0, 2), &changed).response_range().kvs_size(), 0);
}

TEST(KvModelTest, TxnComparesBeforeAndReadsItsOwnWrites) {
  KvModel m;
  bool changed;
  m.Apply(Put("a", "1"), &changed);
  RequestOp t;
  Compare* c = t.mutable_request_txn()->add_compare();
  c->set_key("a");
  c->set_target(Compare::MOD);
  c->set_result(Compare::EQUAL);
  c->set_mod_revision(2);
  *t.mutable_request_txn()->add_success() = Put("b", "2");
  *t.mutable_request_txn()->add_success() = Get("b");
  *t.mutable_request_txn()->add_failure() = Get("a");
  ResponseOp r = m.Apply(t, &changed);
  EXPECT_TRUE(r.response_txn().succeeded());
  EXPECT_TRUE(changed);
  EXPECT_EQ(r.response_txn().header().revision(), 3);
  EXPECT_EQ(r.response_txn().responses(1).response_range().kvs(0).value(), "2");
  r = m.Apply(t, &changed);  // mod(a) is still 2: succeeds again
  EXPECT_TRUE(r.response_txn().succeeded());
  c->set_mod_revision(0);  // "a does not exist": false
  r = m.Apply(t, &changed);
  EXPECT_FALSE(r.response_txn().succeeded());
  EXPECT_FALSE(changed);
  EXPECT_EQ(r.response_txn().header().revision(), 4);
  // A VALUE compare on a missing key always fails (etcd).
  c->set_key("missing");
  c->set_target(Compare::VALUE);
  c->set_value("");
  EXPECT_FALSE(m.Apply(t, &changed).response_txn().succeeded());
}

TEST(KvModelTest, TruncateUndoesCommitsAndEventsOfTheHead) {
  KvModel m;
  bool changed;
  m.Apply(Put("a", "1"), &changed);
  const uint64_t at2 = m.StateHash();
  RequestOp t;
  *t.mutable_request_txn()->add_success() = Put("b", "2");
  *t.mutable_request_txn()->add_success() = Del("a");
  m.Apply(t, &changed);
  std::vector<std::string> events;
  m.ForEachVersionOfHead([&](const std::string& key, const KvModel::Version& v) {
    events.push_back(key + (v.version == 0 ? ":delete" : ":put"));
  });
  EXPECT_EQ(events, (std::vector<std::string>{"b:put", "a:delete"}));
  EXPECT_NE(m.StateHash(), at2);
  m.TruncateTo(2);
  EXPECT_EQ(m.revision(), 2);
  EXPECT_EQ(m.StateHash(), at2);
  EXPECT_EQ(m.Get("b", 3), nullptr);
}

TEST(KvModelTest, ALeaseRevokeDeletesEveryKeyAttachedToItInOneCommit) {
  KvModel m;
  bool changed = false;
  RequestOp with_lease = Put("b", "1");
  with_lease.mutable_request_put()->set_lease(7);
  m.Apply(with_lease, &changed);                      // 2
  with_lease.mutable_request_put()->set_key("a");
  m.Apply(with_lease, &changed);                      // 3
  with_lease.mutable_request_put()->set_key("c");
  m.Apply(with_lease, &changed);                      // 4
  m.Apply(Put("c", "2"), &changed);                   // 5: c leaves the lease
  EXPECT_EQ(m.Apply(Get("a"), &changed).response_range().kvs(0).lease(), 7);
  EXPECT_EQ(m.KeysOfLease(7), 2);
  const uint64_t before = m.StateHash();
  m.ApplyLeaseRevoke(7, &changed);
  EXPECT_TRUE(changed);
  EXPECT_EQ(m.revision(), 6);
  std::vector<std::string> deleted;
  m.ForEachVersionOfHead([&](const std::string& key, const KvModel::Version& v) {
    if (v.version == 0) deleted.push_back(key);
  });
  EXPECT_EQ(deleted, (std::vector<std::string>{"a", "b"}));  // key order, one revision
  EXPECT_NE(m.Get("c", 6), nullptr);
  EXPECT_EQ(m.KeysOfLease(7), 0);
  EXPECT_TRUE(m.UsesRevokedLease(with_lease));  // a revoked lease takes no more keys
  m.ApplyLeaseRevoke(7, &changed);  // nothing left to delete: no commit
  EXPECT_FALSE(changed);
  EXPECT_EQ(m.revision(), 6);
  m.TruncateTo(5);
  EXPECT_EQ(m.StateHash(), before);
  EXPECT_FALSE(m.UsesRevokedLease(with_lease));
  EXPECT_EQ(m.KeysOfLease(7), 2);
}

TEST(KvModelTest, SameResponseExplainsTheDifference) {
  KvModel m;
  bool changed;
  m.Apply(Put("a", "1"), &changed);
  const ResponseOp want = m.Apply(Get("a"), &changed);
  ResponseOp got = want;
  std::string diff;
  EXPECT_TRUE(SameResponse(want, got, &diff));
  got.mutable_response_range()->mutable_kvs(0)->set_value("2");
  EXPECT_FALSE(SameResponse(want, got, &diff));
  EXPECT_NE(diff.find("want a=1@2"), std::string::npos) << diff;
  EXPECT_TRUE(ResponseChangedState(m.Apply(Put("b", "x"), &changed)));
  EXPECT_FALSE(ResponseChangedState(m.Apply(Del("zzz"), &changed)));
}

}  // namespace
}  // namespace geoetcd::sim
