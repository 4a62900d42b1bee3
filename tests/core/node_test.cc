// The Node's KV semantics and durability, driven by hand over MemoryStorage. Expected
// values follow etcd 3.5 (and are cross-checked against a real etcd by
// tests/conformance/kv_conformance_test.py).
#include "core/node.h"

#include <memory>
#include <optional>
#include <string>

#include "core/memory_storage.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"

namespace geoetcd {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::TxnRequest;

class NodeTest : public ::testing::Test {
 protected:
  NodeTest() : executor_(&clock_), storage_(&executor_) { Restart(); }

  void Restart() {
    node_.reset();
    NodeOptions options;
    options.cluster_id = 11;
    options.member_id = 22;
    options.on_fatal = [this](const absl::Status& s) { fatal_ = s; };
    options_hook_(&options);
    Ports ports;
    ports.clock = &clock_;
    ports.executor = &executor_;
    ports.storage = &storage_;
    node_ = std::make_unique<Node>(options, ports, Random(1));
    ASSERT_TRUE(node_->Start().ok());
  }

  // Calls a Node method and runs the executor until its reply arrives.
  template <typename Resp, typename Req>
  absl::StatusOr<Resp> Call(void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>),
                            const Req& req) {
    std::optional<absl::StatusOr<Resp>> out;
    (node_.get()->*method)(RequestContext(), req, [&](absl::StatusOr<Resp> r) { out = r; });
    EXPECT_FALSE(out.has_value()) << "reply ran inline";
    executor_.AdvanceMs(100);
    EXPECT_TRUE(out.has_value()) << "no reply";
    if (!out) return absl::InternalError("no reply");
    node_->CheckInvariants();
    return *out;
  }

  absl::StatusOr<etcdserverpb::PutResponse> Put(const std::string& k, const std::string& v,
                                                bool prev_kv = false) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    req.set_prev_kv(prev_kv);
    return Call(&Node::Put, req);
  }
  absl::StatusOr<etcdserverpb::RangeResponse> Get(RangeRequest req) {
    return Call(&Node::Range, req);
  }
  absl::StatusOr<etcdserverpb::RangeResponse> Get(const std::string& k,
                                                  const std::string& end = "") {
    RangeRequest req;
    req.set_key(k);
    req.set_range_end(end);
    return Get(req);
  }
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const TxnRequest& req) {
    return Call(&Node::Txn, req);
  }
  absl::StatusOr<etcdserverpb::DeleteRangeResponse> Delete(const std::string& k,
                                                           const std::string& end = "",
                                                           bool prev_kv = false) {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(k);
    req.set_range_end(end);
    req.set_prev_kv(prev_kv);
    return Call(&Node::DeleteRange, req);
  }
  absl::StatusOr<etcdserverpb::CompactionResponse> Compact(int64_t rev) {
    etcdserverpb::CompactionRequest req;
    req.set_revision(rev);
    return Call(&Node::Compact, req);
  }

  testing::ManualClock clock_;
  testing::ManualExecutor executor_;
  MemoryStorage storage_;
  std::unique_ptr<Node> node_;
  absl::Status fatal_;
  std::function<void(NodeOptions*)> options_hook_ = [](NodeOptions*) {};
};

Compare MakeCompare(const std::string& key, Compare::CompareTarget target,
                    Compare::CompareResult result, int64_t n) {
  Compare c;
  c.set_key(key);
  c.set_target(target);
  c.set_result(result);
  switch (target) {
    case Compare::VERSION: c.set_version(n); break;
    case Compare::CREATE: c.set_create_revision(n); break;
    case Compare::MOD: c.set_mod_revision(n); break;
    case Compare::LEASE: c.set_lease(n); break;
    default: break;
  }
  return c;
}

TEST_F(NodeTest, EmptyStoreIsAtRevisionOne) {
  auto r = Get("a");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->header().revision(), 1);
  EXPECT_EQ(r->header().cluster_id(), 11u);
  EXPECT_EQ(r->header().member_id(), 22u);
  EXPECT_EQ(r->count(), 0);
}

