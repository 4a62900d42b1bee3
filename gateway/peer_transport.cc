#include "gateway/peer_transport.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "gateway/config.h"
#include "geoetcd/peer_transport.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace geoetcd {
namespace {

using SteadyClock = std::chrono::steady_clock;

// A dial waits for channel state changes in slices this long and checks for Shutdown() between
// them.
constexpr int64_t kDialSliceMs = 50;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

bool IsTls(const std::string& url) {
  return absl::StartsWithIgnoreCase(url, "https://") || absl::StartsWithIgnoreCase(url, "unixs://");
}

// A hello is parsed before anything about its sender is known, so its size is bounded on its own
// terms.
bool HelloShapeOk(const PeerHello& hello) {
  if (hello.name().size() > static_cast<size_t>(kPeerHelloNameBytesMax)) return false;
  if (hello.peer_urls_size() > kPeerHelloUrlsMax) return false;
  if (hello.client_urls_size() > kPeerHelloUrlsMax) return false;
  for (const auto& url : hello.peer_urls()) {
    if (url.size() > static_cast<size_t>(kPeerHelloUrlBytesMax)) return false;
  }
  for (const auto& url : hello.client_urls()) {
    if (url.size() > static_cast<size_t>(kPeerHelloUrlBytesMax)) return false;
  }
  return true;
}

struct AtomicPeerCounters {
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> dropped_queue_full{0};
  std::atomic<int64_t> dropped_oversize_send{0};
  std::atomic<int64_t> dropped_in_flight{0};
  std::atomic<int64_t> queued_bytes{0};
  std::atomic<int64_t> queued_messages{0};
  std::atomic<int64_t> connects{0};
  std::atomic<int64_t> reconnects{0};
  std::atomic<int64_t> dial_failures{0};
  std::atomic<int64_t> rtt_us_last{-1};
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> dropped_bad_parse{0};
  std::atomic<int64_t> dropped_bad_cluster{0};
  std::atomic<int64_t> dropped_bad_unknown_member{0};
  std::atomic<int64_t> dropped_bad_from{0};
  std::atomic<int64_t> dropped_bad_oversize{0};
  std::atomic<int64_t> dropped_no_receiver{0};
  std::atomic<int64_t> dropped_receive_backlog{0};
  std::atomic<int64_t> receive_backlog_bytes{0};
  std::atomic<int64_t> inbound_streams{0};

  PeerCounters Snapshot() const {
    PeerCounters c;
    c.sent = sent.load();
    c.dropped_queue_full = dropped_queue_full.load();
    c.dropped_oversize_send = dropped_oversize_send.load();
    c.dropped_in_flight = dropped_in_flight.load();
    c.queued_bytes = queued_bytes.load();
    c.queued_messages = queued_messages.load();
    c.connects = connects.load();
    c.reconnects = reconnects.load();
    c.dial_failures = dial_failures.load();
    c.rtt_us_last = rtt_us_last.load();
    c.delivered = delivered.load();
    c.dropped_bad_parse = dropped_bad_parse.load();
    c.dropped_bad_cluster = dropped_bad_cluster.load();
    c.dropped_bad_unknown_member = dropped_bad_unknown_member.load();
    c.dropped_bad_from = dropped_bad_from.load();
    c.dropped_bad_oversize = dropped_bad_oversize.load();
    c.dropped_no_receiver = dropped_no_receiver.load();
    c.dropped_receive_backlog = dropped_receive_backlog.load();
    c.receive_backlog_bytes = receive_backlog_bytes.load();
    c.inbound_streams = inbound_streams.load();
    return c;
  }
};

struct AtomicUnattributed {
  std::atomic<int64_t> send_unknown_member{0};
  std::atomic<int64_t> inbound_bad_parse{0};
  std::atomic<int64_t> inbound_bad_cluster{0};
  std::atomic<int64_t> inbound_unknown_member{0};
  std::atomic<int64_t> inbound_streams_refused{0};
};

// Exponential backoff with jitter; see kPeerReconnectBackoff* in the header.
class Backoff {
 public:
  Backoff(int64_t initial_ms, int64_t max_ms, uint64_t seed)
      : initial_ms_(std::max<int64_t>(1, initial_ms)),
        max_ms_(std::max(initial_ms_, max_ms)),
        next_ms_(initial_ms_),
        rng_(seed) {}

