#include "gateway/peer_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "geoetcd/peer_transport.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/queue_executor.h"

namespace geoetcd {
namespace {

constexpr uint64_t kClusterId = 0xc1c1;
constexpr int64_t kWaitMs = 20'000;  // liveness deadline only; nothing is timed
constexpr char kStreamMethod[] = "/geoetcd.PeerTransport/Stream";

// A port nobody listens on now, below the kernel's ephemeral range: a port from that range could
// be taken by one of the transports' own outbound connections before its region binds it.
int FreePort() {
  static std::mt19937 rng(static_cast<uint32_t>(getpid()));
  int ephemeral_low = 32768;
  if (FILE* f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (fscanf(f, "%d", &ephemeral_low) != 1) ephemeral_low = 32768;
    fclose(f);
  }
  const int low = 10000;
  const int high = std::max(low + 1000, ephemeral_low);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = low + static_cast<int>(rng() % static_cast<uint32_t>(high - low));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) return port;
  }
  ADD_FAILURE() << "no free port";
  return 0;
}

// Polls `done` until it holds or kWaitMs pass. For state owned by transport threads.
bool WaitFor(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kWaitMs);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

struct Received {
  int to;  // index of the receiving region
  uint64_t from;
  std::string payload;
};

// N regions on loopback sharing one QueueExecutor: deliveries run on the test thread inside
// executor.RunUntil().
class PeerTransportTest : public ::testing::Test {
 protected:
  void SetUpRegions(int n) {
    for (int i = 0; i < n; ++i) {
      ids_.push_back(1000 + i);
      ports_.push_back(FreePort());
    }
    transports_.resize(n);
  }

  std::string PeerUrl(int i) const { return "http://127.0.0.1:" + std::to_string(ports_[i]); }
  std::string ClientUrl(int i) const { return "http://client-" + std::to_string(i) + ":2379"; }

  PeerTransportOptions Options(int i) {
    PeerTransportOptions o;
    o.member_id = ids_[i];
    o.cluster_id = kClusterId;
    o.name = "r" + std::to_string(i);
    o.peer_urls = {PeerUrl(i)};
    o.client_urls = {ClientUrl(i)};
    for (size_t j = 0; j < ids_.size(); ++j) {
      o.peers[ids_[j]] = PeerConfig{"r" + std::to_string(j), {PeerUrl(j)}};
    }
    o.executor = &executor_;
    // Short backoff keeps the tests quick; the bound logic is the same.
    o.reconnect_backoff_initial_ms = 20;
    o.reconnect_backoff_max_ms = 200;
    o.dial_timeout_ms = 1000;
    o.ping_interval_ms = 50;
    return o;
  }

  GrpcPeerTransport* Make(int i, PeerTransportOptions o) {
    transports_[i] = std::make_unique<GrpcPeerTransport>(std::move(o));
    transports_[i]->SetReceiver([this, i](uint64_t from, std::string payload) {
      inbox_.push_back({i, from, std::move(payload)});
    });
    return transports_[i].get();
  }

  GrpcPeerTransport* Start(int i) { return Start(i, Options(i)); }
  GrpcPeerTransport* Start(int i, PeerTransportOptions o) {
    GrpcPeerTransport* t = Make(i, std::move(o));
    absl::Status s = t->Start({PeerUrl(i)});
    EXPECT_TRUE(s.ok()) << s;
    return t;
  }

  void Stop(int i) { transports_[i].reset(); }

  PeerStatus StatusOf(int i, int peer) const {
    for (const PeerStatus& s : transports_[i]->Peers()) {
      if (s.member_id == ids_[peer]) return s;
    }
    ADD_FAILURE() << "no peer " << peer << " at " << i;
    return {};
  }

  bool RunUntilReceived(size_t count) {
    return executor_.RunUntil([&] { return inbox_.size() >= count; }, kWaitMs);
  }

  testing::QueueExecutor executor_;
  std::vector<Received> inbox_;
  std::vector<uint64_t> ids_;
  std::vector<int> ports_;
  // Last, so transports shut down before anything their receivers touch goes away.
  std::vector<std::unique_ptr<GrpcPeerTransport>> transports_;
};