TEST_F(NodeTest, PutAssignsDenseRevisionsAndVersions) {
  EXPECT_EQ(Put("a", "1")->header().revision(), 2);
  EXPECT_EQ(Put("b", "1")->header().revision(), 3);
  auto p = Put("a", "2", /*prev_kv=*/true);
  EXPECT_EQ(p->header().revision(), 4);
  EXPECT_EQ(p->prev_kv().value(), "1");
  EXPECT_EQ(p->prev_kv().mod_revision(), 2);
  auto g = Get("a");
  ASSERT_EQ(g->kvs_size(), 1);
  EXPECT_EQ(g->kvs(0).create_revision(), 2);
  EXPECT_EQ(g->kvs(0).mod_revision(), 4);
  EXPECT_EQ(g->kvs(0).version(), 2);
  EXPECT_EQ(g->header().revision(), 4);
}

TEST_F(NodeTest, RangeLimitMoreCountAndSort) {
  for (const char* k : {"k1", "k2", "k3", "k4"}) ASSERT_TRUE(Put(k, std::string("v") + k).ok());
  ASSERT_TRUE(Put("k1", "again").ok());
  RangeRequest req;
  req.set_key("k");
  req.set_range_end("l");
  req.set_limit(2);
  auto r = Get(req);
  EXPECT_EQ(r->kvs_size(), 2);
  EXPECT_TRUE(r->more());
  EXPECT_EQ(r->count(), 4);
  req.set_limit(0);
  req.set_sort_target(RangeRequest::MOD);
  req.set_sort_order(RangeRequest::DESCEND);
  r = Get(req);
  ASSERT_EQ(r->kvs_size(), 4);
  EXPECT_EQ(r->kvs(0).key(), "k1");  // modified last
  EXPECT_EQ(r->kvs(1).key(), "k4");
  req.set_sort_order(RangeRequest::NONE);  // target != KEY sorts ascending
  r = Get(req);
  EXPECT_EQ(r->kvs(3).key(), "k1");
  req.set_keys_only(true);
  r = Get(req);
  EXPECT_TRUE(r->kvs(0).value().empty());
  req.set_count_only(true);
  r = Get(req);
  EXPECT_EQ(r->kvs_size(), 0);
  EXPECT_EQ(r->count(), 4);
}

TEST_F(NodeTest, RangeFiltersApplyAfterCount) {
  for (const char* k : {"a", "b", "c"}) ASSERT_TRUE(Put(k, "v").ok());  // revs 2,3,4
  RangeRequest req;
  req.set_key("a");
  req.set_range_end(std::string(1, '\0'));
  req.set_min_mod_revision(3);
  auto r = Get(req);
  EXPECT_EQ(r->kvs_size(), 2);
  EXPECT_EQ(r->count(), 3);
  req.set_max_create_revision(3);
  r = Get(req);
  ASSERT_EQ(r->kvs_size(), 1);
  EXPECT_EQ(r->kvs(0).key(), "b");
}

TEST_F(NodeTest, HistoricalReadsFutureAndCompacted) {
  ASSERT_TRUE(Put("a", "1").ok());  // 2
  ASSERT_TRUE(Put("a", "2").ok());  // 3
  RangeRequest req;
  req.set_key("a");
  req.set_revision(2);
  auto r = Get(req);
  EXPECT_EQ(r->kvs(0).value(), "1");
  EXPECT_EQ(r->header().revision(), 3);  // the current revision, as etcd
  req.set_revision(4);
  r = Get(req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), "etcdserver: mvcc: required revision is a future revision");
  ASSERT_TRUE(Compact(3).ok());
  req.set_revision(2);
  r = Get(req);
  EXPECT_EQ(r.status().message(), "etcdserver: mvcc: required revision has been compacted");
  req.set_revision(3);  // exactly the compaction point stays readable
  EXPECT_EQ(Get(req)->kvs(0).value(), "2");
  EXPECT_EQ(Compact(3).status().message(),
            "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(Compact(9).status().message(),
            "etcdserver: mvcc: required revision is a future revision");
}

