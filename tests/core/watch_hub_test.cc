// The watch hub driven through the Node over MemoryStorage and a manual clock. Expected
// responses follow etcd 3.5 (and tests/conformance/watch_conformance_test.py compares the
// same behaviours with a real etcd). The last test runs the watch guarantees (ordered,
// unique, reliable, atomic, resumable, bookmarkable) over randomized histories.
#include "core/watch_hub.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/memory_storage.h"
#include "core/node.h"
#include "core/random.h"
#include "core/watch_buffer.h"
#include "gtest/gtest.h"
#include "tests/testing/manual_ports.h"

namespace geoetcd {
namespace {

using etcdserverpb::WatchCreateRequest;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

const std::string kNul(1, '\0');

// etcd's clientv3.GetPrefixRangeEnd.
std::string PrefixEnd(std::string key) {
  while (!key.empty()) {
    if (static_cast<unsigned char>(key.back()) < 0xff) {
      key.back() = static_cast<char>(key.back() + 1);
      return key;
    }
    key.pop_back();
  }
  return kNul;
}

struct Spec {
  Spec() = default;
  Spec(std::string k, std::string end = "", int64_t start_rev = 0, int64_t watch_id = 0,
       bool with_prev_kv = false, bool with_progress = false, bool with_fragment = false,
       bool filter_put = false, bool filter_delete = false)
      : key(std::move(k)), range_end(std::move(end)), start(start_rev), id(watch_id),
        prev_kv(with_prev_kv), progress(with_progress), fragment(with_fragment),
        no_put(filter_put), no_delete(filter_delete) {}

  std::string key;
  std::string range_end;
  int64_t start = 0;
  int64_t id = 0;
  bool prev_kv = false;
  bool progress = false;
  bool fragment = false;
  bool no_put = false;
  bool no_delete = false;
};

WatchRequest CreateRequest(const Spec& s) {
  WatchRequest req;
  WatchCreateRequest* c = req.mutable_create_request();
  c->set_key(s.key);
  c->set_range_end(s.range_end);
  c->set_start_revision(s.start);
  c->set_watch_id(s.id);
  c->set_prev_kv(s.prev_kv);
  c->set_progress_notify(s.progress);
  c->set_fragment(s.fragment);
  if (s.no_put) c->add_filters(WatchCreateRequest::NOPUT);
  if (s.no_delete) c->add_filters(WatchCreateRequest::NODELETE);
  return req;
}

WatchRequest CancelRequest(int64_t id) {
  WatchRequest req;
  req.mutable_cancel_request()->set_watch_id(id);
  return req;
}

WatchRequest ProgressRequest() {
  WatchRequest req;
  req.mutable_progress_request();
  return req;
}

bool IsProgress(const WatchResponse& r) {
  return r.events_size() == 0 && !r.created() && !r.canceled() && r.compact_revision() == 0;
}

class WatchHubTest : public ::testing::Test {
 protected:
  // The client end of one stream: every response, in order.
  struct Client {
    uint64_t id = 0;
    std::vector<WatchResponse> got;
    // Responses received since the last Take().
    std::vector<WatchResponse> Take() {
      std::vector<WatchResponse> out(got.begin() + static_cast<std::ptrdiff_t>(taken), got.end());
      taken = got.size();
      return out;
    }
    size_t taken = 0;
  };

  WatchHubTest() : executor_(&clock_), storage_(&executor_) {}

  void SetUp() override { StartNode(); }

  void StartNode() {
    NodeOptions options;
    options.cluster_id = 11;
    options.member_id = 22;
    options.watch_progress_notify_interval_ms = progress_interval_ms_;
    options.on_fatal = [](const absl::Status& s) { FAIL() << s; };
    Ports ports;
    ports.clock = &clock_;
    ports.executor = &executor_;
    ports.storage = &storage_;
    node_ = std::make_unique<Node>(options, ports, Random(7));
    ASSERT_TRUE(node_->Start().ok());
  }

  void Settle() {
    executor_.RunUntilIdle();
    node_->CheckInvariants();
  }

  std::unique_ptr<Client> Open() {
    auto client = std::make_unique<Client>();
    Client* c = client.get();
    auto id = node_->OpenWatchStream(RequestContext(), [c](WatchResponse r) {
      c->got.push_back(std::move(r));
      return true;
    });
    EXPECT_TRUE(id.ok());
    client->id = *id;
    return client;
  }

  // Sends a request and returns what the stream received because of it.
  std::vector<WatchResponse> Send(Client* c, const WatchRequest& req) {
    node_->WatchRequest(c->id, req);
    EXPECT_EQ(c->got.size(), c->taken) << "a response ran inline";
    Settle();
    return c->Take();
  }
  int64_t Watch(Client* c, const Spec& spec) {
    auto got = Send(c, CreateRequest(spec));
    EXPECT_GE(got.size(), 1u);
    EXPECT_TRUE(got[0].created());
    c->taken -= got.size() - 1;  // leave events for the caller
    return got[0].watch_id();
  }

  // Mutations; each returns the revision of its reply (once durable).
  template <typename Resp, typename Req>
  int64_t Call(void (Node::*method)(const RequestContext&, const Req&, Reply<Resp>),
               const Req& req) {
    std::optional<absl::StatusOr<Resp>> out;
    (node_.get()->*method)(RequestContext(), req, [&](absl::StatusOr<Resp> r) { out = r; });
    Settle();
    EXPECT_TRUE(out.has_value() && out->ok());
    return out && out->ok() ? (*out)->header().revision() : -1;
  }
  int64_t Put(const std::string& k, const std::string& v) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    return Call(&Node::Put, req);
  }
  int64_t Delete(const std::string& k, const std::string& end = "") {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(k);
    req.set_range_end(end);
    return Call(&Node::DeleteRange, req);
  }
  int64_t Compact(int64_t rev) {
    etcdserverpb::CompactionRequest req;
    req.set_revision(rev);
    return Call(&Node::Compact, req);
  }
  int64_t TxnPuts(const std::vector<std::pair<std::string, std::string>>& kvs) {
    etcdserverpb::TxnRequest req;
    for (const auto& [k, v] : kvs) {
      auto* put = req.add_success()->mutable_request_put();
      put->set_key(k);
      put->set_value(v);
    }
    return Call(&Node::Txn, req);
  }