// A hand-driven gRPC client speaking raw bytes on the PeerTransport method, to send what a
// real transport never would.
class RawPeerClient {
 public:
  explicit RawPeerClient(int port)
      : channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials())),
        stub_(channel_) {
    call_ = stub_.PrepareCall(&context_, kStreamMethod, &cq_);
    call_->StartCall(Tag(1));
    ok_ = Await(1);
  }
  ~RawPeerClient() {
    context_.TryCancel();
    if (!finished_) Finish();
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  bool WriteBytes(const std::string& bytes) {
    grpc::Slice slice(bytes);
    grpc::ByteBuffer buffer(&slice, 1);
    call_->Write(buffer, Tag(2));
    return Await(2);
  }
  bool WriteFrame(const PeerFrame& frame) { return WriteBytes(frame.SerializeAsString()); }

  // False when the server ended the stream.
  bool ReadFrame(PeerFrame* frame) {
    grpc::ByteBuffer buffer;
    call_->Read(&buffer, Tag(3));
    if (!Await(3)) return false;
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(buffer.Dump(&slices).ok());
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return frame->ParseFromString(bytes);
  }

  grpc::Status Finish() {
    finished_ = true;
    grpc::Status status;
    call_->Finish(&status, Tag(4));
    Await(4);
    return status;
  }

  bool started() const { return ok_; }

 private:
  static void* Tag(intptr_t n) { return reinterpret_cast<void*>(n); }
  bool Await(intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(kWaitMs);
    if (cq_.AsyncNext(&tag, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) return false;
    EXPECT_EQ(tag, Tag(want));
    return ok;
  }

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool ok_ = false;
  bool finished_ = false;
};

PeerFrame Hello(uint64_t cluster_id, uint64_t member_id) {
  PeerFrame f;
  f.mutable_hello()->set_cluster_id(cluster_id);
  f.mutable_hello()->set_member_id(member_id);
  f.mutable_hello()->set_name("raw");
  f.mutable_hello()->add_client_urls("http://raw:2379");
  return f;
}

PeerFrame Envelope(uint64_t cluster_id, uint64_t from, std::string payload) {
  PeerFrame f;
  f.mutable_envelope()->set_cluster_id(cluster_id);
  f.mutable_envelope()->set_from_member_id(from);
  f.mutable_envelope()->set_payload(std::move(payload));
  return f;
}

TEST_F(PeerTransportTest, ThreeRegionsExchangeMessagesBothWays) {
  SetUpRegions(3);
  for (int i = 0; i < 3; ++i) Start(i);
  constexpr int kPerPair = 20;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      for (int k = 0; k < kPerPair; ++k) {
        transports_[i]->Send(
            ids_[j], "m" + std::to_string(i) + ">" + std::to_string(j) + "#" + std::to_string(k));
      }
    }
  }
  ASSERT_TRUE(RunUntilReceived(6 * kPerPair)) << inbox_.size();
  // Per ordered pair, all arrived, from the right sender, in order (one stream per pair).
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      int next = 0;
      for (const Received& r : inbox_) {
        if (r.to != j || r.from != ids_[i]) continue;
        EXPECT_EQ(r.payload,
                  "m" + std::to_string(i) + ">" + std::to_string(j) + "#" + std::to_string(next));
        ++next;
      }
      EXPECT_EQ(next, kPerPair) << i << "->" << j;
      EXPECT_TRUE(WaitFor([&] { return StatusOf(i, j).counters.sent == kPerPair; }));
      EXPECT_EQ(StatusOf(j, i).counters.delivered, kPerPair);
    }
  }
  EXPECT_EQ(inbox_.size(), 6u * kPerPair);
}