TEST_F(NodeTest, DeleteRangeReportsPrevKvsAndKeepsRevisionWhenNothingDeleted) {
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("b", "2").ok());
  auto d = Delete("zzz");
  EXPECT_EQ(d->deleted(), 0);
  EXPECT_EQ(d->header().revision(), 3);
  d = Delete("a", "c", /*prev_kv=*/true);
  EXPECT_EQ(d->deleted(), 2);
  EXPECT_EQ(d->prev_kvs_size(), 2);
  EXPECT_EQ(d->header().revision(), 4);
  EXPECT_EQ(Get("a", "c")->count(), 0);
}

TEST_F(NodeTest, PutBadInputIsRejectedWithEtcdErrors) {
  etcdserverpb::PutRequest req;
  EXPECT_EQ(Call(&Node::Put, req).status().message(), "etcdserver: key is not provided");
  req.set_key("k");
  req.set_ignore_value(true);
  EXPECT_EQ(Call(&Node::Put, req).status().message(), "etcdserver: key not found");
  req.set_value("v");
  EXPECT_EQ(Call(&Node::Put, req).status().message(), "etcdserver: value is provided");
  req.Clear();
  req.set_key("k");
  req.set_ignore_lease(true);
  req.set_lease(5);
  EXPECT_EQ(Call(&Node::Put, req).status().message(), "etcdserver: lease is provided");
  req.set_ignore_lease(false);
  auto r = Call(&Node::Put, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "etcdserver: requested lease not found");
  EXPECT_EQ(Get("k")->header().revision(), 1);  // nothing applied
}

TEST_F(NodeTest, IgnoreValueKeepsTheOldValue) {
  ASSERT_TRUE(Put("k", "old").ok());
  etcdserverpb::PutRequest req;
  req.set_key("k");
  req.set_ignore_value(true);
  ASSERT_TRUE(Call(&Node::Put, req).ok());
  auto g = Get("k");
  EXPECT_EQ(g->kvs(0).value(), "old");
  EXPECT_EQ(g->kvs(0).version(), 2);
}

TEST_F(NodeTest, RequestOverMaxBytesIsRejected) {
  const std::string big(1572864, 'x');
  auto r = Put("k", big);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "etcdserver: request is too large");
  // At the bound (request bytes == max) it is accepted.
  etcdserverpb::PutRequest req;
  req.set_key("k");
  req.set_value(std::string(1572864 - 10, 'x'));
  while (static_cast<int64_t>(req.ByteSizeLong()) < 1572864) req.mutable_value()->push_back('x');
  ASSERT_EQ(req.ByteSizeLong(), 1572864u);
  EXPECT_TRUE(Call(&Node::Put, req).ok());
}

TEST_F(NodeTest, TxnCompareSuccessAndFailure) {
  ASSERT_TRUE(Put("k", "v").ok());  // 2
  TxnRequest txn;
  *txn.add_compare() = MakeCompare("k", Compare::MOD, Compare::EQUAL, 2);
  txn.add_success()->mutable_request_put()->set_key("k");
  txn.mutable_success(0)->mutable_request_put()->set_value("v2");
  txn.add_failure()->mutable_request_range()->set_key("k");
  auto r = Txn(txn);
  EXPECT_TRUE(r->succeeded());
  EXPECT_EQ(r->header().revision(), 3);
  EXPECT_EQ(r->responses(0).response_put().header().revision(), 3);
  r = Txn(txn);  // mod is now 3: failure branch, a read, no new revision
  EXPECT_FALSE(r->succeeded());
  EXPECT_EQ(r->header().revision(), 3);
  EXPECT_EQ(r->responses(0).response_range().kvs(0).value(), "v2");
}

TEST_F(NodeTest, TxnCompareOnMissingKey) {
  TxnRequest txn;
  *txn.add_compare() = MakeCompare("nope", Compare::MOD, Compare::EQUAL, 0);
  EXPECT_TRUE(Txn(txn)->succeeded());
  txn.clear_compare();
  Compare* c = txn.add_compare();
  c->set_key("nope");
  c->set_target(Compare::VALUE);
  c->set_result(Compare::EQUAL);
  c->set_value("");
  EXPECT_FALSE(Txn(txn)->succeeded());  // a VALUE compare on a missing key always fails
}

