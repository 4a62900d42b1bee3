// The h2 transport (bench/h2_client.h): its helpers, the KV workloads over it against an
// in-process gRPC C++ server, and the HTTP/2 corners against a scripted fake server that
// sends exactly the frames each test needs.
#include "bench/h2_client.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/engine.h"
#include "bench/kv_wire.h"
#include "bench/options.h"
#include "bench/report.h"
#include "core/check.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "gateway/h2/frame.h"
#include "gateway/h2/hpack.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace geoetcd::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr int64_t kSecond = 1'000'000'000;

// ---- helpers -------------------------------------------------------------------------------

TEST(H2HelpersTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("plain text"), "plain text");
  EXPECT_EQ(PercentDecode("100%25 sure"), "100% sure");
  EXPECT_EQ(PercentDecode("%C3%BC%e2%98%83"), "\xc3\xbc\xe2\x98\x83");
  // Not an escape: left as is, including at the very end.
  EXPECT_EQ(PercentDecode("50%"), "50%");
  EXPECT_EQ(PercentDecode("5%4"), "5%4");
  EXPECT_EQ(PercentDecode("%zz%4g"), "%zz%4g");
  EXPECT_EQ(PercentDecode("%41"), "A");  // the shortest escape, ending the string
}

TEST(H2HelpersTest, GrpcTimeoutAtMostEightDigitsRoundedUp) {
  EXPECT_EQ(GrpcTimeoutValue(1), "1n");
  EXPECT_EQ(GrpcTimeoutValue(99'999'999), "99999999n");
  EXPECT_EQ(GrpcTimeoutValue(100'000'000), "100000u");
  EXPECT_EQ(GrpcTimeoutValue(100'000'001), "100001u");  // rounded up, never shorter
  EXPECT_EQ(GrpcTimeoutValue(30 * kSecond), "30000000u");
  EXPECT_EQ(GrpcTimeoutValue(99'999'999'000), "99999999u");
  EXPECT_EQ(GrpcTimeoutValue(99'999'999 * int64_t{1'000'000}), "99999999m");
  EXPECT_EQ(GrpcTimeoutValue(100'000'000 * int64_t{1'000'000}), "100000S");
}

TEST(H2HelpersTest, StatusMappingsFollowGrpc) {
  EXPECT_EQ(GrpcCodeForHttpStatus(400), 13);
  EXPECT_EQ(GrpcCodeForHttpStatus(401), 16);
  EXPECT_EQ(GrpcCodeForHttpStatus(403), 7);
  EXPECT_EQ(GrpcCodeForHttpStatus(404), 12);
  for (int s : {429, 502, 503, 504}) EXPECT_EQ(GrpcCodeForHttpStatus(s), 14) << s;
  EXPECT_EQ(GrpcCodeForHttpStatus(500), 2);
  EXPECT_EQ(GrpcCodeForHttp2Error(7, false), 14);  // REFUSED_STREAM
  EXPECT_EQ(GrpcCodeForHttp2Error(8, false), 1);   // CANCEL
  EXPECT_EQ(GrpcCodeForHttp2Error(8, true), 4);    // CANCEL after the deadline
  EXPECT_EQ(GrpcCodeForHttp2Error(11, false), 8);  // ENHANCE_YOUR_CALM
  EXPECT_EQ(GrpcCodeForHttp2Error(12, false), 7);  // INADEQUATE_SECURITY
  EXPECT_EQ(GrpcCodeForHttp2Error(0, false), 13);
  EXPECT_EQ(GrpcCodeForHttp2Error(1, false), 13);
}

// ---- wire scanners -------------------------------------------------------------------------

TEST(KvWireTest, RangeCountsKvs) {
  etcdserverpb::RangeResponse r;
  r.mutable_header()->set_revision(9);
  KvResponseFields f;
  ASSERT_TRUE(ScanRangeResponse(r.SerializeAsString(), &f));
  EXPECT_EQ(f.range_kvs, 0);
  for (int i = 0; i < 3; ++i) r.add_kvs()->set_key(absl::StrCat("k", i));
  r.set_count(3);
  ASSERT_TRUE(ScanRangeResponse(r.SerializeAsString(), &f));
  EXPECT_EQ(f.range_kvs, 3);
}

TEST(KvWireTest, TxnFields) {
  etcdserverpb::TxnResponse t;
  t.mutable_header()->set_revision(1234567890123);
  t.set_succeeded(true);
  t.add_responses()->mutable_response_put();
  KvResponseFields f;
  ASSERT_TRUE(ScanTxnResponse(t.SerializeAsString(), &f));
  EXPECT_TRUE(f.txn_succeeded);
  EXPECT_EQ(f.txn_revision, 1234567890123);
  EXPECT_EQ(f.txn_current_mod, 0);

  etcdserverpb::TxnResponse failed;
  failed.mutable_header()->set_revision(50);
  auto* kv = failed.add_responses()->mutable_response_range()->add_kvs();
  kv->set_key("k");
  kv->set_mod_revision(42);
  kv->set_value(std::string(300, 'v'));
  failed.add_responses()->mutable_response_range()->add_kvs()->set_mod_revision(7);
  ASSERT_TRUE(ScanTxnResponse(failed.SerializeAsString(), &f));
  EXPECT_FALSE(f.txn_succeeded);
  EXPECT_EQ(f.txn_revision, 50);
  EXPECT_EQ(f.txn_current_mod, 42);  // the first response's first kv, not a later one
}

TEST(KvWireTest, MalformedIsRejected) {
  etcdserverpb::RangeResponse r;
  r.add_kvs()->set_value(std::string(200, 'x'));
  const std::string bytes = r.SerializeAsString();
  KvResponseFields f;
  EXPECT_TRUE(ScanRangeResponse(bytes, &f));
  for (size_t cut = 1; cut < bytes.size(); cut += 37) {
    EXPECT_FALSE(ScanRangeResponse(bytes.substr(0, cut), &f)) << cut;
  }
  EXPECT_FALSE(ScanMessage(std::string("\x08", 1)));           // varint missing
  EXPECT_FALSE(ScanMessage(std::string("\x00\x01", 2)));       // field number 0
  EXPECT_FALSE(ScanMessage(std::string("\x0b", 1)));           // a group
  EXPECT_FALSE(ScanMessage(std::string(11, '\xff')));          // varint over 10 bytes
  EXPECT_FALSE(ScanRangeResponse(std::string("\x10\x01", 2), &f));  // kvs as a varint
  EXPECT_TRUE(ScanMessage(""));
}

// ---- options -------------------------------------------------------------------------------

absl::StatusOr<ParsedCommand> Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"geoetcd-bench"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(H2OptionsTest, TransportFlag) {
  auto d = Parse({"put"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->options.transport, Transport::kGrpc);
  for (const char* w : {"put", "range", "txn-put", "mixed"}) {
    auto p = Parse({w, "--transport", "h2"});
    ASSERT_TRUE(p.ok()) << w << ": " << p.status();
    EXPECT_EQ(p->options.transport, Transport::kH2);
    auto g = Parse({w, "--transport=grpc"});
    ASSERT_TRUE(g.ok());
    EXPECT_EQ(g->options.transport, Transport::kGrpc);
  }
  for (const char* w : {"watch", "lease", "rocksdb-sync", "grpc-empty"}) {
    auto p = Parse({w, "--transport", "h2"});
    ASSERT_FALSE(p.ok()) << w;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()),
                HasSubstr(absl::StrCat("--transport: h2 runs only put, range, txn-put and "
                                       "mixed; ",
                                       w, " needs --transport grpc")));
  }
  auto bad = Parse({"put", "--transport", "http2"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--transport: 'http2' is not grpc or h2");
  EXPECT_FALSE(Parse({"put", "--transport", "h2", "--transport", "h2"}).ok());
}

// ---- an in-process gRPC C++ server ---------------------------------------------------------

// Put/Range/Txn over an in-memory map with etcd's revision rules (enough for the bench's
// compare-and-swap), a recording of every put, and DeleteRange answering an error whose
// message needs percent-encoding.
class TestKv final : public etcdserverpb::KV::CallbackService {
 public:
  static constexpr const char* kErrorMessage = "key \xc3\xbc not here: 100% \xe2\x98\x83 gone";

  struct Kv {
    std::string value;
    int64_t mod = 0;
  };

  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_puts) {
      reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, kErrorMessage));
      return reactor;
    }
    puts.emplace_back(req->key(), req->value());
    resp->mutable_header()->set_revision(PutLocked(req->key(), req->value()));
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* req,
                                  etcdserverpb::RangeResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    std::lock_guard<std::mutex> lock(mu_);
    ++ranges;
    RangeLocked(req->key(), resp);
    if (resp->kvs_size() == 0) ++range_misses;
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    std::lock_guard<std::mutex> lock(mu_);
    const auto& cmp = req->compare(0);
    auto it = data.find(cmp.key());
    const int64_t mod = it == data.end() ? 0 : it->second.mod;
    const bool ok = mod == cmp.mod_revision();
    resp->set_succeeded(ok);
    if (ok) {
      const auto& put = req->success(0).request_put();
      puts.emplace_back(put.key(), put.value());
      PutLocked(put.key(), put.value());
      resp->add_responses()->mutable_response_put();
    } else {
      RangeLocked(req->failure(0).request_range().key(),
                  resp->add_responses()->mutable_response_range());
    }
    resp->mutable_header()->set_revision(revision);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::DeleteRangeRequest*,
                                        etcdserverpb::DeleteRangeResponse*) override {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, kErrorMessage));
    return reactor;
  }

  void Preload(const std::string& key, const std::string& value) {
    std::lock_guard<std::mutex> lock(mu_);
    PutLocked(key, value);
  }

  std::mutex& mu() { return mu_; }

  // Guarded by mu().
  bool fail_puts = false;
  std::vector<std::pair<std::string, std::string>> puts;
  std::map<std::string, Kv> data;
  int64_t revision = 1;
  int ranges = 0;
  int range_misses = 0;

 private:
  int64_t PutLocked(const std::string& key, const std::string& value) {
    ++revision;
    data[key] = Kv{value, revision};
    return revision;
  }
  void RangeLocked(const std::string& key, etcdserverpb::RangeResponse* resp) {
    resp->mutable_header()->set_revision(revision);
    auto it = data.find(key);
    if (it == data.end()) return;
    auto* kv = resp->add_kvs();
    kv->set_key(key);
    kv->set_value(it->second.value);
    kv->set_mod_revision(it->second.mod);
  }

  std::mutex mu_;
};