TEST_F(PeerTransportTest, PeersReportsClientUrlsFromHellos) {
  SetUpRegions(3);
  Start(0);
  // Before any hello: configured URLs only.
  PeerStatus before = StatusOf(0, 1);
  EXPECT_EQ(before.name, "r1");
  EXPECT_EQ(before.peer_urls, std::vector<std::string>{PeerUrl(1)});
  EXPECT_TRUE(before.client_urls.empty());
  EXPECT_FALSE(before.connected);
  Start(1);
  Start(2);
  ASSERT_TRUE(WaitFor([&] {
    for (int i = 0; i < 3; ++i) {
      for (const PeerStatus& s : transports_[i]->Peers()) {
        if (!s.connected || s.client_urls.empty()) return false;
      }
    }
    return true;
  }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(transports_[i]->Peers().size(), 2u);  // itself is not a peer
    for (int j = 0; j < 3; ++j) {
      if (i == j) continue;
      EXPECT_EQ(StatusOf(i, j).client_urls, std::vector<std::string>{ClientUrl(j)});
    }
  }
  // Idle streams still ping: a round trip gets measured.
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).counters.rtt_us_last >= 0; }));
}

TEST_F(PeerTransportTest, LatePeerIsReachedAfterBackoff) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  a->Send(ids_[1], "early");
  // Nobody listens yet: dials fail and the message waits in the queue.
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).counters.dial_failures >= 2; }));
  EXPECT_EQ(StatusOf(0, 1).counters.queued_messages, 1);
  EXPECT_FALSE(StatusOf(0, 1).connected);
  EXPECT_EQ(StatusOf(0, 1).last_error, "cannot connect to 127.0.0.1:" + std::to_string(ports_[1]));
  Start(1);
  ASSERT_TRUE(RunUntilReceived(1));
  EXPECT_EQ(inbox_[0].to, 1);
  EXPECT_EQ(inbox_[0].from, ids_[0]);
  EXPECT_EQ(inbox_[0].payload, "early");
  EXPECT_EQ(StatusOf(0, 1).counters.connects, 1);
  EXPECT_EQ(StatusOf(0, 1).counters.queued_messages, 0);
  EXPECT_EQ(StatusOf(0, 1).counters.queued_bytes, 0);
}

TEST_F(PeerTransportTest, RestartedPeerIsReconnected) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  Start(1);
  a->Send(ids_[1], "before");
  ASSERT_TRUE(RunUntilReceived(1));
  Stop(1);
  ASSERT_TRUE(WaitFor([&] { return !StatusOf(0, 1).connected; }));
  Start(1);
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).connected; }));
  a->Send(ids_[1], "after");
  ASSERT_TRUE(RunUntilReceived(2));
  EXPECT_EQ(inbox_[1].payload, "after");
  EXPECT_EQ(inbox_[1].from, ids_[0]);
  EXPECT_GE(StatusOf(0, 1).counters.reconnects, 1);
  // And the restarted side dials back.
  transports_[1]->Send(ids_[0], "back");
  ASSERT_TRUE(RunUntilReceived(3));
  EXPECT_EQ(inbox_[2].to, 0);
  EXPECT_EQ(inbox_[2].payload, "back");
}