TEST_F(NodeTest, TxnCompareOverRangeMustHoldForEveryKey) {
  ASSERT_TRUE(Put("a1", "x").ok());
  ASSERT_TRUE(Put("a2", "x").ok());
  TxnRequest txn;
  Compare c = MakeCompare("a", Compare::VERSION, Compare::EQUAL, 1);
  c.set_range_end("b");
  *txn.add_compare() = c;
  EXPECT_TRUE(Txn(txn)->succeeded());
  ASSERT_TRUE(Put("a2", "y").ok());
  EXPECT_FALSE(Txn(txn)->succeeded());
}

TEST_F(NodeTest, TxnReadsSeeEarlierWritesOfTheSameTxn) {
  TxnRequest txn;
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key("k");
  put->set_value("new");
  txn.add_success()->mutable_request_range()->set_key("k");
  auto r = Txn(txn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->responses(1).response_range().kvs(0).value(), "new");
  EXPECT_EQ(r->responses(1).response_range().header().revision(), 2);
}

TEST_F(NodeTest, NestedTxnUsesThePreTxnViewForCompares) {
  TxnRequest inner;
  *inner.add_compare() = MakeCompare("k", Compare::VERSION, Compare::EQUAL, 0);
  inner.add_success()->mutable_request_put()->set_key("inner");
  TxnRequest outer;
  auto* put = outer.add_success()->mutable_request_put();
  put->set_key("k");
  put->set_value("v");
  *outer.add_success()->mutable_request_txn() = inner;
  auto r = Txn(outer);
  ASSERT_TRUE(r.ok()) << r.status();
  // The nested compare saw k absent although the outer txn had put it first.
  EXPECT_TRUE(r->responses(1).response_txn().succeeded());
  EXPECT_EQ(Get("inner")->count(), 1);
  EXPECT_EQ(r->header().revision(), 2);  // one revision for the whole txn
}

TEST_F(NodeTest, TxnDuplicateKeyRules) {
  TxnRequest txn;
  txn.add_success()->mutable_request_put()->set_key("k");
  txn.add_success()->mutable_request_put()->set_key("k");
  EXPECT_EQ(Txn(txn).status().message(), "etcdserver: duplicate key given in txn request");
  txn.Clear();
  txn.add_success()->mutable_request_put()->set_key("b");
  auto* del = txn.add_success()->mutable_request_delete_range();
  del->set_key("a");
  del->set_range_end("c");
  EXPECT_EQ(Txn(txn).status().message(), "etcdserver: duplicate key given in txn request");
  txn.Clear();  // put + range on one key, and a key in both branches, are fine
  txn.add_success()->mutable_request_put()->set_key("k");
  txn.add_success()->mutable_request_range()->set_key("k");
  txn.add_failure()->mutable_request_put()->set_key("k");
  EXPECT_TRUE(Txn(txn).ok());
}

TEST_F(NodeTest, TxnOpLimitIsCheckedAtTheBound) {
  TxnRequest txn;
  for (int i = 0; i < 128; ++i) {
    txn.add_success()->mutable_request_put()->set_key("k" + std::to_string(i));
  }
  EXPECT_TRUE(Txn(txn).ok());
  txn.add_success()->mutable_request_put()->set_key("one-too-many");
  EXPECT_EQ(Txn(txn).status().message(), "etcdserver: too many operations in txn request");
}

TEST_F(NodeTest, TxnEmptyRequestOpIsKeyNotFound) {
  TxnRequest txn;
  txn.add_success();
  EXPECT_EQ(Txn(txn).status().message(), "etcdserver: key not found");
}

TEST_F(NodeTest, RepliesOnlyAfterTheCommitIsDurable) {
  storage_.SetLatencyHook([] { return int64_t{50}; });
  etcdserverpb::PutRequest req;
  req.set_key("k");
  bool replied = false;
  node_->Put(RequestContext(), req, [&](auto r) { replied = r.ok(); });
  executor_.RunUntilIdle();
  EXPECT_FALSE(replied);
  // The unacknowledged write is invisible to reads.
  std::optional<int64_t> count;
  RangeRequest get;
  get.set_key("k");
  node_->Range(RequestContext(), get, [&](auto r) { count = r->count(); });
  executor_.RunUntilIdle();
  EXPECT_EQ(count, 0);
  executor_.AdvanceMs(60);
  EXPECT_TRUE(replied);
  EXPECT_EQ(node_->durable_revision(), 2);
}