class GrpcServer {
 public:
  // `small_windows`: the server advertises a 1 KiB stream window and never grows it, so
  // every large request waits for WINDOW_UPDATEs.
  explicit GrpcServer(bool small_windows = false) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&kv);
    builder.SetMaxReceiveMessageSize(-1);
    if (small_windows) {
      builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
      builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
      builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 16384);
    }
    server_ = builder.BuildAndStart();
  }
  ~GrpcServer() { server_->Shutdown(DeadlineIn(kSecond)); }
  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port_); }

  TestKv kv;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

BenchOptions H2Options(const std::string& endpoint, Workload workload) {
  BenchOptions o;
  o.workload = workload;
  o.transport = Transport::kH2;
  o.endpoints = {endpoint};
  o.connect_timeout_ns = 2 * kSecond;
  o.timeout_ns = 5 * kSecond;  // a stalled call fails the test in seconds, not minutes
  return o;
}

TEST(H2WorkloadTest, PutsReachTheServerWithTheRightKeysAndValues) {
  GrpcServer server;
  BenchOptions o = H2Options(server.endpoint(), Workload::kPut);
  o.total = 300;
  o.clients = 8;
  o.conns = 3;
  o.threads = 2;
  o.key_space = 50;
  o.sequential_keys = true;
  o.val_size = 100;
  auto r = RunKvWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 300u);
  EXPECT_EQ(r->errors, 0u);
  EXPECT_TRUE(r->errors_by_code.empty());
  EXPECT_GT(r->seconds, 0);
  std::lock_guard<std::mutex> lock(server.kv.mu());
  EXPECT_EQ(server.kv.puts.size(), 300u);
  std::set<std::string> keys;
  const KeyFormat format(o.key_prefix, o.key_size);
  for (const auto& [k, v] : server.kv.puts) {
    keys.insert(k);
    EXPECT_EQ(v.size(), 100u);
  }
  std::set<std::string> want;
  for (int i = 0; i < 50; ++i) want.insert(format.Make(i));
  EXPECT_EQ(keys, want);
  const std::string json = ToJson(o, *r);
  EXPECT_THAT(json, HasSubstr("\"transport\":\"h2\""));
}