TEST_F(PeerTransportTest, PeerThatDialsUsIsDialedBackAtOnceNotAfterBackoff) {
  SetUpRegions(2);
  PeerTransportOptions o = Options(0);
  o.reconnect_backoff_initial_ms = 20000;  // a long wait after the first failed dial
  o.reconnect_backoff_max_ms = 20000;
  GrpcPeerTransport* a = Start(0, std::move(o));
  a->Send(ids_[1], "queued");
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).counters.dial_failures >= 1; }));
  // The peer comes up and dials us; our sender leaves its backoff instead of waiting 20 s.
  const auto start = std::chrono::steady_clock::now();
  Start(1);
  ASSERT_TRUE(RunUntilReceived(1));
  EXPECT_EQ(inbox_[0].payload, "queued");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(PeerTransportTest, SendQueueBoundHoldsAtExactlyTheBound) {
  SetUpRegions(2);
  constexpr int kPayloadBytes = 100;
  constexpr int kFits = 10;
  PeerTransportOptions o = Options(0);
  o.send_queue_bytes_max = kFits * (kPayloadBytes + kPeerQueuedMessageOverheadBytes);
  GrpcPeerTransport* a = Start(0, o);
  // Region 1 is not running: nothing drains the queue.
  for (int k = 0; k < kFits + 5; ++k) {
    std::string payload(kPayloadBytes, static_cast<char>('a' + k % 26));
    a->Send(ids_[1], payload);
  }
  PeerCounters c = StatusOf(0, 1).counters;
  EXPECT_EQ(c.queued_messages, kFits);
  EXPECT_EQ(c.queued_bytes, o.send_queue_bytes_max);
  EXPECT_EQ(c.dropped_queue_full, 5);
  // Even an empty payload is charged its overhead, so it does not fit either...
  a->Send(ids_[1], "");
  EXPECT_EQ(StatusOf(0, 1).counters.dropped_queue_full, 6);
  // ...and the accepted ones all arrive once the peer is up.
  Start(1);
  ASSERT_TRUE(RunUntilReceived(kFits));
  executor_.RunReady();
  EXPECT_EQ(inbox_.size(), static_cast<size_t>(kFits));
  EXPECT_EQ(StatusOf(0, 1).counters.queued_bytes, 0);
}

TEST_F(PeerTransportTest, ReceiveBacklogBoundHoldsWhileTheExecutorIsBehind) {
  SetUpRegions(2);
  constexpr int kPayloadBytes = 100;
  constexpr int kFits = 3;
  PeerTransportOptions o = Options(1);
  o.receive_backlog_bytes_max = kFits * (kPayloadBytes + kPeerQueuedMessageOverheadBytes);
  GrpcPeerTransport* a = Start(0);
  Start(1, o);
  // The test thread does not run the executor, so nothing posted runs yet.
  for (int k = 0; k < kFits + 2; ++k) a->Send(ids_[1], std::string(kPayloadBytes, 'a' + k));
  ASSERT_TRUE(WaitFor([&] {
    PeerCounters c = StatusOf(1, 0).counters;
    return c.delivered + c.dropped_receive_backlog == kFits + 2;
  }));
  PeerCounters c = StatusOf(1, 0).counters;
  EXPECT_EQ(c.delivered, kFits);
  EXPECT_EQ(c.dropped_receive_backlog, 2);
  EXPECT_EQ(c.receive_backlog_bytes, o.receive_backlog_bytes_max);
  // Once the executor catches up the backlog is released and messages flow again.
  executor_.RunReady();
  EXPECT_EQ(inbox_.size(), static_cast<size_t>(kFits));
  EXPECT_EQ(StatusOf(1, 0).counters.receive_backlog_bytes, 0);
  a->Send(ids_[1], "later");
  ASSERT_TRUE(RunUntilReceived(kFits + 1));
  EXPECT_EQ(inbox_.back().payload, "later");
}

TEST_F(PeerTransportTest, OversizePayloadDroppedAtSender) {
  SetUpRegions(2);
  constexpr int64_t kMax = 1000;
  PeerTransportOptions o = Options(0);
  o.max_message_bytes = kMax;
  GrpcPeerTransport* a = Start(0, o);
  Start(1);
  a->Send(ids_[1], std::string(kMax + 1, 'x'));
  a->Send(ids_[1], std::string(kMax, 'y'));
  ASSERT_TRUE(RunUntilReceived(1));
  EXPECT_EQ(inbox_[0].payload, std::string(kMax, 'y'));
  EXPECT_EQ(StatusOf(0, 1).counters.dropped_oversize_send, 1);
  // The sender counts after its write returns, which may be after the delivery.
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).counters.sent == 1; }));
}