TEST_F(NodeTest, ConcurrentWritesShareStorageWrites) {
  storage_.SetLatencyHook([] { return int64_t{5}; });
  int replies = 0;
  for (int i = 0; i < 100; ++i) {
    etcdserverpb::PutRequest req;
    req.set_key("k" + std::to_string(i));
    node_->Put(RequestContext(), req, [&](auto r) { replies += r.ok(); });
  }
  executor_.AdvanceMs(100);
  EXPECT_EQ(replies, 100);
  EXPECT_LE(node_->storage_writes(), 2u);  // one in flight, the rest grouped behind it
  EXPECT_EQ(node_->durable_revision(), 101);
}

TEST_F(NodeTest, GroupCommitStatsCountEntriesPerStorageWrite) {
  storage_.SetLatencyHook([] { return int64_t{5}; });
  for (int i = 0; i < 100; ++i) {
    etcdserverpb::PutRequest req;
    req.set_key("k" + std::to_string(i));
    node_->Put(RequestContext(), req, [](auto) {});
  }
  executor_.AdvanceMs(100);
  const GroupCommitStats& s = node_->group_commit_stats();
  EXPECT_EQ(s.entries, 100u);
  EXPECT_EQ(s.writes, node_->storage_writes());
  uint64_t bucketed = 0;
  for (uint64_t n : s.buckets) bucketed += n;
  EXPECT_EQ(bucketed, s.writes);
  // The first put is written alone; the other 99 wait behind it and share one write, which
  // falls in the bucket of writes of 65..128 entries.
  EXPECT_EQ(s.buckets[0], 1u);
  EXPECT_EQ(s.buckets[7], 1u);
}

TEST_F(NodeTest, AccountStatsReportLiveKeysAndIndexes) {
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("b", "1").ok());
  ASSERT_TRUE(Put("a", "2").ok());  // not a new key
  ASSERT_TRUE(Delete("b").ok());
  std::vector<AccountStats> stats = node_->account_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].name, "default");
  EXPECT_EQ(stats[0].live_keys, 1);
  EXPECT_EQ(stats[0].revision, 5);
  EXPECT_EQ(stats[0].durable_index, 4u);
  EXPECT_EQ(stats[0].applied_index, 4u);
  EXPECT_EQ(stats[0].write_region, node_->member_id());
  // One region: nobody to lag.
  EXPECT_TRUE(stats[0].lag_entries.empty());
  // Recovery counts the live keys again from storage.
  Restart();
  EXPECT_EQ(node_->account_stats()[0].live_keys, 1);
}

TEST_F(NodeTest, AcknowledgedWritesSurviveACrashAndRevisionsContinue) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Put("k" + std::to_string(i), "v").ok());
  // An unacknowledged write in flight when the process dies may be lost.
  storage_.SetLatencyHook([] { return int64_t{1000}; });
  etcdserverpb::PutRequest lost;
  lost.set_key("lost");
  node_->Put(RequestContext(), lost, [](auto) {});
  executor_.RunUntilIdle();
  storage_.Crash();
  storage_.SetLatencyHook(nullptr);
  Restart();
  auto r = Get("k", "l");
  EXPECT_EQ(r->count(), 10);
  EXPECT_EQ(r->header().revision(), 11);
  EXPECT_EQ(Put("next", "v")->header().revision(), 12);
}