TEST(H2WorkloadTest, RangeMissesMatchTheServer) {
  GrpcServer server;
  const KeyFormat format("bench/", 32);
  for (int i = 0; i < 100; i += 2) server.kv.Preload(format.Make(i), "v");
  BenchOptions o = H2Options(server.endpoint(), Workload::kRange);
  o.total = 400;
  o.clients = 5;
  o.conns = 2;
  o.threads = 2;
  o.key_space = 100;
  auto r = RunKvWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 400u);
  EXPECT_EQ(r->errors, 0u);
  std::lock_guard<std::mutex> lock(server.kv.mu());
  EXPECT_EQ(server.kv.ranges, 400);
  ASSERT_EQ(r->extras.size(), 1u);
  EXPECT_EQ(r->extras[0].first, "range_misses");
  EXPECT_EQ(r->extras[0].second, server.kv.range_misses);
  EXPECT_GT(server.kv.range_misses, 100);  // about half of 400
  EXPECT_LT(server.kv.range_misses, 300);
}

TEST(H2WorkloadTest, TxnPutRetriesAConflictWithTheRevisionTheServerReturned) {
  GrpcServer server;
  const KeyFormat format("bench/", 32);
  // Every key exists at a revision the client does not know: each first txn fails, and
  // the retry with the revision read in the failure branch succeeds.
  for (int i = 0; i < 100; ++i) server.kv.Preload(format.Make(i), "old");
  BenchOptions o = H2Options(server.endpoint(), Workload::kTxnPut);
  o.total = 20;
  o.key_space = 100;
  o.sequential_keys = true;
  auto r = RunKvWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 20u);
  EXPECT_EQ(r->errors, 0u);
  std::map<std::string, double> extras(r->extras.begin(), r->extras.end());
  EXPECT_EQ(extras["cas_ok"], 10);
  EXPECT_EQ(extras["cas_conflicts"], 10);
  std::lock_guard<std::mutex> lock(server.kv.mu());
  ASSERT_EQ(server.kv.puts.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(server.kv.puts[i].first, format.Make(i));
}

TEST(H2WorkloadTest, ErrorsShowByGrpcCodeName) {
  GrpcServer server;
  server.kv.fail_puts = true;
  BenchOptions o = H2Options(server.endpoint(), Workload::kPut);
  o.total = 50;
  o.clients = 4;
  auto r = RunKvWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 0u);
  EXPECT_EQ(r->errors, 50u);
  EXPECT_THAT(r->errors_by_code, ElementsAre(Pair("FAILED_PRECONDITION", 50u)));
}

TEST(H2WorkloadTest, LargeValuesThroughSmallServerWindows) {
  GrpcServer server(/*small_windows=*/true);
  BenchOptions o = H2Options(server.endpoint(), Workload::kPut);
  o.total = 20;
  o.clients = 4;
  o.conns = 2;
  o.threads = 2;
  o.key_space = 10;
  o.sequential_keys = true;
  o.val_size = 100 * 1024;
  auto r = RunKvWorkload(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requests, 20u);
  EXPECT_EQ(r->errors, 0u);
  {
    std::lock_guard<std::mutex> lock(server.kv.mu());
    ASSERT_EQ(server.kv.puts.size(), 20u);
    for (const auto& [k, v] : server.kv.puts) EXPECT_EQ(v.size(), 100u * 1024) << k;
  }
  // And back: every range answer carries a 100 KiB value over several DATA frames.
  o.workload = Workload::kRange;
  auto ranges = RunKvWorkload(o);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  EXPECT_EQ(ranges->requests, 20u);
  EXPECT_EQ(ranges->errors, 0u);
  EXPECT_EQ(ranges->extras[0].second, 0);  // no misses: all ten keys were put
}

TEST(H2WorkloadTest, ConnectErrorsMatchTheGrpcEngine) {
  int port = 0;
  {
    GrpcServer server;  // a port that was just free, and is closed again
    port = std::stoi(server.endpoint().substr(10));
  }
  BenchOptions o = H2Options(absl::StrCat("127.0.0.1:", port), Workload::kPut);
  o.conns = 3;
  o.clients = 3;
  auto h2 = RunKvWorkload(o);
  ASSERT_FALSE(h2.ok());
  EXPECT_EQ(h2.status().message(),
            absl::StrCat("cannot connect to 127.0.0.1:", port,
                         " (connection 1 of 3 failed; is the server running?)"));
  o.transport = Transport::kGrpc;
  auto grpc = RunKvWorkload(o);
  ASSERT_FALSE(grpc.ok());
  EXPECT_EQ(grpc.status().message(), h2.status().message());
  EXPECT_EQ(grpc.status().code(), h2.status().code());
}

// ---- the engine API ------------------------------------------------------------------------

class TestClient;

class TestCall final : public H2Call {
 public:
  explicit TestCall(TestClient* client) : client_(client) {}
  void OnDone(int c, std::string_view m) override;

  int code = -1;
  std::string message;
  std::string body;
  int done = 0;

 private:
  TestClient* client_;
};

// A loop with one channel to `endpoint`, run by the test thread until a condition holds.
class TestClient {
 public:
  TestClient(const std::string& endpoint, H2ChannelOptions options)
      : options_(std::move(options)) {
    BenchOptions bo;
    bo.endpoints = {endpoint};
    bo.connect_timeout_ns = 2 * kSecond;
    auto sockets = ConnectH2(bo, 1);
    CHECK(sockets.ok());
    channel = loop.AddChannel(&options_, (*sockets)[0]);
  }