TEST_F(PeerTransportTest, OversizePayloadDroppedAtReceiver) {
  SetUpRegions(2);
  constexpr int64_t kMax = 1000;
  PeerTransportOptions o = Options(0);
  o.max_message_bytes = kMax;
  Start(0, o);
  RawPeerClient raw(ports_[0]);
  ASSERT_TRUE(raw.started());
  ASSERT_TRUE(raw.WriteFrame(Hello(kClusterId, ids_[1])));
  PeerFrame reply;
  ASSERT_TRUE(raw.ReadFrame(&reply));
  ASSERT_TRUE(reply.has_hello());
  EXPECT_EQ(reply.hello().member_id(), ids_[0]);
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId, ids_[1], std::string(kMax + 1, 'x'))));
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId, ids_[1], std::string(kMax, 'y'))));
  ASSERT_TRUE(RunUntilReceived(1));
  EXPECT_EQ(inbox_[0].payload, std::string(kMax, 'y'));
  EXPECT_EQ(StatusOf(0, 1).counters.dropped_bad_oversize, 1);
  EXPECT_EQ(StatusOf(0, 1).counters.delivered, 1);
}

TEST_F(PeerTransportTest, BadHelloClosesTheStreamAndIsCounted) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  struct Case {
    std::string first_frame;
    grpc::StatusCode code;
  };
  const std::vector<Case> cases = {
      {Hello(kClusterId + 1, ids_[1]).SerializeAsString(), grpc::StatusCode::FAILED_PRECONDITION},
      {Hello(kClusterId, 4242).SerializeAsString(), grpc::StatusCode::PERMISSION_DENIED},
      {Hello(kClusterId, ids_[0]).SerializeAsString(), grpc::StatusCode::PERMISSION_DENIED},
      {std::string("\xff\xff\xff\xff", 4), grpc::StatusCode::INVALID_ARGUMENT},
      {Envelope(kClusterId, ids_[1], "no hello").SerializeAsString(),
       grpc::StatusCode::INVALID_ARGUMENT},
  };
  for (const Case& c : cases) {
    RawPeerClient raw(ports_[0]);
    ASSERT_TRUE(raw.started());
    raw.WriteBytes(c.first_frame);
    PeerFrame reply;
    EXPECT_FALSE(raw.ReadFrame(&reply));  // closed without a hello of ours
    EXPECT_EQ(raw.Finish().error_code(), c.code);
  }
  UnattributedCounters u = a->Unattributed();
  EXPECT_EQ(u.inbound_bad_cluster, 1);
  EXPECT_EQ(u.inbound_unknown_member, 2);
  EXPECT_EQ(u.inbound_bad_parse, 2);
  executor_.RunReady();
  EXPECT_TRUE(inbox_.empty());
  EXPECT_EQ(StatusOf(0, 1).counters.delivered, 0);
}

TEST_F(PeerTransportTest, BadFramesAfterHelloAreDroppedAndCounted) {
  SetUpRegions(3);
  Start(0);
  RawPeerClient raw(ports_[0]);
  ASSERT_TRUE(raw.WriteFrame(Hello(kClusterId, ids_[1])));
  PeerFrame reply;
  ASSERT_TRUE(raw.ReadFrame(&reply));
  ASSERT_TRUE(raw.WriteBytes(std::string("\xff\xff\xff\xff", 4)));            // garbage
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId + 1, ids_[1], "cluster")));  // other cluster
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId, ids_[2], "spoofed")));      // from r2
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId, 4242, "unknown")));         // from nobody
  ASSERT_TRUE(raw.WriteFrame(Envelope(kClusterId, ids_[1], "good")));
  // The stream stayed open through the bad frames; only the good one arrives.
  ASSERT_TRUE(RunUntilReceived(1));
  executor_.RunReady();
  ASSERT_EQ(inbox_.size(), 1u);
  EXPECT_EQ(inbox_[0].payload, "good");
  EXPECT_EQ(inbox_[0].from, ids_[1]);
  PeerCounters c = StatusOf(0, 1).counters;
  EXPECT_EQ(c.dropped_bad_parse, 1);
  EXPECT_EQ(c.dropped_bad_cluster, 1);
  EXPECT_EQ(c.dropped_bad_from, 2);
  EXPECT_EQ(c.delivered, 1);
  EXPECT_EQ(StatusOf(0, 2).counters.delivered, 0);
  // The raw client's hello taught region 0 its client URLs.
  EXPECT_EQ(StatusOf(0, 1).client_urls, std::vector<std::string>{"http://raw:2379"});
  // A ping gets a pong carrying the sender's timestamp back.
  PeerFrame ping;
  ping.mutable_ping()->set_nonce(7);
  ping.mutable_ping()->set_sent_us(12345);
  ASSERT_TRUE(raw.WriteFrame(ping));
  PeerFrame pong;
  ASSERT_TRUE(raw.ReadFrame(&pong));
  ASSERT_TRUE(pong.has_pong());
  EXPECT_EQ(pong.pong().nonce(), 7u);
  EXPECT_EQ(pong.pong().sent_us(), 12345);
}