TEST_F(NodeTest, CompactionSurvivesRestart) {
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("a", "2").ok());
  ASSERT_TRUE(Delete("a").ok());  // 4
  ASSERT_TRUE(Compact(4).ok());
  Restart();
  EXPECT_EQ(node_->compact_revision(), 4);
  EXPECT_EQ(Get("a")->header().revision(), 4);  // compacted-away revisions still count
  EXPECT_EQ(Put("b", "1")->header().revision(), 5);
  RangeRequest req;
  req.set_key("a");
  req.set_revision(3);
  EXPECT_EQ(Get(req).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(NodeTest, StorageFailureStopsTheNode) {
  storage_.SetWriteError(absl::DataLossError("disk on fire"));
  etcdserverpb::PutRequest req;
  req.set_key("k");
  bool replied = false;
  node_->Put(RequestContext(), req, [&](auto) { replied = true; });
  executor_.AdvanceMs(10);
  EXPECT_FALSE(replied);  // its durability is unknown: never acknowledged
  EXPECT_EQ(fatal_.message(), "disk on fire");
  EXPECT_TRUE(node_->failed());
  EXPECT_EQ(Get("k").status().message(), "etcdserver: server stopped");
}


TEST_F(NodeTest, LeaseGrantRules) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_ttl(1);  // below etcd's minimum: raised to 2 s
  auto r = Call(&Node::LeaseGrant, g);
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->id(), 0);
  EXPECT_EQ(r->ttl(), 2);
  g.set_id(r->id());
  EXPECT_EQ(Call(&Node::LeaseGrant, g).status().message(), "etcdserver: lease already exists");
  g.set_id(0);
  g.set_ttl(9'000'000'001);
  auto big = Call(&Node::LeaseGrant, g);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(big.status().message(), "etcdserver: too large lease TTL");
  g.set_ttl(9'000'000'000);  // exactly the maximum is fine
  EXPECT_TRUE(Call(&Node::LeaseGrant, g).ok());
}

TEST_F(NodeTest, UnknownLeaseBehavesAsEtcd) {
  etcdserverpb::LeaseKeepAliveRequest k;
  k.set_id(77);
  EXPECT_EQ(Call(&Node::LeaseKeepAlive, k)->ttl(), 0);
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(77);
  EXPECT_EQ(Call(&Node::LeaseTimeToLive, t)->ttl(), -1);
  etcdserverpb::LeaseRevokeRequest v;
  v.set_id(77);
  auto r = Call(&Node::LeaseRevoke, v);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "etcdserver: requested lease not found");
}

TEST_F(NodeTest, RevokeDeletesAttachedKeysInOneRevision) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_id(5);
  g.set_ttl(60);
  ASSERT_TRUE(Call(&Node::LeaseGrant, g).ok());
  for (const char* k : {"b", "a", "c"}) {
    etcdserverpb::PutRequest p;
    p.set_key(k);
    p.set_lease(5);
    ASSERT_TRUE(Call(&Node::Put, p).ok());
  }
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(5);
  t.set_keys(true);
  auto ttl = Call(&Node::LeaseTimeToLive, t);
  EXPECT_EQ(ttl->grantedttl(), 60);
  EXPECT_EQ(ttl->keys_size(), 3);
  etcdserverpb::LeaseRevokeRequest v;
  v.set_id(5);
  auto r = Call(&Node::LeaseRevoke, v);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->header().revision(), 5);  // puts at 2,3,4; one revision for all deletes
  EXPECT_EQ(Get("a", "z")->count(), 0);
}

TEST_F(NodeTest, LeaseExpiresOnTheClockPortAndKeepAliveExtendsIt) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_id(9);
  g.set_ttl(10);
  ASSERT_TRUE(Call(&Node::LeaseGrant, g).ok());
  etcdserverpb::PutRequest p;
  p.set_key("ephemeral");
  p.set_lease(9);
  ASSERT_TRUE(Call(&Node::Put, p).ok());
  executor_.AdvanceMs(8000);
  etcdserverpb::LeaseKeepAliveRequest k;
  k.set_id(9);
  EXPECT_EQ(Call(&Node::LeaseKeepAlive, k)->ttl(), 10);
  executor_.AdvanceMs(8000);  // 16 s after grant, 8 s after the keep-alive: still alive
  EXPECT_EQ(Get("ephemeral")->count(), 1);
  executor_.AdvanceMs(3000);  // past the renewed expiry
  EXPECT_EQ(Get("ephemeral")->count(), 0);
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(9);
  EXPECT_EQ(Call(&Node::LeaseTimeToLive, t)->ttl(), -1);
}