  void Reset() { next_ms_ = initial_ms_; }

  int64_t Next() {
    const double base = static_cast<double>(next_ms_);
    std::uniform_real_distribution<double> jitter(1.0 - kPeerReconnectJitterFraction,
                                                  1.0 + kPeerReconnectJitterFraction);
    next_ms_ =
        std::min<int64_t>(max_ms_, static_cast<int64_t>(base * kPeerReconnectBackoffMultiplier));
    return std::max<int64_t>(1, static_cast<int64_t>(base * jitter(rng_)));
  }

 private:
  const int64_t initial_ms_;
  const int64_t max_ms_;
  int64_t next_ms_;
  std::mt19937_64 rng_;
};

}  // namespace

// Everything the sender threads and the inbound reactors share. The peer map is fixed at
// construction, so looking a peer up takes no lock.
struct GrpcPeerTransport::Core : public std::enable_shared_from_this<Core> {
  struct Peer {
    uint64_t id = 0;
    PeerConfig config;
    std::vector<std::string> targets;  // gRPC dial targets of config.peer_urls
    AtomicPeerCounters counters;
    std::atomic<bool> connected{false};

    std::mutex mu;
    std::condition_variable cv;
    // Guarded by mu.
    std::deque<std::string> queue;
    int64_t queue_charged_bytes = 0;
    std::vector<std::string> client_urls;
    grpc::ClientContext* live_context = nullptr;  // the outbound stream's, for Shutdown
    bool stream_hello_ok = false;  // the current outbound stream got a valid peer hello
    bool stream_broken = false;    // the current outbound stream's reader saw its end
    std::string stream_error;      // why the reader gave up on the current stream, if it did
    std::string last_error;        // why the last outbound stream ended or failed to start
    // The peer just opened a stream to us: it is up, so a sender waiting out its backoff
    // dials now (a restarted region is reached at once, not after up to the backoff max).
    bool redial_now = false;

    std::thread sender;
  };

  explicit Core(PeerTransportOptions opts) : options(std::move(opts)) {
    for (const auto& [id, config] : options.peers) {
      if (id == options.member_id) continue;
      auto peer = std::make_unique<Peer>();
      peer->id = id;
      peer->config = config;
      peers.emplace(id, std::move(peer));
    }
    PeerHello* hello = hello_frame.mutable_hello();
    hello->set_cluster_id(options.cluster_id);
    hello->set_member_id(options.member_id);
    hello->set_name(options.name);
    for (const auto& url : options.peer_urls) hello->add_peer_urls(url);
    for (const auto& url : options.client_urls) hello->add_client_urls(url);
  }

  Peer* Find(uint64_t id) const {
    auto it = peers.find(id);
    return it == peers.end() ? nullptr : it->second.get();
  }

  std::shared_ptr<const Receiver> CurrentReceiver() {
    std::lock_guard<std::mutex> lock(receiver_mu);
    return receiver;
  }

  int64_t FrameBytesMax() const { return options.max_message_bytes + kPeerFrameOverheadBytes; }

  // Hands one payload to the Node's executor, within the peer's receive backlog bound.
  void Deliver(Peer* peer, std::string payload) {
    std::shared_ptr<const Receiver> r = CurrentReceiver();
    if (r == nullptr) {
      peer->counters.dropped_no_receiver++;
      return;
    }
    const int64_t charged = static_cast<int64_t>(payload.size()) + kPeerQueuedMessageOverheadBytes;
    if (peer->counters.receive_backlog_bytes.fetch_add(charged) + charged >
        options.receive_backlog_bytes_max) {
      peer->counters.receive_backlog_bytes -= charged;
      peer->counters.dropped_receive_backlog++;
      return;
    }
    peer->counters.delivered++;
    // Released when the task has run, or is destroyed unrun; it keeps the peer alive until then.
    auto charge = std::make_shared<BacklogCharge>(shared_from_this(), peer, charged);
    options.executor->Post([r, charge, from = peer->id, payload = std::move(payload)]() mutable {
      (*r)(from, std::move(payload));
      charge.reset();
    });
  }