  // Runs the loop until `until` holds (checked after every completed call and every
  // millisecond); false after 10 s.
  bool RunUntil(std::function<bool()> until) {
    until_ = std::move(until);
    if (until_()) return true;
    timed_out_ = false;
    tickers_.push_back(std::make_unique<Ticker>(this, ++generation_, NowNs() + 10 * kSecond));
    loop.AddTimer(NowNs() + 1'000'000, tickers_.back().get());
    loop.Run();
    return !timed_out_;
  }

  void Changed() {
    if (until_ && until_()) loop.Stop();
  }

  H2Loop loop;
  H2Channel* channel = nullptr;

 private:
  // Polls the condition; one per RunUntil, inert once a later one started.
  class Ticker final : public H2Timer {
   public:
    Ticker(TestClient* client, int generation, int64_t deadline_ns)
        : client_(client), generation_(generation), deadline_ns_(deadline_ns) {}
    void OnTimer() override {
      if (generation_ != client_->generation_) return;
      if (client_->until_()) {
        client_->loop.Stop();
      } else if (NowNs() >= deadline_ns_) {
        client_->timed_out_ = true;
        client_->loop.Stop();
      } else {
        client_->loop.AddTimer(NowNs() + 1'000'000, this);
      }
    }

   private:
    TestClient* const client_;
    const int generation_;
    const int64_t deadline_ns_;
  };

  H2ChannelOptions options_;
  std::function<bool()> until_;
  std::vector<std::unique_ptr<Ticker>> tickers_;
  int generation_ = 0;
  bool timed_out_ = false;
};

void TestCall::OnDone(int c, std::string_view m) {
  code = c;
  message.assign(m);
  body.assign(response());
  ++done;
  client_->Changed();
}

H2ChannelOptions KvPaths() {
  H2ChannelOptions o;
  o.paths = {"/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range", "/etcdserverpb.KV/DeleteRange"};
  return o;
}

TEST(H2EngineTest, ErrorMessageIsPercentDecoded) {
  GrpcServer server;
  TestClient client(server.endpoint(), KvPaths());
  TestCall call(&client);
  etcdserverpb::DeleteRangeRequest req;
  req.set_key("a b");
  call.SetRequest(2, req);
  client.channel->Start(&call);
  ASSERT_TRUE(client.RunUntil([&] { return call.done == 1; }));
  EXPECT_EQ(call.code, 9);  // FAILED_PRECONDITION
  EXPECT_EQ(call.message, TestKv::kErrorMessage);
}

TEST(H2EngineTest, LargeRequestAndResponseWaitForWindows) {
  GrpcServer server(/*small_windows=*/true);
  TestClient client(server.endpoint(), KvPaths());
  TestCall call(&client);
  etcdserverpb::PutRequest put;
  put.set_key("big");
  put.set_value(std::string(100 * 1024, 'x'));
  put.mutable_value()->replace(1000, 5, "hello");
  call.SetRequest(0, put);
  client.channel->Start(&call);
  ASSERT_TRUE(client.RunUntil([&] { return call.done == 1; }));
  ASSERT_EQ(call.code, 0) << call.message;
  EXPECT_GT(client.channel->stats().window_waits, 0u);
  {
    std::lock_guard<std::mutex> lock(server.kv.mu());
    ASSERT_EQ(server.kv.puts.size(), 1u);
    EXPECT_EQ(server.kv.puts[0].second, put.value());
  }
  etcdserverpb::RangeRequest range;
  range.set_key("big");
  call.SetRequest(1, range);
  client.channel->Start(&call);
  ASSERT_TRUE(client.RunUntil([&] { return call.done == 2; }));
  ASSERT_EQ(call.code, 0) << call.message;
  etcdserverpb::RangeResponse resp;
  ASSERT_TRUE(resp.ParseFromString(call.body));
  ASSERT_EQ(resp.kvs_size(), 1);
  EXPECT_EQ(resp.kvs(0).value(), put.value());
}

TEST(H2EngineTest, ConnectionReplacedWhenStreamIdsRunOut) {
  GrpcServer server;
  H2ChannelOptions options = KvPaths();
  options.last_stream_id = 7;  // four streams per connection
  TestClient client(server.endpoint(), options);
  TestCall call(&client);
  etcdserverpb::PutRequest put;
  put.set_key("k");
  for (int i = 1; i <= 10; ++i) {
    put.set_value(absl::StrCat(i));
    call.SetRequest(0, put);
    client.channel->Start(&call);
    ASSERT_TRUE(client.RunUntil([&] { return call.done == i; }));
    ASSERT_EQ(call.code, 0) << i << ": " << call.message;
  }
  EXPECT_EQ(client.channel->stats().connections, 3u);  // 4 + 4 + 2 streams
  EXPECT_EQ(client.channel->stats().streams, 10u);
  std::lock_guard<std::mutex> lock(server.kv.mu());
  EXPECT_EQ(server.kv.puts.size(), 10u);
}

TEST(H2EngineTest, ConcurrentCallsShareAConnection) {
  GrpcServer server;
  TestClient client(server.endpoint(), KvPaths());
  std::vector<std::unique_ptr<TestCall>> calls;
  int done = 0;
  for (int i = 0; i < 200; ++i) {
    calls.push_back(std::make_unique<TestCall>(&client));
    etcdserverpb::PutRequest put;
    put.set_key(absl::StrCat("k", i));
    put.set_value(absl::StrCat("v", i));
    calls.back()->SetRequest(0, put);
    client.channel->Start(calls.back().get());
  }
  ASSERT_TRUE(client.RunUntil([&] {
    done = 0;
    for (const auto& c : calls) done += c->done;
    return done == 200;
  }));
  for (const auto& c : calls) EXPECT_EQ(c->code, 0) << c->message;
  EXPECT_EQ(client.channel->stats().connections, 1u);
  EXPECT_GT(client.channel->stats().max_active_streams, 1u);
  std::lock_guard<std::mutex> lock(server.kv.mu());
  EXPECT_EQ(server.kv.data.size(), 200u);
  EXPECT_EQ(server.kv.data["k123"].value, "v123");
}