TEST_F(PeerTransportTest, HelloUrlCountBoundHolds) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  for (int urls : {kPeerHelloUrlsMax, kPeerHelloUrlsMax + 1}) {
    PeerFrame hello = Hello(kClusterId, ids_[1]);
    hello.mutable_hello()->clear_client_urls();
    for (int k = 0; k < urls; ++k) {
      hello.mutable_hello()->add_client_urls("http://c" + std::to_string(k));
    }
    RawPeerClient raw(ports_[0]);
    ASSERT_TRUE(raw.WriteFrame(hello));
    PeerFrame reply;
    EXPECT_EQ(raw.ReadFrame(&reply), urls <= kPeerHelloUrlsMax) << urls;
  }
  EXPECT_EQ(a->Unattributed().inbound_bad_parse, 1);
  EXPECT_EQ(StatusOf(0, 1).client_urls.size(), static_cast<size_t>(kPeerHelloUrlsMax));
}

TEST_F(PeerTransportTest, InboundStreamBoundHolds) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  std::vector<std::unique_ptr<RawPeerClient>> open;
  for (int k = 0; k < kPeerInboundStreamsMax; ++k) {
    open.push_back(std::make_unique<RawPeerClient>(ports_[0]));
    ASSERT_TRUE(open.back()->WriteFrame(Hello(kClusterId, ids_[1])));
    PeerFrame reply;
    ASSERT_TRUE(open.back()->ReadFrame(&reply)) << k;  // accepted: our hello came back
  }
  EXPECT_EQ(StatusOf(0, 1).counters.inbound_streams, kPeerInboundStreamsMax);
  {
    RawPeerClient one_more(ports_[0]);
    one_more.WriteFrame(Hello(kClusterId, ids_[1]));
    PeerFrame reply;
    EXPECT_FALSE(one_more.ReadFrame(&reply));
    EXPECT_EQ(one_more.Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_EQ(a->Unattributed().inbound_streams_refused, 1);
  // Closing one makes room again.
  open.pop_back();
  ASSERT_TRUE(WaitFor(
      [&] { return StatusOf(0, 1).counters.inbound_streams == kPeerInboundStreamsMax - 1; }));
  RawPeerClient again(ports_[0]);
  ASSERT_TRUE(again.WriteFrame(Hello(kClusterId, ids_[1])));
  PeerFrame reply;
  EXPECT_TRUE(again.ReadFrame(&reply));
}

TEST_F(PeerTransportTest, BadOptionsAreRejectedAtStart) {
  SetUpRegions(2);
  PeerTransportOptions o = Options(0);
  o.reconnect_backoff_max_ms = o.reconnect_backoff_initial_ms - 1;
  EXPECT_EQ(Make(0, o)->Start({PeerUrl(0)}).code(), absl::StatusCode::kInvalidArgument);
  o = Options(0);
  o.executor = nullptr;
  EXPECT_EQ(Make(0, o)->Start({PeerUrl(0)}).code(), absl::StatusCode::kInvalidArgument);
  o = Options(0);
  o.peers[ids_[1]].peer_urls.clear();
  EXPECT_EQ(Make(0, o)->Start({PeerUrl(0)}).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PeerTransportTest, DialerRejectsAnotherMemberAtThePeersUrl) {
  SetUpRegions(3);
  // Region 0 believes region 1 listens on region 2's port.
  PeerTransportOptions o = Options(0);
  o.peers[ids_[1]].peer_urls = {PeerUrl(2)};
  GrpcPeerTransport* a = Start(0, o);
  Start(2);
  a->Send(ids_[1], "misrouted");
  ASSERT_TRUE(WaitFor(
      [&] { return StatusOf(0, 1).last_error == "another member answered at this peer's URL"; }));
  EXPECT_GE(StatusOf(0, 1).counters.dropped_bad_unknown_member, 1);
  EXPECT_FALSE(StatusOf(0, 1).connected);
  EXPECT_EQ(StatusOf(0, 1).counters.sent, 0);
  executor_.RunReady();
  EXPECT_TRUE(inbox_.empty());
}

TEST_F(PeerTransportTest, DialerRejectsAPeerOfAnotherCluster) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  PeerTransportOptions o = Options(1);
  o.cluster_id = kClusterId + 1;
  Start(1, o);
  a->Send(ids_[1], "x");
  // The acceptor checks first and closes the stream without answering.
  ASSERT_TRUE(WaitFor([&] { return transports_[1]->Unattributed().inbound_bad_cluster >= 2; }));
  ASSERT_TRUE(WaitFor([&] { return StatusOf(0, 1).counters.dial_failures >= 2; }));
  EXPECT_FALSE(StatusOf(0, 1).connected);
  EXPECT_EQ(StatusOf(0, 1).last_error,
            "no hello from 127.0.0.1:" + std::to_string(ports_[1]) + ": cluster id mismatch");
  EXPECT_EQ(StatusOf(0, 1).counters.sent, 0);
  executor_.RunReady();
  EXPECT_TRUE(inbox_.empty());
}

TEST_F(PeerTransportTest, SendToUnknownMemberIsCounted) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  a->Send(4242, "nobody");
  a->Send(ids_[0], "myself");  // itself is not a peer either
  EXPECT_EQ(a->Unattributed().send_unknown_member, 2);
}