  struct BacklogCharge {
    BacklogCharge(std::shared_ptr<Core> core, Peer* peer, int64_t bytes)
        : core(std::move(core)), peer(peer), bytes(bytes) {}
    ~BacklogCharge() { peer->counters.receive_backlog_bytes -= bytes; }
    std::shared_ptr<Core> core;
    Peer* peer;
    int64_t bytes;
  };

  void SetLastError(Peer* peer, std::string error) {
    std::lock_guard<std::mutex> lock(peer->mu);
    peer->last_error = std::move(error);
  }

  void RunSender(Peer* peer);
  // One dial and, if it succeeds, one stream's life. True if the hellos were exchanged.
  bool RunOneStream(Peer* peer, const std::string& target);
  void ReadReplies(Peer* peer, grpc::ClientReaderWriter<PeerFrame, PeerFrame>* stream);
  // Writes queued envelopes and pings until the stream breaks or the transport stops.
  void WriteLoop(Peer* peer, grpc::ClientReaderWriter<PeerFrame, PeerFrame>* stream);

  const PeerTransportOptions options;
  std::map<uint64_t, std::unique_ptr<Peer>> peers;
  PeerFrame hello_frame;
  std::atomic<bool> stopping{false};
  std::atomic<int> inbound_streams{0};
  AtomicUnattributed unattributed;

  std::mutex receiver_mu;
  std::shared_ptr<const Receiver> receiver;  // guarded by receiver_mu
};

void GrpcPeerTransport::Core::RunSender(Peer* peer) {
  Backoff backoff(
      options.reconnect_backoff_initial_ms, options.reconnect_backoff_max_ms,
      options.member_id ^ (peer->id * 0x9e3779b97f4a7c15ULL) ^ static_cast<uint64_t>(NowUs()));
  size_t attempt = 0;
  while (!stopping) {
    const std::string& target = peer->targets[attempt++ % peer->targets.size()];
    if (RunOneStream(peer, target)) backoff.Reset();
    const int64_t wait_ms = backoff.Next();
    std::unique_lock<std::mutex> lock(peer->mu);
    peer->redial_now = false;
    peer->cv.wait_for(lock, std::chrono::milliseconds(wait_ms),
                      [&] { return stopping.load() || peer->redial_now; });
    if (peer->redial_now) backoff.Reset();
    peer->redial_now = false;
  }
}