  const WatchHub& hub() const { return *node_->watch_hub(); }

  int64_t progress_interval_ms_ = 10 * 60 * 1000;
  testing::ManualClock clock_;
  testing::ManualExecutor executor_;
  MemoryStorage storage_;
  std::unique_ptr<Node> node_;
};

// --- Create, cancel and their errors --------------------------------------------------------

TEST_F(WatchHubTest, CreatedResponsesComeInRequestOrderWithTheCurrentRevision) {
  Put("a", "1");
  auto c = Open();
  // Three creates in flight at once: answered in order, ids assigned 0, 1, 2.
  for (const char* k : {"a", "b", "c"}) node_->WatchRequest(c->id, CreateRequest({k}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(got[i].created());
    EXPECT_FALSE(got[i].canceled());
    EXPECT_EQ(got[i].watch_id(), i);
    EXPECT_EQ(got[i].header().revision(), 2);
    EXPECT_EQ(got[i].header().cluster_id(), 11u);
    EXPECT_EQ(got[i].header().member_id(), 22u);
    EXPECT_EQ(got[i].events_size(), 0);
  }
}

TEST_F(WatchHubTest, ClientChosenIdsAndTheirErrors) {
  auto c = Open();
  EXPECT_EQ(Watch(c.get(), {"a", "", 0, /*id=*/1}), 1);
  EXPECT_EQ(Watch(c.get(), {"a"}), 0);
  EXPECT_EQ(Watch(c.get(), {"a"}), 2);  // auto ids skip the client's
  auto dup = Send(c.get(), CreateRequest({"b", "", 0, /*id=*/2}));
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_TRUE(dup[0].created());
  EXPECT_TRUE(dup[0].canceled());
  EXPECT_EQ(dup[0].watch_id(), -1);
  EXPECT_EQ(dup[0].cancel_reason(), "mvcc: duplicate watch ID provided on the WatchStream");
  // Another stream has its own ids.
  auto other = Open();
  EXPECT_EQ(Watch(other.get(), {"a", "", 0, 2}), 2);
}

TEST_F(WatchHubTest, EmptyRangeAndNegativeStartAreRefused) {
  auto c = Open();
  auto empty = Send(c.get(), CreateRequest({"b", "a"}));
  ASSERT_EQ(empty.size(), 1u);
  EXPECT_TRUE(empty[0].created() && empty[0].canceled());
  EXPECT_EQ(empty[0].watch_id(), -1);
  EXPECT_EQ(empty[0].cancel_reason(), "mvcc: watcher range is empty");
  auto same = Send(c.get(), CreateRequest({"b", "b"}));
  EXPECT_EQ(same[0].cancel_reason(), "mvcc: watcher range is empty");
  auto negative = Send(c.get(), CreateRequest({"b", "", -1}));
  ASSERT_EQ(negative.size(), 1u);
  EXPECT_TRUE(negative[0].created() && negative[0].canceled());
  EXPECT_EQ(negative[0].watch_id(), -1);
  EXPECT_EQ(negative[0].cancel_reason(), "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(negative[0].header().revision(), 1);
  // Nothing was registered: the next auto id is still 0.
  EXPECT_EQ(Watch(c.get(), {"b"}), 0);
}

TEST_F(WatchHubTest, CancelAnswersKnownIdsOnly) {
  auto c = Open();
  const int64_t id = Watch(c.get(), {"a"});
  Put("x", "1");
  auto got = Send(c.get(), CancelRequest(id));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].canceled());
  EXPECT_FALSE(got[0].created());
  EXPECT_EQ(got[0].watch_id(), id);
  EXPECT_EQ(got[0].header().revision(), 2);
  EXPECT_TRUE(Send(c.get(), CancelRequest(id)).empty());
  EXPECT_TRUE(Send(c.get(), CancelRequest(77)).empty());
  Put("a", "1");
  EXPECT_TRUE(c->Take().empty());
  EXPECT_EQ(hub().active_watcher_count(), 0u);
  EXPECT_FALSE(hub().WantsEvents());
}

// --- Live events ----------------------------------------------------------------------------

TEST_F(WatchHubTest, OneResponsePerRevisionInOpOrder) {
  auto c = Open();
  const int64_t id = Watch(c.get(), {"k", PrefixEnd("k")});
  Put("k1", "a");
  TxnPuts({{"k3", "c"}, {"k2", "b"}, {"x", "not watched"}});
  Delete("k1", "k3");
  auto got = c->Take();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].watch_id(), id);
  EXPECT_EQ(got[0].header().revision(), 2);
  ASSERT_EQ(got[0].events_size(), 1);
  EXPECT_EQ(got[0].events(0).kv().key(), "k1");
  EXPECT_EQ(got[0].events(0).kv().create_revision(), 2);
  EXPECT_EQ(got[0].events(0).kv().version(), 1);
  ASSERT_EQ(got[1].events_size(), 2);  // the txn, whole and in op order
  EXPECT_EQ(got[1].header().revision(), 3);
  EXPECT_EQ(got[1].events(0).kv().key(), "k3");
  EXPECT_EQ(got[1].events(1).kv().key(), "k2");
  ASSERT_EQ(got[2].events_size(), 2);  // the range delete, in key order
  EXPECT_EQ(got[2].events(0).type(), mvccpb::Event::DELETE);
  EXPECT_EQ(got[2].events(0).kv().key(), "k1");
  EXPECT_EQ(got[2].events(1).kv().key(), "k2");
}