TEST_F(PeerTransportTest, MessageArrivingBeforeSetReceiverIsCounted) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  transports_[1] = std::make_unique<GrpcPeerTransport>(Options(1));
  ASSERT_TRUE(transports_[1]->Start({PeerUrl(1)}).ok());
  a->Send(ids_[1], "x");
  ASSERT_TRUE(WaitFor([&] { return StatusOf(1, 0).counters.dropped_no_receiver == 1; }));
  EXPECT_EQ(StatusOf(1, 0).counters.delivered, 0);
}

TEST_F(PeerTransportTest, TlsPeerUrlsAreUnimplemented) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Make(0, Options(0));
  absl::Status s = a->Start({"https://127.0.0.1:" + std::to_string(ports_[0])});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(), "peer TLS is not supported yet");

  PeerTransportOptions o = Options(1);
  o.peers[ids_[0]].peer_urls = {"https://127.0.0.1:1"};
  GrpcPeerTransport* b = Make(1, o);
  s = b->Start({PeerUrl(1)});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(s.message(), "peer TLS is not supported yet");
}

TEST_F(PeerTransportTest, ListenPortInUseIsUnavailable) {
  SetUpRegions(2);
  Start(0);
  PeerTransportOptions o = Options(1);
  GrpcPeerTransport* b = Make(1, o);
  absl::Status s = b->Start({PeerUrl(0)});  // region 0's port
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(PeerTransportTest, ShutdownWithQueuedMessagesAndUnreachablePeerReturns) {
  SetUpRegions(2);
  GrpcPeerTransport* a = Start(0);
  for (int k = 0; k < 100; ++k) a->Send(ids_[1], "queued");
  a->Shutdown();
  EXPECT_EQ(StatusOf(0, 1).counters.queued_messages, 0);
  a->Send(ids_[1], "after shutdown");  // dropped, no crash
  EXPECT_EQ(StatusOf(0, 1).counters.queued_messages, 0);
}

}  // namespace
}  // namespace geoetcd