bool GrpcPeerTransport::Core::RunOneStream(Peer* peer, const std::string& target) {
  grpc::ChannelArguments args;
  // A channel of its own per attempt, and no subchannel shared with an earlier one: gRPC's own
  // reconnect backoff (1 s and up) would otherwise stack under ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              static_cast<int>(options.reconnect_backoff_initial_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
              static_cast<int>(options.reconnect_backoff_initial_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(options.reconnect_backoff_initial_ms));
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(kPeerKeepaliveTimeMs));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(kPeerKeepaliveTimeoutMs));
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetMaxSendMessageSize(static_cast<int>(FrameBytesMax()));
  args.SetMaxReceiveMessageSize(static_cast<int>(FrameBytesMax()));
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);

  const SteadyClock::time_point dial_deadline =
      SteadyClock::now() + std::chrono::milliseconds(options.dial_timeout_ms);
  // Our own wait rather than WaitForConnected(): a refused connection ends the attempt at once
  // (TRANSIENT_FAILURE) so that our backoff, not the dial timeout, paces the retries, and
  // Shutdown() is noticed between slices.
  bool ready = false;
  bool failed = false;
  while (!stopping && !ready && !failed && SteadyClock::now() < dial_deadline) {
    const grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
    if (state == GRPC_CHANNEL_READY) {
      ready = true;
    } else if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      failed = true;
    } else {
      // gRPC deadlines are system_clock only; a slice this short does not care about jumps.
      channel->WaitForStateChange(
          state, std::chrono::system_clock::now() + std::chrono::milliseconds(kDialSliceMs));
    }
  }
  if (!ready) {
    if (!stopping) {
      peer->counters.dial_failures++;
      SetLastError(peer, failed ? "cannot connect to " + target : "dial timeout to " + target);
    }
    return false;
  }

  std::unique_ptr<PeerTransport::Stub> stub = PeerTransport::NewStub(channel);
  grpc::ClientContext context;
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    if (stopping) return false;
    peer->live_context = &context;
    peer->stream_hello_ok = false;
    peer->stream_broken = false;
  }
  std::unique_ptr<grpc::ClientReaderWriter<PeerFrame, PeerFrame>> stream = stub->Stream(&context);
  bool established = false;
  if (stream->Write(hello_frame)) {
    std::thread reader([this, peer, s = stream.get()] { ReadReplies(peer, s); });
    {
      std::unique_lock<std::mutex> lock(peer->mu);
      peer->cv.wait_until(lock, dial_deadline,
                          [&] { return stopping || peer->stream_broken || peer->stream_hello_ok; });
      established = peer->stream_hello_ok && !peer->stream_broken && !stopping;
      if (!established && !peer->stream_broken && peer->stream_error.empty()) {
        peer->stream_error = "no hello from " + target + " within the dial timeout";
      }
    }
    if (established) {
      peer->connected = true;
      if (peer->counters.connects++ > 0) peer->counters.reconnects++;
      WriteLoop(peer, stream.get());
      peer->connected = false;
    }
    bool ended_by_peer = false;
    {
      std::lock_guard<std::mutex> lock(peer->mu);
      peer->live_context = nullptr;
      ended_by_peer = peer->stream_broken && peer->stream_error.empty();
    }
    // Unblocks the reader's Read(). A stream the peer ended is left alone, so that Finish() returns
    // the peer's reason ("cluster id mismatch") rather than our cancellation.
    if (!ended_by_peer) context.TryCancel();
    reader.join();
  } else {
    std::lock_guard<std::mutex> lock(peer->mu);
    peer->live_context = nullptr;
  }
  // Every path above has seen the call end (Read() or Write() failed) or cancelled it.
  const grpc::Status status = stream->Finish();
  if (!stopping) {
    std::string error;
    {
      std::lock_guard<std::mutex> lock(peer->mu);
      error = std::move(peer->stream_error);
      peer->stream_error.clear();
    }
    if (error.empty()) {
      error = (established ? "stream to " : "no hello from ") + target + ": " +
              (status.error_message().empty() ? "closed" : status.error_message());
    }
    SetLastError(peer, error);
    if (!established) peer->counters.dial_failures++;
  }
  return established;
}

void GrpcPeerTransport::Core::ReadReplies(Peer* peer,
                                          grpc::ClientReaderWriter<PeerFrame, PeerFrame>* stream) {
  PeerFrame frame;
  bool hello_seen = false;
  while (stream->Read(&frame)) {
    if (!hello_seen) {
      std::string error;
      if (!frame.has_hello() || !HelloShapeOk(frame.hello())) {
        peer->counters.dropped_bad_parse++;
        error = "peer's first frame is not a valid hello";
      } else if (frame.hello().cluster_id() != options.cluster_id) {
        peer->counters.dropped_bad_cluster++;
        error = "peer answered with another cluster id";
      } else if (frame.hello().member_id() != peer->id) {
        // Something else answers at this peer's URL: a misconfigured deployment.
        peer->counters.dropped_bad_unknown_member++;
        error = "another member answered at this peer's URL";
      }
      if (!error.empty()) {
        std::lock_guard<std::mutex> lock(peer->mu);
        peer->stream_error = std::move(error);
        break;
      }
      hello_seen = true;
      std::lock_guard<std::mutex> lock(peer->mu);
      peer->client_urls.assign(frame.hello().client_urls().begin(),
                               frame.hello().client_urls().end());
      peer->stream_hello_ok = true;
      peer->cv.notify_all();
      continue;
    }
    if (frame.has_pong()) {
      const int64_t rtt_us = NowUs() - frame.pong().sent_us();
      if (rtt_us >= 0) {
        peer->counters.rtt_us_last = rtt_us;
        if (options.on_round_trip) options.on_round_trip(peer->id, rtt_us);
      }
    }
    // The acceptor sends nothing else; anything else is ignored.
  }
  std::lock_guard<std::mutex> lock(peer->mu);
  peer->stream_broken = true;
  peer->cv.notify_all();
}