TEST_F(WatchHubTest, GroupCommittedRevisionsStillGoOutOnePerResponse) {
  auto c = Open();
  Watch(c.get(), {kNul, kNul});
  storage_.SetLatencyHook([] { return int64_t{5}; });
  for (int i = 0; i < 20; ++i) {
    etcdserverpb::PutRequest req;
    req.set_key("k" + std::to_string(i));
    node_->Put(RequestContext(), req, [](auto) {});
  }
  executor_.AdvanceMs(50);
  EXPECT_LE(node_->storage_writes(), 3u);
  auto got = c->Take();
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(got[i].header().revision(), i + 2);
    ASSERT_EQ(got[i].events_size(), 1);
    EXPECT_EQ(got[i].events(0).kv().mod_revision(), i + 2);
  }
}

TEST_F(WatchHubTest, LeaseRevokeDeletesItsKeysInOneRevision) {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_id(7);
  grant.set_ttl(60);
  Call(&Node::LeaseGrant, grant);
  for (const char* k : {"l/b", "l/a"}) {
    etcdserverpb::PutRequest put;
    put.set_key(k);
    put.set_value("v");
    put.set_lease(7);
    Call(&Node::Put, put);
  }
  auto c = Open();
  Watch(c.get(), {"l/", PrefixEnd("l/"), 0, 0, /*prev_kv=*/true});
  etcdserverpb::LeaseRevokeRequest revoke;
  revoke.set_id(7);
  const int64_t rev = Call(&Node::LeaseRevoke, revoke);
  auto got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header().revision(), rev);
  ASSERT_EQ(got[0].events_size(), 2);  // keys in sorted order, as etcd
  EXPECT_EQ(got[0].events(0).type(), mvccpb::Event::DELETE);
  EXPECT_EQ(got[0].events(0).kv().key(), "l/a");
  EXPECT_EQ(got[0].events(1).kv().key(), "l/b");
  EXPECT_EQ(got[0].events(0).prev_kv().lease(), 7);
}

TEST_F(WatchHubTest, NothingIsSentBeforeItIsDurable) {
  auto c = Open();
  Watch(c.get(), {"k"});
  storage_.SetLatencyHook([] { return int64_t{50}; });
  etcdserverpb::PutRequest req;
  req.set_key("k");
  node_->Put(RequestContext(), req, [](auto) {});
  executor_.AdvanceMs(49);
  EXPECT_TRUE(c->Take().empty());
  executor_.AdvanceMs(1);
  EXPECT_EQ(c->Take().size(), 1u);
}

TEST_F(WatchHubTest, WatcherCreatedWhileUnwatchedWritesAreInFlightGetsThem) {
  // Nobody watched when the put was staged, so its events were never captured; the new
  // watcher (from "now" = the durable revision 1) must still get it, from storage.
  storage_.SetLatencyHook([] { return int64_t{50}; });
  etcdserverpb::PutRequest req;
  req.set_key("k");
  node_->Put(RequestContext(), req, [](auto) {});
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({"k"}));
  executor_.AdvanceMs(10);
  auto created = c->Take();
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].header().revision(), 1);
  EXPECT_EQ(hub().unsynced_watcher_count(), 1u);
  executor_.AdvanceMs(100);
  auto got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  ASSERT_EQ(got[0].events_size(), 1);
  EXPECT_EQ(got[0].events(0).kv().mod_revision(), 2);
  EXPECT_EQ(hub().unsynced_watcher_count(), 0u);
  storage_.SetLatencyHook(nullptr);
  Put("k", "again");
  got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].events(0).kv().mod_revision(), 3);
}

TEST_F(WatchHubTest, PrevKvAndDeleteEventShape) {
  auto c = Open();
  Watch(c.get(), {"k", "", 0, 0, /*prev_kv=*/true});
  auto plain = Open();
  Watch(plain.get(), {"k"});
  Put("k", "1");
  Put("k", "2");
  Delete("k");
  Put("k", "3");
  auto got = c->Take();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_FALSE(got[0].events(0).has_prev_kv());  // a create has none
  ASSERT_TRUE(got[1].events(0).has_prev_kv());
  EXPECT_EQ(got[1].events(0).prev_kv().value(), "1");
  EXPECT_EQ(got[1].events(0).prev_kv().mod_revision(), 2);
  const mvccpb::Event& del = got[2].events(0);
  EXPECT_EQ(del.type(), mvccpb::Event::DELETE);
  EXPECT_EQ(del.kv().key(), "k");
  EXPECT_EQ(del.kv().mod_revision(), 4);
  EXPECT_EQ(del.kv().create_revision(), 0);
  EXPECT_EQ(del.kv().version(), 0);
  EXPECT_TRUE(del.kv().value().empty());
  EXPECT_EQ(del.prev_kv().value(), "2");
  EXPECT_EQ(del.prev_kv().version(), 2);
  EXPECT_FALSE(got[3].events(0).has_prev_kv());  // recreated: a create again
  EXPECT_EQ(got[3].events(0).kv().version(), 1);
  for (const auto& r : plain->Take()) EXPECT_FALSE(r.events(0).has_prev_kv());
}

TEST_F(WatchHubTest, FiltersDropEventsAndEmptyResponses) {
  auto c = Open();
  const int64_t no_put = Watch(c.get(), {"k", "", 0, 0, false, false, false, /*no_put=*/true});
  const int64_t no_del =
      Watch(c.get(), {"k", "", 0, 0, false, false, false, false, /*no_delete=*/true});
  Put("k", "1");
  Delete("k");
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].watch_id(), no_del);
  EXPECT_EQ(got[0].events(0).type(), mvccpb::Event::PUT);
  EXPECT_EQ(got[1].watch_id(), no_put);
  EXPECT_EQ(got[1].events(0).type(), mvccpb::Event::DELETE);
}

TEST_F(WatchHubTest, EmptyKeyWithNulEndWatchesEverything) {
  auto c = Open();
  Watch(c.get(), {"", kNul});
  Put(kNul, "nul");
  Put("\xff", "ff");
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].events(0).kv().key(), kNul);
  EXPECT_EQ(got[1].events(0).kv().key(), "\xff");
}

TEST_F(WatchHubTest, FutureStartRevisionWaits) {
  auto c = Open();
  Watch(c.get(), {"k", "", /*start=*/4});
  Put("k", "2");
  Put("k", "3");
  EXPECT_TRUE(c->Take().empty());
  Put("k", "4");
  Put("k", "5");
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].events(0).kv().mod_revision(), 4);
  EXPECT_EQ(got[1].events(0).kv().mod_revision(), 5);
}