TEST_F(NodeTest, LeasesSurviveRestartWithAFullTtl) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_id(3);
  g.set_ttl(30);
  ASSERT_TRUE(Call(&Node::LeaseGrant, g).ok());
  etcdserverpb::PutRequest p;
  p.set_key("k");
  p.set_lease(3);
  ASSERT_TRUE(Call(&Node::Put, p).ok());
  executor_.AdvanceMs(20000);
  Restart();
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(3);
  t.set_keys(true);
  auto ttl = Call(&Node::LeaseTimeToLive, t);
  EXPECT_GE(ttl->ttl(), 29);  // reset, as etcd does without checkpoints
  EXPECT_EQ(ttl->keys_size(), 1);
}

}  // namespace
}  // namespace geoetcd

namespace geoetcd {
namespace {

// etcd answers a keep-alive of an expired lease only once the lease's revocation is
// committed, so a client told "TTL 0" never finds the lease's keys afterwards.
TEST_F(NodeTest, KeepAliveOfAnExpiredLeaseAnswersOnlyOnceItsKeysAreGone) {
  options_hook_ = [](NodeOptions* o) { o->lease_tick_ms = 600'000; };  // no expiry tick
  Restart();
  storage_.SetLatencyHook([] { return int64_t{50}; });
  etcdserverpb::LeaseGrantRequest g;
  g.set_id(9);
  g.set_ttl(2);
  ASSERT_TRUE(Call(&Node::LeaseGrant, g).ok());
  etcdserverpb::PutRequest p;
  p.set_key("ephemeral");
  p.set_lease(9);
  ASSERT_TRUE(Call(&Node::Put, p).ok());
  executor_.AdvanceMs(3000);  // expired, and no tick has revoked it
  std::optional<int64_t> ttl;
  etcdserverpb::LeaseKeepAliveRequest k;
  k.set_id(9);
  node_->LeaseKeepAlive(RequestContext(), k, [&](auto r) { ttl = r->ttl(); });
  executor_.RunUntilIdle();
  EXPECT_FALSE(ttl.has_value()) << "answered before the revocation was durable";
  executor_.AdvanceMs(60);
  EXPECT_EQ(ttl, 0);
  EXPECT_EQ(Get("ephemeral")->count(), 0);
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(9);
  EXPECT_EQ(Call(&Node::LeaseTimeToLive, t)->ttl(), -1);
}

// A crash can take back whatever is not durable, so lease answers wait for it like
// writes do: no keep-alive renews, and no time-to-live shows, a grant still in flight.
TEST_F(NodeTest, LeaseAnswersShowOnlyDurableLeaseState) {
  storage_.SetLatencyHook([] { return int64_t{50}; });
  etcdserverpb::LeaseGrantRequest g;
  g.set_id(5);
  g.set_ttl(10);
  bool granted = false;
  node_->LeaseGrant(RequestContext(), g, [&](auto r) { granted = r.ok(); });
  executor_.RunUntilIdle();
  std::optional<int64_t> renewed;
  etcdserverpb::LeaseKeepAliveRequest k;
  k.set_id(5);
  node_->LeaseKeepAlive(RequestContext(), k, [&](auto r) { renewed = r->ttl(); });
  std::optional<int64_t> left;
  etcdserverpb::LeaseTimeToLiveRequest t;
  t.set_id(5);
  node_->LeaseTimeToLive(RequestContext(), t, [&](auto r) { left = r->ttl(); });
  executor_.RunUntilIdle();
  EXPECT_FALSE(granted);
  EXPECT_FALSE(renewed.has_value());
  EXPECT_FALSE(left.has_value());
  executor_.AdvanceMs(60);
  EXPECT_TRUE(granted);
  EXPECT_EQ(renewed, 10);
  EXPECT_EQ(left, 9);
  // A revoke of a lease whose revocation is still in flight says "not found" only after.
  etcdserverpb::LeaseRevokeRequest v;
  v.set_id(5);
  bool revoked = false;
  node_->LeaseRevoke(RequestContext(), v, [&](auto r) { revoked = r.ok(); });
  std::optional<std::string> again;
  node_->LeaseRevoke(RequestContext(), v,
                     [&](auto r) { again = std::string(r.status().message()); });
  executor_.RunUntilIdle();
  EXPECT_FALSE(again.has_value());
  executor_.AdvanceMs(60);
  EXPECT_TRUE(revoked);
  EXPECT_EQ(again, "etcdserver: requested lease not found");
}

}  // namespace
}  // namespace geoetcd