void GrpcPeerTransport::Core::WriteLoop(Peer* peer,
                                        grpc::ClientReaderWriter<PeerFrame, PeerFrame>* stream) {
  PeerFrame frame;
  PeerEnvelope* envelope = frame.mutable_envelope();
  envelope->set_cluster_id(options.cluster_id);
  envelope->set_from_member_id(options.member_id);
  PeerFrame ping;
  uint64_t ping_nonce = 0;
  const auto ping_interval =
      std::chrono::milliseconds(std::max<int64_t>(1, options.ping_interval_ms));
  SteadyClock::time_point next_ping = SteadyClock::now();
  for (;;) {
    std::string payload;
    bool have_payload = false;
    bool more = false;
    {
      std::unique_lock<std::mutex> lock(peer->mu);
      peer->cv.wait_until(lock, next_ping,
                          [&] { return stopping || peer->stream_broken || !peer->queue.empty(); });
      if (stopping || peer->stream_broken) return;
      if (!peer->queue.empty()) {
        payload = std::move(peer->queue.front());
        peer->queue.pop_front();
        const int64_t charged =
            static_cast<int64_t>(payload.size()) + kPeerQueuedMessageOverheadBytes;
        peer->queue_charged_bytes -= charged;
        peer->counters.queued_bytes = peer->queue_charged_bytes;
        peer->counters.queued_messages--;
        have_payload = true;
        more = !peer->queue.empty();
      }
    }
    if (SteadyClock::now() >= next_ping) {
      next_ping = SteadyClock::now() + ping_interval;
      ping.mutable_ping()->set_nonce(++ping_nonce);
      ping.mutable_ping()->set_sent_us(NowUs());
      if (!stream->Write(ping)) {
        if (have_payload) peer->counters.dropped_in_flight++;
        return;
      }
    }
    if (!have_payload) continue;
    envelope->set_payload(std::move(payload));
    grpc::WriteOptions write_options;
    // More are queued right behind this one: let gRPC coalesce them into one write; the last of a
    // burst goes without the hint and flushes the lot.
    if (more) write_options.set_buffer_hint();
    if (!stream->Write(frame, write_options)) {
      peer->counters.dropped_in_flight++;
      return;
    }
    peer->counters.sent++;
  }
}