// --- History --------------------------------------------------------------------------------

TEST_F(WatchHubTest, CatchUpFromHistoryInBatchesOfAtMostAThousandRevisions) {
  for (int i = 0; i < 2500; ++i) Put("k" + std::to_string(i % 7), std::to_string(i));  // 2..2501
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({"k", PrefixEnd("k"), /*start=*/2}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 4u);  // created + 1000 + 1000 + 500 revisions
  EXPECT_TRUE(got[0].created());
  int64_t next = 2;
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_EQ(got[i].header().revision(), 2501);  // catch-up reports the current revision
    EXPECT_LE(got[i].events_size(), 1000);
    for (const auto& ev : got[i].events()) EXPECT_EQ(ev.kv().mod_revision(), next++);
  }
  EXPECT_EQ(next, 2502);
  EXPECT_GE(hub().catch_up_steps(), 3u);
  EXPECT_EQ(hub().unsynced_watcher_count(), 0u);
  Put("k0", "live");
  got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header().revision(), 2502);
}

TEST_F(WatchHubTest, CatchUpCarriesPrevKvUnlessCompacted) {
  Put("a", "1");   // 2
  Put("a", "2");   // 3
  Put("a", "3");   // 4
  Compact(3);
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({"a", "", 3, 0, /*prev_kv=*/true}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got[1].events_size(), 2);
  EXPECT_FALSE(got[1].events(0).has_prev_kv());  // revision 2 is below the compaction point
  ASSERT_TRUE(got[1].events(1).has_prev_kv());
  EXPECT_EQ(got[1].events(1).prev_kv().value(), "2");
}

TEST_F(WatchHubTest, StartBelowCompactionIsCanceledWithCompactRevision) {
  for (int i = 0; i < 5; ++i) Put("k", std::to_string(i));  // 2..6
  Compact(5);
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({"k", "", /*start=*/3, /*id=*/9}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_TRUE(got[0].created());
  EXPECT_EQ(got[0].watch_id(), 9);
  EXPECT_EQ(got[1].watch_id(), 9);
  EXPECT_TRUE(got[1].canceled());
  EXPECT_FALSE(got[1].created());
  EXPECT_EQ(got[1].compact_revision(), 5);
  EXPECT_EQ(got[1].cancel_reason(), "");
  EXPECT_EQ(got[1].header().revision(), 0);  // as etcd: sent with no revision
  EXPECT_EQ(got[1].header().cluster_id(), 11u);
  Put("k", "later");
  EXPECT_TRUE(c->Take().empty());
  // As in etcd, the id stays taken until the client cancels it, and it is not synced.
  auto dup = Send(c.get(), CreateRequest({"k", "", 0, 9}));
  EXPECT_EQ(dup[0].cancel_reason(), "mvcc: duplicate watch ID provided on the WatchStream");
  EXPECT_TRUE(Send(c.get(), ProgressRequest()).empty());
  auto canceled = Send(c.get(), CancelRequest(9));
  ASSERT_EQ(canceled.size(), 1u);
  EXPECT_TRUE(canceled[0].canceled());
  // Exactly the compaction revision is still served, from its first event on.
  auto again = Send(c.get(), CreateRequest({"k", "", 5}));
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].events(0).kv().mod_revision(), 5);
}

TEST_F(WatchHubTest, WatchFromCompactionRevisionSeesTheDeleteAtIt) {
  // Regression (etcd #18089): a compaction at a delete's revision must not drop the delete
  // from the history a watcher starting at that revision reads.
  Put("k", "1");      // 2
  Delete("k");        // 3
  Put("other", "x");  // 4
  Compact(3);
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({kNul, kNul, 3}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got[1].events_size(), 2);
  EXPECT_EQ(got[1].events(0).type(), mvccpb::Event::DELETE);
  EXPECT_EQ(got[1].events(0).kv().mod_revision(), 3);
  // ... also after a restart, which rebuilds the keyspace from storage.
  node_.reset();
  StartNode();
  c = Open();
  node_->WatchRequest(c->id, CreateRequest({kNul, kNul, 3}));
  Settle();
  got = c->Take();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].events_size(), 2);
}

TEST_F(WatchHubTest, LargeResponsesAreFragmentedOnlyWhenAsked) {
  const std::string mib(1 << 20, 'v');
  Put("a", mib);
  Put("b", mib);
  Put("c", mib);
  auto c = Open();
  node_->WatchRequest(c->id, CreateRequest({"a", "d", 2, 0, false, false, /*fragment=*/true}));
  node_->WatchRequest(c->id, CreateRequest({"a", "d", 2}));
  Settle();
  auto got = c->Take();
  ASSERT_EQ(got.size(), 6u);  // 2 created, 3 fragments for watcher 0, 1 response for 1
  std::vector<const WatchResponse*> frags;
  for (const auto& r : got) {
    if (r.events_size() > 0 && r.watch_id() == 0) frags.push_back(&r);
  }
  ASSERT_EQ(frags.size(), 3u);
  EXPECT_TRUE(frags[0]->fragment());
  EXPECT_TRUE(frags[1]->fragment());
  EXPECT_FALSE(frags[2]->fragment());
  for (const auto* f : frags) {
    EXPECT_EQ(f->events_size(), 1);
    EXPECT_LT(f->ByteSizeLong(), 1572864u + 512 * 1024);
  }
  const WatchResponse& whole = got.back();
  EXPECT_EQ(whole.watch_id(), 1);
  EXPECT_EQ(whole.events_size(), 3);
  EXPECT_FALSE(whole.fragment());
}

// --- Progress -------------------------------------------------------------------------------

class WatchProgressTest : public WatchHubTest {
 protected:
  WatchProgressTest() { progress_interval_ms_ = 1000; }
};