// ---- a scripted HTTP/2 server --------------------------------------------------------------

struct Frame {
  h2::FrameHeader h;
  std::string payload;
};

// One accepted connection, driven by blocking calls from the server thread of a test.
class FakeConn {
 public:
  explicit FakeConn(int fd) : fd_(fd) {}
  ~FakeConn() {
    if (fd_ >= 0) close(fd_);
  }

  bool ReadExact(size_t n, std::string* out, int timeout_ms = 5000) {
    out->clear();
    while (out->size() < n) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      char buf[65536];
      const ssize_t got = read(fd_, buf, std::min(sizeof(buf), n - out->size()));
      if (got <= 0) return false;
      out->append(buf, got);
    }
    return true;
  }

  bool ReadFrame(Frame* f, int timeout_ms = 5000) {
    std::string head;
    if (!ReadExact(h2::kFrameHeaderBytes, &head, timeout_ms)) return false;
    f->h = h2::ParseFrameHeader(reinterpret_cast<const uint8_t*>(head.data()));
    return ReadExact(f->h.length, &f->payload, timeout_ms);
  }

  // The next frame that is not a SETTINGS ACK or a WINDOW_UPDATE (both counted).
  bool ReadInteresting(Frame* f, int timeout_ms = 5000) {
    for (;;) {
      if (!ReadFrame(f, timeout_ms)) return false;
      if (f->h.type == h2::FrameType::kSettings && (f->h.flags & h2::flags::kAck)) {
        ++settings_acks;
        continue;
      }
      if (f->h.type == h2::FrameType::kWindowUpdate) continue;
      return true;
    }
  }

  // True when the peer closed the connection (EOF) within the time.
  bool ReadsEof(int timeout_ms = 5000) {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, timeout_ms) <= 0) return false;
      char buf[4096];
      const ssize_t got = read(fd_, buf, sizeof(buf));
      if (got == 0) return true;
      if (got < 0) return false;
    }
  }

  void Send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = write(fd_, bytes.data() + off, bytes.size() - off);
      if (n <= 0) return;
      off += n;
    }
  }

  // Reads the client preface and SETTINGS, then sends our SETTINGS.
  void Handshake(std::initializer_list<std::pair<h2::Setting, uint32_t>> settings) {
    std::string preface;
    ASSERT_TRUE(ReadExact(h2::kClientPreface.size(), &preface));
    ASSERT_EQ(preface, h2::kClientPreface);
    Frame f;
    ASSERT_TRUE(ReadFrame(&f));
    ASSERT_EQ(f.h.type, h2::FrameType::kSettings);
    std::string out;
    h2::AppendSettings(&out, settings);
    h2::AppendSettingsAck(&out);
    Send(out);
  }

  struct Request {
    uint32_t stream = 0;
    std::map<std::string, std::string> headers;
    std::string body;  // gRPC-framed
  };

  // One whole request: HEADERS (+ CONTINUATION) then DATA up to END_STREAM.
  bool ReadRequest(Request* r) {
    Frame f;
    if (!ReadInteresting(&f)) return false;
    if (f.h.type != h2::FrameType::kHeaders) return false;
    r->stream = f.h.stream_id;
    std::string block = f.payload;
    while (!(f.h.flags & h2::flags::kEndHeaders)) {
      if (!ReadFrame(&f) || f.h.type != h2::FrameType::kContinuation) return false;
      block += f.payload;
    }
    std::vector<h2::HeaderField> fields;
    if (!decoder.Decode(block, 1 << 20, &fields).ok()) return false;
    for (auto& hf : fields) r->headers[hf.name] = hf.value;
    r->body.clear();
    for (;;) {
      if (!ReadInteresting(&f) || f.h.type != h2::FrameType::kData) return false;
      if (f.h.stream_id != r->stream) return false;
      r->body += f.payload;
      if (f.h.flags & h2::flags::kEndStream) return true;
    }
  }

  static std::string Block(std::initializer_list<std::pair<const char*, std::string>> fields) {
    std::string block;
    for (const auto& [n, v] : fields) h2::HpackEncoder::Encode(n, v, &block);
    return block;
  }

  static std::string Framed(std::string_view message) {
    std::string out(5, '\0');
    out[1] = static_cast<char>(message.size() >> 24);
    out[2] = static_cast<char>(message.size() >> 16);
    out[3] = static_cast<char>(message.size() >> 8);
    out[4] = static_cast<char>(message.size());
    out.append(message);
    return out;
  }

  // :status 200, the message in one DATA frame, trailers with grpc-status 0.
  void Reply(uint32_t stream, std::string_view message) {
    std::string out;
    h2::AppendHeaders(&out, stream, Block({{":status", "200"}}), false, 16384);
    h2::AppendData(&out, stream, Framed(message), false, 16384);
    h2::AppendHeaders(&out, stream, Block({{"grpc-status", "0"}}), true, 16384);
    Send(out);
  }

  void Rst(uint32_t stream, h2::ErrorCode code) {
    std::string out;
    h2::AppendRstStream(&out, stream, code);
    Send(out);
  }

  h2::HpackDecoder decoder;
  int settings_acks = 0;

 private:
  int fd_;
};

class FakeServer {
 public:
  FakeServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    CHECK(listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~FakeServer() {
    if (script_.joinable()) script_.join();
    close(listen_fd_);
  }

  std::string endpoint() const { return absl::StrCat("127.0.0.1:", port_); }

  std::unique_ptr<FakeConn> Accept(int timeout_ms = 5000) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return nullptr;
    const int fd = accept(listen_fd_, nullptr, nullptr);
    return fd < 0 ? nullptr : std::make_unique<FakeConn>(fd);
  }

  // Runs `script` on the server thread; the destructor joins it.
  void Run(std::function<void()> script) { script_ = std::thread(std::move(script)); }
  void Join() {
    if (script_.joinable()) script_.join();
  }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread script_;
};