// One inbound stream: a peer's hello, then its envelopes and pings. Reads one frame at a time; the
// only writes are our hello and pongs, at most one in flight.
class GrpcPeerTransport::InboundReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit InboundReactor(std::shared_ptr<Core> core) : core_(std::move(core)) {
    if (core_->inbound_streams.fetch_add(1) >= kPeerInboundStreamsMax) {
      core_->unattributed.inbound_streams_refused++;
      FinishOnce(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too many peer streams"));
      return;
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    // !ok: the dialer half-closed or the call broke; it dials again if it wants to.
    if (!ok) return FinishOnce(grpc::Status::OK);
    PeerFrame frame;
    const bool fits = static_cast<int64_t>(in_.Length()) <= core_->FrameBytesMax();
    bool parsed = false;
    if (fits) {
      grpc::ProtoBufferReader reader(&in_);
      parsed = frame.ParseFromZeroCopyStream(&reader);
    }
    in_.Clear();
    if (peer_ == nullptr) {
      if (!AcceptHello(parsed, frame)) return;
    } else if (!fits) {
      peer_->counters.dropped_bad_oversize++;
    } else if (!parsed) {
      peer_->counters.dropped_bad_parse++;
    } else {
      HandleFrame(&frame);
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (ok && has_pending_) {
      has_pending_ = false;
      StartWriteLocked(std::move(pending_));
    }
  }

  void OnCancel() override { FinishOnce(grpc::Status::CANCELLED); }

  void OnDone() override {
    core_->inbound_streams--;
    if (peer_ != nullptr) peer_->counters.inbound_streams--;
    delete this;
  }

 private:
  // The first frame: a valid hello opens the stream, anything else closes it.
  bool AcceptHello(bool parsed, const PeerFrame& frame) {
    if (!parsed || !frame.has_hello() || !HelloShapeOk(frame.hello())) {
      core_->unattributed.inbound_bad_parse++;
      FinishOnce(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first frame must be a PeerHello"));
      return false;
    }
    const PeerHello& hello = frame.hello();
    if (hello.cluster_id() != core_->options.cluster_id) {
      core_->unattributed.inbound_bad_cluster++;
      FinishOnce(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "cluster id mismatch"));
      return false;
    }
    Core::Peer* peer = core_->Find(hello.member_id());
    if (peer == nullptr) {
      core_->unattributed.inbound_unknown_member++;
      FinishOnce(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "unknown member id"));
      return false;
    }
    peer_ = peer;
    peer_->counters.inbound_streams++;
    {
      std::lock_guard<std::mutex> lock(peer_->mu);
      peer_->client_urls.assign(hello.client_urls().begin(), hello.client_urls().end());
      peer_->redial_now = true;
      peer_->cv.notify_all();
    }
    Write(core_->hello_frame);
    return true;
  }

  void HandleFrame(PeerFrame* frame) {
    if (frame->has_envelope()) {
      PeerEnvelope* envelope = frame->mutable_envelope();
      if (envelope->cluster_id() != core_->options.cluster_id) {
        peer_->counters.dropped_bad_cluster++;
      } else if (envelope->from_member_id() != peer_->id) {
        peer_->counters.dropped_bad_from++;
      } else if (static_cast<int64_t>(envelope->payload().size()) >
                 core_->options.max_message_bytes) {
        peer_->counters.dropped_bad_oversize++;
      } else if (!core_->stopping) {
        core_->Deliver(peer_, std::move(*envelope->mutable_payload()));
      }
    } else if (frame->has_ping()) {
      PeerFrame pong;
      pong.mutable_pong()->set_nonce(frame->ping().nonce());
      pong.mutable_pong()->set_sent_us(frame->ping().sent_us());
      Write(pong);
    }
    // A second hello or a pong from a dialer means nothing; ignored.
  }

  // One write in flight and at most one waiting behind it, the newest: the only writes are our
  // hello (always the first) and pongs, and an older pong is worth less than a newer one.
  void Write(const PeerFrame& frame) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    std::string bytes = frame.SerializeAsString();
    if (writing_) {
      pending_ = std::move(bytes);
      has_pending_ = true;
      return;
    }
    StartWriteLocked(std::move(bytes));
  }

  void StartWriteLocked(std::string bytes) {
    if (finished_) return;
    grpc::Slice slice(std::move(bytes));
    out_ = grpc::ByteBuffer(&slice, 1);
    writing_ = true;
    StartWrite(&out_);
  }