TEST_F(WatchProgressTest, NotifiesAtTheIntervalOnlyWithoutEvents) {
  auto c = Open();
  const int64_t id = Watch(c.get(), {"k", "", 0, 0, false, /*progress=*/true});
  Watch(c.get(), {"k"});  // did not ask: never notified
  executor_.AdvanceMs(999);
  EXPECT_TRUE(c->Take().empty());
  executor_.AdvanceMs(101);  // the interval plus at most 10% jitter
  auto got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(IsProgress(got[0]));
  EXPECT_EQ(got[0].watch_id(), id);
  EXPECT_EQ(got[0].header().revision(), 1);
  // An event since the last tick elides the next notification.
  executor_.AdvanceMs(500);
  Put("k", "1");
  c->Take();
  executor_.AdvanceMs(1100);
  EXPECT_TRUE(c->Take().empty());
  executor_.AdvanceMs(1100);
  got = c->Take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header().revision(), 2);
}

TEST_F(WatchProgressTest, IntervalHasAFloorOfOneHundredMilliseconds) {
  progress_interval_ms_ = 1;
  node_.reset();
  StartNode();
  auto c = Open();
  Watch(c.get(), {"k", "", 0, 0, false, true});
  executor_.AdvanceMs(99);
  EXPECT_TRUE(c->Take().empty());
  executor_.AdvanceMs(11);
  EXPECT_EQ(c->Take().size(), 1u);
}

TEST_F(WatchProgressTest, NoNotificationBeforeAFutureStartRevision) {
  auto c = Open();
  Watch(c.get(), {"k", "", /*start=*/5, 0, false, true});
  executor_.AdvanceMs(1100);
  EXPECT_TRUE(c->Take().empty());
}

TEST_F(WatchHubTest, ProgressRequestAnswersOnlyWhenEveryWatcherIsSynced) {
  auto c = Open();
  EXPECT_TRUE(Send(c.get(), ProgressRequest()).empty());  // no watcher: nothing, as etcd 3.5
  Watch(c.get(), {"a"});
  Put("b", "1");
  auto got = Send(c.get(), ProgressRequest());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].watch_id(), -1);
  EXPECT_EQ(got[0].header().revision(), 2);
  EXPECT_TRUE(IsProgress(got[0]));
  // A watcher still catching up makes the stream unsynced: the request is dropped.
  for (int i = 0; i < 1500; ++i) Put("h", "x");
  node_->WatchRequest(c->id, CreateRequest({"h", "", 2}));
  node_->WatchRequest(c->id, ProgressRequest());
  executor_.RunUntilIdle();
  got = c->Take();
  for (const auto& r : got) EXPECT_FALSE(IsProgress(r));
  got = Send(c.get(), ProgressRequest());  // caught up by now
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header().revision(), 1502);
}

// --- Slow consumers -------------------------------------------------------------------------

TEST_F(WatchHubTest, SlowWatcherIsDroppedToCatchUpAndMemoryStaysBounded) {
  constexpr size_t kResponsesMax = 8;
  constexpr int64_t kBytesMax = 16 * 1024;
  WatchStreamBuffer buffer(kResponsesMax, kBytesMax);
  auto id = node_->OpenWatchStream(
      RequestContext(), [&buffer](WatchResponse r) { return buffer.Offer(std::move(r)); });
  ASSERT_TRUE(id.ok());
  node_->WatchRequest(*id, CreateRequest({"k", PrefixEnd("k")}));
  Settle();
  const std::string value(1000, 'v');
  int64_t expected_next = 2;
  size_t largest = 0;
  size_t max_unsynced = 0;
  auto drain = [&](size_t n) {
    for (size_t i = 0; i < n && !buffer.empty(); ++i) {
      WatchResponse r = buffer.Pop();
      largest = std::max(largest, r.ByteSizeLong());
      for (const auto& ev : r.events()) ASSERT_EQ(ev.kv().mod_revision(), expected_next++);
    }
    if (buffer.TakeResume()) node_->ResumeWatchStream(*id);
  };
  // The client reads one response per five writes.
  for (int i = 0; i < 2000; ++i) {
    Put("k" + std::to_string(i % 13), value);
    max_unsynced = std::max(max_unsynced, hub().unsynced_watcher_count());
    if (i % 5 == 0) drain(1);
  }
  EXPECT_GT(buffer.refusals(), 0u);
  EXPECT_EQ(max_unsynced, 1u);  // it was dropped to catch-up...
  EXPECT_LE(buffer.bytes_max_seen(), static_cast<int64_t>(kBytesMax + largest));
  EXPECT_LE(buffer.responses_max_seen(), kResponsesMax + 1);  // + the created response
  EXPECT_EQ(hub().pending_revision_count(), 0u);
  // ... and once the client reads again, it gets everything, in order, exactly once.
  for (int round = 0; round < 10000 && expected_next < 2002; ++round) {
    drain(100);
    Settle();
  }
  EXPECT_EQ(expected_next, 2002);
  EXPECT_EQ(hub().unsynced_watcher_count(), 0u);
  Put("k0", "live");
  drain(100);
  EXPECT_EQ(expected_next, 2003);
}

TEST_F(WatchHubTest, ClosingAStreamForgetsItsWatchersAndStopsCapture) {
  auto c = Open();
  Watch(c.get(), {"a"});
  Watch(c.get(), {"b", "c", 0, 0, false, true});
  EXPECT_TRUE(hub().WantsEvents());
  node_->CloseWatchStream(c->id);
  EXPECT_EQ(hub().stream_count(), 0u);
  EXPECT_EQ(hub().active_watcher_count(), 0u);
  EXPECT_FALSE(hub().WantsEvents());
  Put("a", "1");
  EXPECT_TRUE(c->Take().empty());
  // Requests for a closed stream are ignored.
  EXPECT_TRUE(Send(c.get(), CreateRequest({"a"})).empty());
}

// --- The guarantees, over randomized histories ----------------------------------------------

// A reference model of the keyspace that yields the events etcd would report.
class Model {
 public:
  struct Kv {
    std::string value;
    int64_t create = 0, mod = 0, version = 0;
  };

  int64_t revision() const { return rev_; }