H2ChannelOptions OnePath() {
  H2ChannelOptions o;
  o.paths = {"/test.Svc/Call"};
  return o;
}

// Starts `n` calls with requests "r0", "r1", ...
std::vector<std::unique_ptr<TestCall>> StartCalls(TestClient* client, int n, int size = 0) {
  std::vector<std::unique_ptr<TestCall>> calls;
  for (int i = 0; i < n; ++i) {
    calls.push_back(std::make_unique<TestCall>(client));
    calls.back()->SetRequest(0, size > 0 ? std::string(size, 'a' + i) : absl::StrCat("r", i));
    client->channel->Start(calls.back().get());
  }
  return calls;
}

bool AllDone(const std::vector<std::unique_ptr<TestCall>>& calls) {
  for (const auto& c : calls) {
    if (c->done == 0) return false;
  }
  return true;
}

TEST(H2FakeServerTest, RequestHeadersAndResponseShapes) {
  FakeServer server;
  H2ChannelOptions options = OnePath();
  options.metadata = {{"x-consistency", "serializable"}};
  options.timeout_ns = 20 * kSecond;
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    std::vector<FakeConn::Request> reqs(6);
    for (auto& r : reqs) ASSERT_TRUE(conn->ReadRequest(&r));
    const auto& h = reqs[0].headers;
    EXPECT_EQ(h.at(":method"), "POST");
    EXPECT_EQ(h.at(":scheme"), "http");
    EXPECT_EQ(h.at(":path"), "/test.Svc/Call");
    EXPECT_EQ(h.at(":authority"), server.endpoint());
    EXPECT_EQ(h.at("content-type"), "application/grpc");
    EXPECT_EQ(h.at("te"), "trailers");
    EXPECT_EQ(h.at("grpc-timeout"), "20000000u");
    EXPECT_EQ(h.at("x-consistency"), "serializable");
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(reqs[i].stream, 1u + 2 * i);
      EXPECT_EQ(reqs[i].body, FakeConn::Framed(absl::StrCat("r", i)));
    }
    std::string out;
    // 1: Trailers-Only, percent-encoded message.
    h2::AppendHeaders(&out, 1,
                      FakeConn::Block({{":status", "200"},
                                       {"grpc-status", "5"},
                                       {"grpc-message", "not%20here %C3%BC"}}),
                      true, 16384);
    // 3: HTTP 404 without grpc-status.
    h2::AppendHeaders(&out, 3, FakeConn::Block({{":status", "404"}}), true, 16384);
    // 5: HTTP 503 headers without END_STREAM: the call fails at once (and is reset).
    h2::AppendHeaders(&out, 5, FakeConn::Block({{":status", "503"}}), false, 16384);
    // 7: trailers without grpc-status.
    h2::AppendHeaders(&out, 7, FakeConn::Block({{":status", "200"}}), false, 16384);
    h2::AppendHeaders(&out, 7, FakeConn::Block({{"x-other", "1"}}), true, 16384);
    // 9: success, the header block split into HEADERS + CONTINUATION with padding and
    // priority, the message split over three padded DATA frames, plus a dynamic-table
    // entry (literal with incremental indexing, Huffman value) that 11 refers to.
    std::string block = FakeConn::Block({{":status", "200"}});
    block.push_back('\x40');  // literal with incremental indexing, new name
    block.push_back(5);
    block += "x-dyn";
    std::string huff;
    h2::HuffmanEncode("dynamic value", &huff);
    block.push_back(static_cast<char>(0x80 | huff.size()));
    block += huff;
    std::string headers_payload;
    headers_payload.push_back(3);  // pad length
    headers_payload += std::string("\x80\x00\x00\x00\x10", 5);  // priority fields
    headers_payload += block.substr(0, 4);
    headers_payload += std::string(3, '\0');
    h2::AppendFrameHeader(&out, headers_payload.size(), h2::FrameType::kHeaders,
                          h2::flags::kPadded | h2::flags::kPriority, 9);
    out += headers_payload;
    h2::AppendFrameHeader(&out, block.size() - 4, h2::FrameType::kContinuation,
                          h2::flags::kEndHeaders, 9);
    out += block.substr(4);
    const std::string framed = FakeConn::Framed("hello, world of frames");
    for (size_t off = 0; off < framed.size(); off += 10) {
      const std::string piece = framed.substr(off, 10);
      std::string data(1, '\x02');
      data += piece + std::string(2, '\0');
      h2::AppendFrameHeader(&out, data.size(), h2::FrameType::kData, h2::flags::kPadded, 9);
      out += data;
    }
    h2::AppendHeaders(&out, 9, FakeConn::Block({{"grpc-status", "0"}}), true, 16384);
    // 11: headers using the dynamic entry (index 62), then an OK with no message at all.
    std::string indexed = FakeConn::Block({{":status", "200"}});
    indexed.push_back(static_cast<char>(0x80 | 62));
    h2::AppendHeaders(&out, 11, indexed, false, 16384);
    h2::AppendHeaders(&out, 11, FakeConn::Block({{"grpc-status", "0"}}), true, 16384);
    conn->Send(out);
    // The client resets stream 5, whose request it had fully sent, with CANCEL.
    Frame f;
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.h.type, h2::FrameType::kRstStream);
    EXPECT_EQ(f.h.stream_id, 5u);
    EXPECT_EQ(h2::ReadU32(reinterpret_cast<const uint8_t*>(f.payload.data())),
              static_cast<uint32_t>(h2::ErrorCode::kCancel));
    EXPECT_EQ(conn->settings_acks, 1);
  });
  TestClient client(server.endpoint(), options);
  auto calls = StartCalls(&client, 6);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  server.Join();
  EXPECT_EQ(calls[0]->code, 5);
  EXPECT_EQ(calls[0]->message, "not here \xc3\xbc");
  EXPECT_EQ(calls[1]->code, 12);  // 404 -> UNIMPLEMENTED
  EXPECT_EQ(calls[2]->code, 14);  // 503 -> UNAVAILABLE
  EXPECT_EQ(calls[3]->code, 2);   // no grpc-status -> UNKNOWN
  EXPECT_EQ(calls[4]->code, 0) << calls[4]->message;
  EXPECT_EQ(calls[4]->body, "hello, world of frames");
  EXPECT_EQ(calls[5]->code, 0) << calls[5]->message;
  EXPECT_EQ(calls[5]->body, "");
}