  void FinishOnce(const grpc::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  std::shared_ptr<Core> core_;
  Core::Peer* peer_ = nullptr;  // set by the hello; touched only on the read chain and OnDone
  grpc::ByteBuffer in_;
  std::mutex mu_;
  grpc::ByteBuffer out_;  // guarded by mu_ while writing_
  bool writing_ = false;
  std::string pending_;  // guarded by mu_
  bool has_pending_ = false;
  bool finished_ = false;
};

// Raw (ByteBuffer) method: a frame that does not parse must be counted, not turned into a failed
// call by gRPC's own deserializer.
class GrpcPeerTransport::Service final
    : public PeerTransport::WithRawCallbackMethod_Stream<PeerTransport::Service> {
 public:
  explicit Service(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* context) override {
    return new InboundReactor(core_);
  }

 private:
  std::shared_ptr<Core> core_;
};

struct GrpcPeerTransport::Server {
  std::unique_ptr<grpc::Server> server;
  std::vector<int> ports;
};

GrpcPeerTransport::GrpcPeerTransport(PeerTransportOptions options)
    : core_(std::make_shared<Core>(std::move(options))),
      service_(std::make_unique<Service>(core_)) {}

GrpcPeerTransport::~GrpcPeerTransport() { Shutdown(); }

absl::Status GrpcPeerTransport::Start(const std::vector<std::string>& listen_urls) {
  if (started_ || shut_down_) return absl::FailedPreconditionError("Start() called twice");
  started_ = true;
  const PeerTransportOptions& options = core_->options;
  if (options.executor == nullptr) return absl::InvalidArgumentError("no executor");
  if (options.max_message_bytes <= 0 ||
      options.max_message_bytes > std::numeric_limits<int>::max() - kPeerFrameOverheadBytes) {
    return absl::InvalidArgumentError("max_message_bytes out of range");
  }
  if (options.send_queue_bytes_max < 0 || options.receive_backlog_bytes_max < 0 ||
      options.reconnect_backoff_initial_ms <= 0 ||
      options.reconnect_backoff_max_ms < options.reconnect_backoff_initial_ms ||
      options.dial_timeout_ms <= 0 || options.ping_interval_ms <= 0) {
    return absl::InvalidArgumentError(
        "peer transport options: queue bound, backoff, dial timeout or ping interval out of "
        "range");
  }
  if (listen_urls.empty()) return absl::InvalidArgumentError("no peer listen URL");
  for (const auto& url : listen_urls) {
    if (IsTls(url)) return absl::UnimplementedError("peer TLS is not supported yet");
  }
  for (auto& [id, peer] : core_->peers) {
    if (peer->config.peer_urls.empty()) {
      return absl::InvalidArgumentError("peer " + peer->config.name + " has no peer URL");
    }
    for (const auto& url : peer->config.peer_urls) {
      if (IsTls(url)) return absl::UnimplementedError("peer TLS is not supported yet");
      absl::StatusOr<std::string> target = UrlToListenAddress(url);
      if (!target.ok()) return target.status();
      peer->targets.push_back(*target);
    }
  }
  absl::StatusOr<std::vector<std::string>> addresses = UrlsToListenAddresses(listen_urls);
  if (!addresses.ok()) return addresses.status();

  server_ = std::make_unique<Server>();
  server_->ports.assign(addresses->size(), 0);
  grpc::ServerBuilder builder;
  for (size_t i = 0; i < addresses->size(); ++i) {
    builder.AddListeningPort((*addresses)[i], grpc::InsecureServerCredentials(),
                             &server_->ports[i]);
  }
  // Two processes on one peer port would split a region's streams between them.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(kPeerKeepaliveTimeMs));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             static_cast<int>(kPeerKeepaliveTimeoutMs));
  // Dialers ping every kPeerKeepaliveTimeMs even on a quiet stream; that is not abuse.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             static_cast<int>(kPeerKeepaliveTimeMs / 2));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  builder.SetMaxReceiveMessageSize(static_cast<int>(core_->FrameBytesMax()));
  builder.SetMaxSendMessageSize(static_cast<int>(core_->FrameBytesMax()));
  builder.RegisterService(service_.get());
  server_->server = builder.BuildAndStart();
  if (server_->server == nullptr) {
    return absl::UnavailableError("cannot listen on peer URLs (address in use?)");
  }
  for (size_t i = 0; i < addresses->size(); ++i) {
    if (absl::StartsWith((*addresses)[i], "unix:")) {
      server_->ports[i] = 0;
    } else if (server_->ports[i] == 0) {
      return absl::UnavailableError("cannot listen on " + (*addresses)[i]);
    }
  }
  Core* core = core_.get();
  for (auto& [id, peer] : core_->peers) {
    Core::Peer* p = peer.get();
    p->sender = std::thread([core, p] { core->RunSender(p); });
  }
  return absl::OkStatus();
}

void GrpcPeerTransport::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  core_->stopping = true;
  // Inbound first, so nothing more is posted to the executor once this returns.
  if (server_ != nullptr && server_->server != nullptr) {
    server_->server->Shutdown(std::chrono::system_clock::now());
    server_->server->Wait();
  }
  for (auto& [id, peer] : core_->peers) {
    {
      std::lock_guard<std::mutex> lock(peer->mu);
      if (peer->live_context != nullptr) peer->live_context->TryCancel();
      peer->queue.clear();
      peer->queue_charged_bytes = 0;
      peer->counters.queued_bytes = 0;
      peer->counters.queued_messages = 0;
      peer->cv.notify_all();
    }
    if (peer->sender.joinable()) peer->sender.join();
  }
}