  // Each mutation returns whether it made a new revision.
  bool Puts(const std::vector<std::pair<std::string, std::string>>& kvs) {
    if (kvs.empty()) return false;
    ++rev_;
    auto& evs = history_[rev_];
    for (const auto& [k, v] : kvs) {
      mvccpb::Event ev;
      ev.set_type(mvccpb::Event::PUT);
      auto it = live_.find(k);
      Kv next{v, rev_, rev_, 1};
      if (it != live_.end()) {
        SetKv(k, it->second, ev.mutable_prev_kv());
        next.create = it->second.create;
        next.version = it->second.version + 1;
      }
      live_[k] = next;
      SetKv(k, next, ev.mutable_kv());
      evs.push_back(ev);
    }
    return true;
  }
  bool DeleteRange(const KeyRange& range) {
    std::vector<std::string> victims;
    for (const auto& [k, kv] : live_) {
      if (range.Contains(k)) victims.push_back(k);
    }
    if (victims.empty()) return false;
    ++rev_;
    auto& evs = history_[rev_];
    for (const auto& k : victims) {
      mvccpb::Event ev;
      ev.set_type(mvccpb::Event::DELETE);
      ev.mutable_kv()->set_key(k);
      ev.mutable_kv()->set_mod_revision(rev_);
      SetKv(k, live_[k], ev.mutable_prev_kv());
      live_.erase(k);
      evs.push_back(ev);
    }
    return true;
  }

  // Events of revisions [from, to] a watcher with this spec should see, in order.
  std::vector<const mvccpb::Event*> Expected(const KeyRange& range, bool no_put, bool no_delete,
                                             int64_t from, int64_t to) const {
    std::vector<const mvccpb::Event*> out;
    for (auto it = history_.lower_bound(from); it != history_.end() && it->first <= to; ++it) {
      for (const auto& ev : it->second) {
        if (!range.Contains(ev.kv().key())) continue;
        if (no_put && ev.type() == mvccpb::Event::PUT) continue;
        if (no_delete && ev.type() == mvccpb::Event::DELETE) continue;
        out.push_back(&ev);
      }
    }
    return out;
  }

 private:
  static void SetKv(const std::string& k, const Kv& v, mvccpb::KeyValue* out) {
    out->set_key(k);
    out->set_value(v.value);
    out->set_create_revision(v.create);
    out->set_mod_revision(v.mod);
    out->set_version(v.version);
  }

  int64_t rev_ = 1;
  std::map<std::string, Kv> live_;
  std::map<int64_t, std::vector<mvccpb::Event>> history_;
};

// One client's view of one watch, from the revision it asked for.
struct Session {
  Spec spec;
  KeyRange range;
  int64_t id = -2;     // until created
  int64_t next = 0;    // every event below this revision has been received and checked
  bool live = true;    // false once canceled (by us, or by compaction)
  bool cancel_sent = false;
  std::vector<mvccpb::Event> partial;  // a fragment chain being reassembled
};

struct TestClient {
  uint64_t stream_id = 0;
  std::unique_ptr<WatchStreamBuffer> buffer;
  std::vector<std::unique_ptr<Session>> sessions;
  std::deque<Session*> awaiting_created;
  std::map<int64_t, Session*> by_id;
  // Ids canceled by compaction that the client then cancels itself (etcd keeps them taken).
  std::set<int64_t> dead_ids;
};

class GuaranteeChecker {
 public:
  GuaranteeChecker(const Model* model, const Node* node) : model_(model), node_(node) {}

  // Checks one response on `c`; returns what the client must do next (nothing, or a new
  // session after a compaction cancel).
  std::optional<Spec> Process(TestClient* c, const WatchResponse& r) {
    if (r.created()) {
      EXPECT_FALSE(c->awaiting_created.empty()) << "unexpected created response";
      if (c->awaiting_created.empty()) return std::nullopt;
      Session* s = c->awaiting_created.front();
      c->awaiting_created.pop_front();
      EXPECT_FALSE(r.canceled()) << r.cancel_reason();
      s->id = r.watch_id();
      if (s->spec.start == 0) s->next = r.header().revision() + 1;  // "now" = its header
      EXPECT_EQ(c->by_id.count(s->id), 0u) << "watch id reused while live";
      c->by_id[s->id] = s;
      return std::nullopt;
    }
    if (IsProgress(r)) {
      ++progress_seen_;
      const int64_t rev = r.header().revision();
      if (r.watch_id() == -1) {
        for (auto& [id, s] : c->by_id) Bookmark(s, rev);
      } else if (auto it = c->by_id.find(r.watch_id()); it != c->by_id.end()) {
        Bookmark(it->second, rev);
      }
      return std::nullopt;
    }
    if (r.canceled() && c->dead_ids.erase(r.watch_id()) == 1) return std::nullopt;
    auto it = c->by_id.find(r.watch_id());
    EXPECT_NE(it, c->by_id.end()) << "response for unknown watch " << r.watch_id();
    if (it == c->by_id.end()) return std::nullopt;
    Session* s = it->second;
    if (r.canceled()) {
      c->by_id.erase(it);
      s->live = false;
      if (r.compact_revision() != 0) {
        ++compactions_seen_;
        // Reliable: only history below the compaction point may be missed.
        EXPECT_LT(s->next, r.compact_revision());
        Spec again = s->spec;
        again.start = r.compact_revision();
        again.id = 0;
        return again;
      }
      EXPECT_TRUE(s->cancel_sent);
      return std::nullopt;
    }
    EXPECT_TRUE(s->live);
    for (const auto& ev : r.events()) s->partial.push_back(ev);
    if (r.fragment()) return std::nullopt;
    std::vector<mvccpb::Event> events;
    events.swap(s->partial);
    CheckEvents(s, r.header().revision(), events);
    return std::nullopt;
  }

  // At the end: every live session has everything up to the durable revision.
  void CheckComplete(const Session& s) const {
    if (!s.live || s.id < 0) return;
    auto missing = model_->Expected(s.range, s.spec.no_put, s.spec.no_delete, s.next,
                                    node_->durable_revision());
    EXPECT_TRUE(missing.empty()) << "watch " << s.id << " never got " << missing.size()
                                 << " events from revision " << s.next;
  }