TEST(H2FakeServerTest, ResetStreamsMapToGrpcCodes) {
  FakeServer server;
  const std::vector<h2::ErrorCode> codes = {h2::ErrorCode::kRefusedStream, h2::ErrorCode::kCancel,
                                            h2::ErrorCode::kProtocolError,
                                            h2::ErrorCode::kEnhanceYourCalm};
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    for (size_t i = 0; i < codes.size(); ++i) {
      FakeConn::Request r;
      ASSERT_TRUE(conn->ReadRequest(&r));
      conn->Rst(r.stream, codes[i]);
    }
  });
  TestClient client(server.endpoint(), OnePath());
  auto calls = StartCalls(&client, 4);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  server.Join();
  EXPECT_EQ(calls[0]->code, 14);  // UNAVAILABLE
  EXPECT_EQ(calls[1]->code, 1);   // CANCELLED
  EXPECT_EQ(calls[2]->code, 13);  // INTERNAL
  EXPECT_EQ(calls[3]->code, 8);   // RESOURCE_EXHAUSTED
}

TEST(H2FakeServerTest, GoAwayFailsLaterStreamsAndMovesToANewConnection) {
  FakeServer server;
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    FakeConn::Request a, b;
    ASSERT_TRUE(conn->ReadRequest(&a));
    ASSERT_TRUE(conn->ReadRequest(&b));
    std::string out;
    h2::AppendGoAway(&out, a.stream, h2::ErrorCode::kNoError, "bye");
    conn->Send(out);
    conn->Reply(a.stream, "first");
    // Its last stream done, the client closes the old connection.
    EXPECT_TRUE(conn->ReadsEof());
    auto second = server.Accept();
    ASSERT_TRUE(second);
    second->Handshake({});
    FakeConn::Request c;
    ASSERT_TRUE(second->ReadRequest(&c));
    EXPECT_EQ(c.stream, 1u);
    second->Reply(c.stream, "third");
  });
  TestClient client(server.endpoint(), OnePath());
  auto calls = StartCalls(&client, 2);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  EXPECT_EQ(calls[0]->code, 0);
  EXPECT_EQ(calls[0]->body, "first");
  EXPECT_EQ(calls[1]->code, 14);  // above last_stream_id: UNAVAILABLE
  TestCall third(&client);
  third.SetRequest(0, "r2");
  client.channel->Start(&third);
  ASSERT_TRUE(client.RunUntil([&] { return third.done == 1; }));
  server.Join();
  EXPECT_EQ(third.code, 0) << third.message;
  EXPECT_EQ(third.body, "third");
  EXPECT_EQ(client.channel->stats().connections, 2u);
  EXPECT_EQ(client.channel->stats().goaways, 1u);
}

TEST(H2FakeServerTest, PingIsAnswered) {
  FakeServer server;
  const uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    std::string out;
    h2::AppendPing(&out, false, opaque);
    conn->Send(out);
    Frame f;
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.h.type, h2::FrameType::kPing);
    EXPECT_EQ(f.h.flags, h2::flags::kAck);
    EXPECT_EQ(f.payload, std::string(reinterpret_cast<const char*>(opaque), 8));
    FakeConn::Request r;
    ASSERT_TRUE(conn->ReadRequest(&r));
    conn->Reply(r.stream, "pong");
  });
  TestClient client(server.endpoint(), OnePath());
  // The call goes out once the PING is answered, so the server reads them in that order.
  ASSERT_TRUE(client.RunUntil([&] { return client.channel->stats().pings_answered == 1; }));
  TestCall call(&client);
  call.SetRequest(0, "x");
  client.channel->Start(&call);
  ASSERT_TRUE(client.RunUntil([&] { return call.done == 1; }));
  server.Join();
  EXPECT_EQ(call.code, 0);
  EXPECT_EQ(call.body, "pong");
}

TEST(H2FakeServerTest, MaxConcurrentStreamsIsHonouredAtTheBound) {
  FakeServer server;
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({{h2::Setting::kMaxConcurrentStreams, 2}});
    for (int round = 0; round < 3; ++round) {
      FakeConn::Request a, b;
      ASSERT_TRUE(conn->ReadRequest(&a));
      ASSERT_TRUE(conn->ReadRequest(&b));
      Frame f;
      EXPECT_FALSE(conn->ReadInteresting(&f, 200)) << "a third stream while two are open";
      conn->Reply(a.stream, "a");
      conn->Reply(b.stream, "b");
    }
  });
  TestClient client(server.endpoint(), OnePath());
  // Before the server's SETTINGS one stream at a time; after them, two.
  auto calls = StartCalls(&client, 6);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  server.Join();
  for (const auto& c : calls) EXPECT_EQ(c->code, 0) << c->message;
  EXPECT_EQ(client.channel->stats().max_active_streams, 2u);
}