void GrpcPeerTransport::Send(uint64_t to_region, std::string payload) {
  Core::Peer* peer = core_->Find(to_region);
  if (peer == nullptr) {
    core_->unattributed.send_unknown_member++;
    return;
  }
  if (static_cast<int64_t>(payload.size()) > core_->options.max_message_bytes) {
    peer->counters.dropped_oversize_send++;
    return;
  }
  const int64_t charged = static_cast<int64_t>(payload.size()) + kPeerQueuedMessageOverheadBytes;
  std::lock_guard<std::mutex> lock(peer->mu);
  if (core_->stopping) return;
  if (peer->queue_charged_bytes + charged > core_->options.send_queue_bytes_max) {
    peer->counters.dropped_queue_full++;
    return;
  }
  peer->queue.push_back(std::move(payload));
  peer->queue_charged_bytes += charged;
  peer->counters.queued_bytes = peer->queue_charged_bytes;
  peer->counters.queued_messages++;
  peer->cv.notify_all();
}

void GrpcPeerTransport::SetReceiver(Receiver receiver) {
  auto shared = receiver ? std::make_shared<const Receiver>(std::move(receiver)) : nullptr;
  std::lock_guard<std::mutex> lock(core_->receiver_mu);
  core_->receiver = std::move(shared);
}

std::vector<PeerStatus> GrpcPeerTransport::Peers() const {
  std::vector<PeerStatus> out;
  out.reserve(core_->peers.size());
  for (const auto& [id, peer] : core_->peers) {
    PeerStatus status;
    status.member_id = id;
    status.name = peer->config.name;
    status.peer_urls = peer->config.peer_urls;
    {
      std::lock_guard<std::mutex> lock(peer->mu);
      status.client_urls = peer->client_urls;
      status.last_error = peer->last_error;
    }
    status.connected = peer->connected;
    status.counters = peer->counters.Snapshot();
    out.push_back(std::move(status));
  }
  return out;
}

UnattributedCounters GrpcPeerTransport::Unattributed() const {
  UnattributedCounters c;
  c.send_unknown_member = core_->unattributed.send_unknown_member.load();
  c.inbound_bad_parse = core_->unattributed.inbound_bad_parse.load();
  c.inbound_bad_cluster = core_->unattributed.inbound_bad_cluster.load();
  c.inbound_unknown_member = core_->unattributed.inbound_unknown_member.load();
  c.inbound_streams_refused = core_->unattributed.inbound_streams_refused.load();
  return c;
}

std::vector<int> GrpcPeerTransport::bound_ports() const {
  return server_ == nullptr ? std::vector<int>() : server_->ports;
}

}  // namespace geoetcd