  int progress_seen() const { return progress_seen_; }
  int compactions_seen() const { return compactions_seen_; }
  int64_t events_seen() const { return events_seen_; }

 private:
  // Bookmarkable: a progress at `rev` comes after every event <= rev.
  void Bookmark(Session* s, int64_t rev) {
    auto missing = model_->Expected(s->range, s->spec.no_put, s->spec.no_delete, s->next, rev);
    EXPECT_TRUE(missing.empty()) << "progress at " << rev << " before events from " << s->next;
    s->next = std::max(s->next, rev + 1);
  }

  // Ordered, unique, reliable and atomic: the response holds exactly the expected events
  // from the session's next revision through its last one.
  void CheckEvents(Session* s, int64_t header_rev, const std::vector<mvccpb::Event>& events) {
    ASSERT_FALSE(events.empty());
    const int64_t last = events.back().kv().mod_revision();
    EXPECT_GE(header_rev, last);
    auto want = model_->Expected(s->range, s->spec.no_put, s->spec.no_delete, s->next, last);
    ASSERT_EQ(events.size(), want.size())
        << "watch " << s->id << " revisions " << s->next << ".." << last;
    for (size_t i = 0; i < events.size(); ++i) {
      const mvccpb::Event& got = events[i];
      const mvccpb::Event& exp = *want[i];
      EXPECT_EQ(got.type(), exp.type());
      EXPECT_EQ(got.kv().SerializeAsString(), exp.kv().SerializeAsString())
          << "at revision " << exp.kv().mod_revision();
      if (!s->spec.prev_kv) {
        EXPECT_FALSE(got.has_prev_kv());
      } else if (got.has_prev_kv()) {
        EXPECT_EQ(got.prev_kv().SerializeAsString(), exp.prev_kv().SerializeAsString());
      } else if (exp.has_prev_kv()) {
        // Only a compacted previous version may be left out.
        EXPECT_LT(exp.kv().mod_revision() - 1, node_->compact_revision());
      }
    }
    events_seen_ += static_cast<int64_t>(events.size());
    s->next = last + 1;
  }

  const Model* model_;
  const Node* node_;
  int progress_seen_ = 0;
  int compactions_seen_ = 0;
  int64_t events_seen_ = 0;
};