TEST(H2FakeServerTest, StreamAndConnectionWindowsAreHonouredExactly) {
  FakeServer server;
  constexpr int kSize = 95;  // 100 bytes with the gRPC prefix
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({{h2::Setting::kInitialWindowSize, 10}});
    Frame f;
    ASSERT_TRUE(conn->ReadInteresting(&f));
    ASSERT_EQ(f.h.type, h2::FrameType::kHeaders);
    const uint32_t id = f.h.stream_id;
    std::string body;
    // Exactly the 10-byte window, then nothing.
    ASSERT_TRUE(conn->ReadInteresting(&f));
    ASSERT_EQ(f.h.type, h2::FrameType::kData);
    EXPECT_EQ(f.payload.size(), 10u);
    body += f.payload;
    EXPECT_FALSE(conn->ReadInteresting(&f, 200));
    std::string out;
    h2::AppendWindowUpdate(&out, id, 30);
    conn->Send(out);
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.payload.size(), 30u);
    EXPECT_FALSE(f.h.flags & h2::flags::kEndStream);
    body += f.payload;
    EXPECT_FALSE(conn->ReadInteresting(&f, 200));
    // Raising the initial window mid-stream grows the open stream's window by the delta.
    out.clear();
    h2::AppendSettings(&out, {{h2::Setting::kInitialWindowSize, 70}});
    conn->Send(out);
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.payload.size(), 60u);
    EXPECT_TRUE(f.h.flags & h2::flags::kEndStream);
    body += f.payload;
    EXPECT_EQ(body, FakeConn::Framed(std::string(kSize, 'a')));
    conn->Reply(id, "ok");
  });
  TestClient client(server.endpoint(), OnePath());
  // Only once the server's SETTINGS are in does the 10-byte window apply.
  ASSERT_TRUE(client.RunUntil([&] { return client.channel->stats().settings == 1; }));
  auto calls = StartCalls(&client, 1, kSize);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  server.Join();
  EXPECT_EQ(calls[0]->code, 0) << calls[0]->message;
  EXPECT_EQ(client.channel->stats().window_waits, 2u);
}

TEST(H2FakeServerTest, ConnectionWindowAndMaxFrameSize) {
  FakeServer server;
  constexpr int kSize = 70000 - 5;  // more than the 65535 connection window
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({{h2::Setting::kInitialWindowSize, 1 << 20}});
    Frame f;
    ASSERT_TRUE(conn->ReadInteresting(&f));
    ASSERT_EQ(f.h.type, h2::FrameType::kHeaders);
    const uint32_t id = f.h.stream_id;
    size_t got = 0;
    size_t largest = 0;
    while (got < 65535) {
      ASSERT_TRUE(conn->ReadInteresting(&f));
      ASSERT_EQ(f.h.type, h2::FrameType::kData);
      got += f.payload.size();
      largest = std::max(largest, f.payload.size());
    }
    EXPECT_EQ(got, 65535u);  // exactly the connection window
    EXPECT_EQ(largest, 16384u);  // frames at, never above, the default MAX_FRAME_SIZE
    EXPECT_FALSE(conn->ReadInteresting(&f, 200));
    std::string out;
    h2::AppendWindowUpdate(&out, 0, 70000 - 65535);
    conn->Send(out);
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.payload.size(), 70000u - 65535);
    EXPECT_TRUE(f.h.flags & h2::flags::kEndStream);
    // A larger MAX_FRAME_SIZE (sent before the answer, so the next call sees it) is used
    // up to the new bound.
    out.clear();
    h2::AppendSettings(&out, {{h2::Setting::kMaxFrameSize, 20000}});
    h2::AppendWindowUpdate(&out, 0, 1 << 20);
    conn->Send(out);
    conn->Reply(id, "ok");
    ASSERT_TRUE(conn->ReadInteresting(&f));
    ASSERT_EQ(f.h.type, h2::FrameType::kHeaders);
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.payload.size(), 20000u);
    got = f.payload.size();
    while (!(f.h.flags & h2::flags::kEndStream)) {
      ASSERT_TRUE(conn->ReadInteresting(&f));
      EXPECT_LE(f.payload.size(), 20000u);
      got += f.payload.size();
    }
    EXPECT_EQ(got, 70000u);
    conn->Reply(f.h.stream_id, "ok");
  });
  TestClient client(server.endpoint(), OnePath());
  auto first = StartCalls(&client, 1, kSize);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(first); }));
  EXPECT_EQ(first[0]->code, 0) << first[0]->message;
  auto second = StartCalls(&client, 1, kSize);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(second); }));
  server.Join();
  EXPECT_EQ(second[0]->code, 0) << second[0]->message;
}

TEST(H2FakeServerTest, DeadlineFailsTheCallAndResetsTheStream) {
  FakeServer server;
  H2ChannelOptions options = OnePath();
  options.timeout_ns = 50'000'000;
  server.Run([&] {
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    FakeConn::Request r;
    ASSERT_TRUE(conn->ReadRequest(&r));
    EXPECT_EQ(r.headers.at("grpc-timeout"), "50000000n");
    Frame f;
    ASSERT_TRUE(conn->ReadInteresting(&f));
    EXPECT_EQ(f.h.type, h2::FrameType::kRstStream);
    EXPECT_EQ(f.h.stream_id, r.stream);
    EXPECT_EQ(h2::ReadU32(reinterpret_cast<const uint8_t*>(f.payload.data())),
              static_cast<uint32_t>(h2::ErrorCode::kCancel));
  });
  TestClient client(server.endpoint(), options);
  const int64_t start = NowNs();
  auto calls = StartCalls(&client, 1);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  const int64_t took = NowNs() - start;
  server.Join();
  EXPECT_EQ(calls[0]->code, 4);  // DEADLINE_EXCEEDED
  EXPECT_GE(took, 50'000'000);
  EXPECT_LT(took, 1 * kSecond);
}

TEST(H2FakeServerTest, LostConnectionFailsCallsAndTheNextCallReconnects) {
  FakeServer server;
  server.Run([&] {
    {
      auto conn = server.Accept();
      ASSERT_TRUE(conn);
      conn->Handshake({});
      FakeConn::Request r;
      ASSERT_TRUE(conn->ReadRequest(&r));
    }  // closed with the call open
    auto conn = server.Accept();
    ASSERT_TRUE(conn);
    conn->Handshake({});
    FakeConn::Request r;
    ASSERT_TRUE(conn->ReadRequest(&r));
    conn->Reply(r.stream, "again");
  });
  TestClient client(server.endpoint(), OnePath());
  auto calls = StartCalls(&client, 1);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(calls); }));
  EXPECT_EQ(calls[0]->code, 14);  // UNAVAILABLE
  auto more = StartCalls(&client, 1);
  ASSERT_TRUE(client.RunUntil([&] { return AllDone(more); }));
  server.Join();
  EXPECT_EQ(more[0]->code, 0) << more[0]->message;
  EXPECT_EQ(more[0]->body, "again");
  EXPECT_EQ(client.channel->stats().connections, 2u);
}

}  // namespace
}  // namespace geoetcd::bench