uint64_t SeedFromEnv(uint64_t fallback) {
  const char* env = std::getenv("GEOETCD_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
}

class WatchGuaranteeTest : public WatchHubTest, public ::testing::WithParamInterface<uint64_t> {
 protected:
  WatchGuaranteeTest() { progress_interval_ms_ = 100; }

  void Run(uint64_t seed) {
    std::printf("WatchGuaranteeTest seed=%llu (rerun with GEOETCD_SEED=%llu)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    Random rnd(seed);
    storage_.SetLatencyHook([&rnd] { return static_cast<int64_t>(rnd.Uniform(4)); });
    Model model;
    GuaranteeChecker checker(&model, node_.get());
    std::vector<std::unique_ptr<TestClient>> clients;
    constexpr size_t kBufferResponsesMax = 6;
    constexpr int64_t kBufferBytesMax = 2048;

    const std::vector<std::string> keys = {"a", "b", "c", "p/1", "p/2", "p/3", "q", kNul};
    auto random_spec = [&]() {
      Spec s;
      switch (rnd.Uniform(4)) {
        case 0: s.key = keys[rnd.Uniform(keys.size())]; break;
        case 1: s.key = "p/"; s.range_end = PrefixEnd("p/"); break;
        case 2: s.key = "b"; s.range_end = kNul; break;
        default: s.key = ""; s.range_end = kNul; break;
      }
      const int64_t durable = node_->durable_revision();
      const int64_t compact = std::max<int64_t>(1, node_->compact_revision());
      switch (rnd.Uniform(5)) {
        case 0: s.start = rnd.Range(compact, durable); break;
        case 1: s.start = durable + 1 + static_cast<int64_t>(rnd.Uniform(5)); break;
        case 2: s.start = compact > 1 ? rnd.Range(1, compact) : 0; break;
        default: s.start = 0; break;
      }
      s.prev_kv = rnd.Chance(0.5);
      s.progress = rnd.Chance(0.5);
      s.fragment = rnd.Chance(0.2);
      s.no_put = rnd.Chance(0.1);
      s.no_delete = !s.no_put && rnd.Chance(0.1);
      return s;
    };
    auto add_session = [&](TestClient* c, const Spec& spec, int64_t from) {
      auto s = std::make_unique<Session>();
      s->spec = spec;
      const std::string key = spec.key.empty() ? kNul : spec.key;
      s->range = KeyRange::FromEtcd(key, spec.range_end);
      s->next = from;
      c->awaiting_created.push_back(s.get());
      node_->WatchRequest(c->stream_id, CreateRequest(spec));
      c->sessions.push_back(std::move(s));
    };
    // A watch from "now" learns where it starts from its created response.
    auto new_spec_session = [&](TestClient* c) {
      Spec spec = random_spec();
      add_session(c, spec, spec.start);
    };
    // Bounded memory: a buffer never holds more than its bound, plus the one response that
    // crossed it, plus created/canceled responses (at most one per request or watcher).
    int64_t largest_offered = 0;
    constexpr int64_t kControlSlackBytes = 2048;
    auto check_bound = [&](const TestClient& c) {
      EXPECT_LE(c.buffer->bytes_max_seen(), kBufferBytesMax + largest_offered + kControlSlackBytes);
    };
    auto open_stream = [&](TestClient* c) {
      c->buffer = std::make_unique<WatchStreamBuffer>(kBufferResponsesMax, kBufferBytesMax);
      WatchStreamBuffer* buf = c->buffer.get();
      auto id = node_->OpenWatchStream(RequestContext(), [buf, &largest_offered](WatchResponse r) {
        largest_offered = std::max(largest_offered, static_cast<int64_t>(r.ByteSizeLong()));
        return buf->Offer(std::move(r));
      });
      ASSERT_TRUE(id.ok());
      c->stream_id = *id;
    };
    auto drain = [&](TestClient* c, size_t n) {
      for (size_t i = 0; i < n && !c->buffer->empty(); ++i) {
        WatchResponse r = c->buffer->Pop();
        if (auto again = checker.Process(c, r)) {
          c->dead_ids.insert(r.watch_id());
          node_->WatchRequest(c->stream_id, CancelRequest(r.watch_id()));
          add_session(c, *again, again->start);
        }
      }
      if (c->buffer->TakeResume()) node_->ResumeWatchStream(c->stream_id);
    };
    // Resumable: a new stream re-watches every live session from where it got to.
    auto reconnect = [&](TestClient* c) {
      check_bound(*c);
      node_->CloseWatchStream(c->stream_id);
      std::vector<Session*> resume;
      for (auto& s : c->sessions) {
        if (s->live && !s->cancel_sent) resume.push_back(s.get());
        s->live = false;
      }
      c->by_id.clear();
      c->dead_ids.clear();
      c->awaiting_created.clear();
      open_stream(c);
      for (Session* s : resume) {
        Spec spec = s->spec;
        spec.start = s->next;
        spec.id = 0;
        add_session(c, spec, s->next);
      }
    };

    for (int i = 0; i < 3; ++i) {
      clients.push_back(std::make_unique<TestClient>());
      open_stream(clients.back().get());
      for (int j = 0; j < 2; ++j) new_spec_session(clients.back().get());
    }

    for (int step = 0; step < 3000; ++step) {
      // The server side: writes, deletes, txns and compactions, many in flight at once.
      const uint64_t op = rnd.Uniform(100);
      if (op < 30) {
        etcdserverpb::PutRequest req;
        req.set_key(keys[rnd.Uniform(keys.size())]);
        req.set_value(std::string(rnd.Uniform(300), 'x') + std::to_string(step));
        model.Puts({{req.key(), req.value()}});
        node_->Put(RequestContext(), req, [](auto r) { ASSERT_TRUE(r.ok()); });
      } else if (op < 38) {
        etcdserverpb::DeleteRangeRequest req;
        req.set_key(keys[rnd.Uniform(keys.size())]);
        if (rnd.Chance(0.4)) req.set_range_end(PrefixEnd(req.key()));
        model.DeleteRange(KeyRange::FromEtcd(req.key(), req.range_end()));
        node_->DeleteRange(RequestContext(), req, [](auto r) { ASSERT_TRUE(r.ok()); });
      } else if (op < 43) {
        etcdserverpb::TxnRequest req;
        std::vector<std::pair<std::string, std::string>> kvs;
        std::vector<std::string> shuffled = keys;
        for (size_t n = 1 + rnd.Uniform(3); n > 0; --n) {
          const size_t pick = rnd.Uniform(shuffled.size());
          kvs.emplace_back(shuffled[pick], "t" + std::to_string(step));
          shuffled.erase(shuffled.begin() + static_cast<std::ptrdiff_t>(pick));
        }
        for (const auto& [k, v] : kvs) {
          auto* put = req.add_success()->mutable_request_put();
          put->set_key(k);
          put->set_value(v);
        }
        model.Puts(kvs);
        node_->Txn(RequestContext(), req, [](auto r) { ASSERT_TRUE(r.ok()); });
      } else if (op == 43 && rnd.Chance(0.3) &&
                 node_->durable_revision() > node_->compact_revision() + 20) {
        etcdserverpb::CompactionRequest req;
        req.set_revision(rnd.Range(node_->compact_revision() + 1, node_->durable_revision() - 5));
        node_->Compact(RequestContext(), req, [](auto) {});
      }
      // The clients: read slowly, re-watch, cancel, ask for progress, reconnect.
      for (auto& c : clients) {
        const uint64_t act = rnd.Uniform(100);
        // Like the gateway, a client whose responses pile up sends no requests.
        const bool can_send = !c->buffer->full();
        if (act < 35) {
          drain(c.get(), 1 + rnd.Uniform(3));
        } else if (act < 37 && can_send) {
          node_->WatchRequest(c->stream_id, ProgressRequest());
        } else if (act < 38) {
          reconnect(c.get());
        } else if (act < 40 && can_send) {
          new_spec_session(c.get());
        } else if (act < 41 && can_send && !c->by_id.empty()) {
          auto it = c->by_id.begin();
          std::advance(it, static_cast<std::ptrdiff_t>(rnd.Uniform(c->by_id.size())));
          if (!it->second->cancel_sent) {
            it->second->cancel_sent = true;
            node_->WatchRequest(c->stream_id, CancelRequest(it->first));
          }
        }
      }
      executor_.AdvanceMs(1);
      node_->CheckInvariants();
      if (HasFatalFailure()) return;
    }
    // Quiesce: the clients read everything, and every watcher reaches the durable revision.
    storage_.SetLatencyHook(nullptr);
    for (int round = 0; round < 200; ++round) {
      for (auto& c : clients) drain(c.get(), 1000);
      executor_.AdvanceMs(1);
    }
    EXPECT_EQ(model.revision(), node_->durable_revision());
    EXPECT_EQ(node_->watch_hub()->unsynced_watcher_count(), 0u);
    for (auto& c : clients) {
      check_bound(*c);
      for (auto& s : c->sessions) checker.CheckComplete(*s);
    }
    EXPECT_GT(checker.events_seen(), 1000);
    EXPECT_GT(checker.progress_seen(), 0);
    std::printf("  revisions=%lld events=%lld progress=%d compaction-cancels=%d "
                "largest-response=%lld\n",
                static_cast<long long>(node_->durable_revision()),
                static_cast<long long>(checker.events_seen()), checker.progress_seen(),
                checker.compactions_seen(), static_cast<long long>(largest_offered));
  }
};

TEST_P(WatchGuaranteeTest, HoldUnderRandomizedWritesCompactionsAndReconnects) {
  Run(SeedFromEnv(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Seeds, WatchGuaranteeTest, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8));

}  // namespace
}  // namespace geoetcd
