// The production Transport: regions exchange the Node's messages over gRPC bidirectional streams on
// their peer URLs (ARCHITECTURE.md §7, wire in proto/geoetcd/peer_transport.proto).
//
// Topology: one stream per ordered pair. Every region dials every other region and sends on the
// stream it dialed; it receives on the streams others dialed to it. The accepting side writes only
// its hello and pongs back. Why not one stream per pair used both ways: that needs a rule for which
// side dials and a way to settle two simultaneous dials, and a half-broken connection then cuts
// both directions at once. With a stream per direction, each direction connects, fails and backs
// off on its own, which is also what a one-way partition looks like (issue 10, item 7). The cost is
// two TCP connections per pair.
//
// Delivery is unreliable, as the Transport port allows: a full send queue drops the new message, a
// stream that breaks loses what was being written, and nothing is retransmitted. Messages queued
// while a peer is unreachable stay queued (within the bound) and go out when it is reached again.
// Every drop is counted (PeerCounters, UnattributedCounters).
//
// Checks on what arrives, each dropped and counted, never delivered: a frame that does not parse, a
// hello or envelope carrying another cluster id, a hello naming an unknown member (or this region
// itself), an envelope whose from_member_id differs from its stream's hello, a payload over
// max_message_bytes. A stream whose first frame is not a valid hello is closed. Messages are
// delivered to the receiver through executor->Post(), never inline on a gRPC thread.
//
// Threads: per peer, one sender thread for the transport's lifetime, plus one reader thread per
// live outbound stream (it reads the peer's hello and pongs, so a broken stream is seen even when
// nothing is being sent); inbound streams run on gRPC's callback threads.
#ifndef GEOETCD_GATEWAY_PEER_TRANSPORT_H_
#define GEOETCD_GATEWAY_PEER_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/ports.h"

namespace geoetcd {

// Largest Node payload a frame may carry: a 4 MiB replication batch plus the Node's own message
// overhead.
inline constexpr int64_t kPeerMessageBytesMaxDefault = (4LL << 20) + (64LL << 10);
// What a frame adds around its payload (ids, tags); gRPC's per-message limit is max_message_bytes
// plus this, so an oversize payload reaches our own check and is counted instead of gRPC failing
// the whole stream.
inline constexpr int64_t kPeerFrameOverheadBytes = 16LL << 10;
// Bytes queued per peer before new messages are dropped. Each queued message is charged its payload
// size plus kPeerQueuedMessageOverheadBytes (its string and queue slot), so a flood of empty
// payloads is bounded too.
inline constexpr int64_t kPeerSendQueueBytesMaxDefault = 64LL << 20;
inline constexpr int64_t kPeerQueuedMessageOverheadBytes = 64;
// Bytes received from one peer and posted to the executor but not yet run by it. Past this the
// Node is not keeping up; new messages are dropped (and counted) rather than piling up in the
// executor's unbounded queue. Charged like the send queue.
inline constexpr int64_t kPeerReceiveBacklogBytesMaxDefault = 64LL << 20;
// Reconnect backoff: starts at initial, multiplies by kPeerReconnectBackoffMultiplier per failed
// attempt up to max, each wait jittered by ±kPeerReconnectJitterFraction so regions that lost each
// other at once do not redial in lockstep. Reset once a stream is up.
inline constexpr int64_t kPeerReconnectBackoffInitialMsDefault = 100;
inline constexpr int64_t kPeerReconnectBackoffMaxMsDefault = 5000;
inline constexpr double kPeerReconnectBackoffMultiplier = 2.0;
inline constexpr double kPeerReconnectJitterFraction = 0.2;
// How long one dial may take: TCP connect plus HTTP/2 setup plus the peer's hello.
inline constexpr int64_t kPeerDialTimeoutMsDefault = 2000;
// An idle outbound stream sends a ping this often (RTT, and liveness of a quiet link).
inline constexpr int64_t kPeerPingIntervalMsDefault = 1000;
// HTTP/2 keepalive: a connection whose pings go unanswered this long is closed, so a black-holed
// link is noticed even while a write waits on flow control.
inline constexpr int64_t kPeerKeepaliveTimeMs = 10000;
inline constexpr int64_t kPeerKeepaliveTimeoutMs = 5000;
// Inbound streams open at once, with or without a hello yet. Each peer needs one (two briefly while
// it replaces a broken one); the bound stops a stranger from opening many.
inline constexpr int kPeerInboundStreamsMax = 64;
// A hello is small; more URLs or longer ones than this make it malformed.
inline constexpr int kPeerHelloUrlsMax = 16;
inline constexpr int kPeerHelloUrlBytesMax = 512;
inline constexpr int kPeerHelloNameBytesMax = 256;

struct PeerConfig {
  std::string name;
  std::vector<std::string> peer_urls;  // dialed in turn, one per attempt
};

struct PeerTransportOptions {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  std::string name;
  // This region's advertised URLs, sent in its hello.
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;
  // Every other region, by member id. An entry for member_id itself is ignored.
  std::map<uint64_t, PeerConfig> peers;
  // Where the receiver runs. Not owned; must outlive the transport. Post() is called from gRPC
  // threads.
  Executor* executor = nullptr;
  int64_t max_message_bytes = kPeerMessageBytesMaxDefault;
  int64_t send_queue_bytes_max = kPeerSendQueueBytesMaxDefault;
  int64_t receive_backlog_bytes_max = kPeerReceiveBacklogBytesMaxDefault;
  int64_t reconnect_backoff_initial_ms = kPeerReconnectBackoffInitialMsDefault;
  int64_t reconnect_backoff_max_ms = kPeerReconnectBackoffMaxMsDefault;
  int64_t dial_timeout_ms = kPeerDialTimeoutMsDefault;
  int64_t ping_interval_ms = kPeerPingIntervalMsDefault;
  // Called with every ping round trip (a peer's member id, microseconds), on the thread that
  // read the pong; for the RTT histogram of /metrics. Optional.
  std::function<void(uint64_t member_id, int64_t rtt_us)> on_round_trip;
};

// Monotonic counts for one peer. Readable from any thread (Peers()); each field is read atomically
// on its own, so a snapshot is not one instant.
struct PeerCounters {
  // Outbound (to this peer).
  int64_t sent = 0;                   // envelopes written to a stream
  int64_t dropped_queue_full = 0;     // Send() found the queue at its byte bound
  int64_t dropped_oversize_send = 0;  // Send() payload over max_message_bytes
  int64_t dropped_in_flight = 0;      // taken from the queue, lost with a broken stream
  int64_t queued_bytes = 0;           // charged bytes waiting now (a level, not a count)
  int64_t queued_messages = 0;        // messages waiting now
  int64_t connects = 0;               // outbound streams that completed the hello exchange
  int64_t reconnects = 0;             // of those, the ones after the first
  int64_t dial_failures = 0;          // attempts that ended before a valid peer hello
  int64_t rtt_us_last = -1;           // last ping round trip; -1 before the first pong
  // Inbound (from this peer), on streams whose hello named it.
  int64_t delivered = 0;                   // payloads posted to the executor
  int64_t dropped_bad_parse = 0;           // a frame that did not parse
  int64_t dropped_bad_cluster = 0;         // an envelope (or its reply hello) of another cluster
  int64_t dropped_bad_unknown_member = 0;  // a reply hello from the wrong member
  int64_t dropped_bad_from = 0;            // from_member_id differed from the stream's hello
  int64_t dropped_bad_oversize = 0;        // payload over max_message_bytes
  int64_t dropped_no_receiver = 0;         // arrived before SetReceiver()
  int64_t dropped_receive_backlog = 0;     // the executor had receive_backlog_bytes_max pending
  int64_t receive_backlog_bytes = 0;       // posted, not yet run (a level)
  int64_t inbound_streams = 0;             // streams from this peer open now (a level)
};

// Drops that cannot be pinned on a configured peer.
struct UnattributedCounters {
  int64_t send_unknown_member = 0;      // Send() to a member id not in `peers`
  int64_t inbound_bad_parse = 0;        // first frame of a stream did not parse or was no hello
  int64_t inbound_bad_cluster = 0;      // a hello with another cluster id
  int64_t inbound_unknown_member = 0;   // a hello naming no configured peer
  int64_t inbound_streams_refused = 0;  // over kPeerInboundStreamsMax
};

struct PeerStatus {
  uint64_t member_id = 0;
  std::string name;
  std::vector<std::string> peer_urls;    // as configured
  std::vector<std::string> client_urls;  // from the peer's latest hello; empty until then
  bool connected = false;                // our outbound stream to it is up (hellos exchanged)
  // Why our last outbound stream to it ended or failed to start ("cannot connect to ...", "no hello
  // from ...: cluster id mismatch"); empty until something went wrong. For operators: the peer's
  // own counters say why it refused us.
  std::string last_error;
  PeerCounters counters;
};

class GrpcPeerTransport : public Transport {
 public:
  explicit GrpcPeerTransport(PeerTransportOptions options);
  ~GrpcPeerTransport() override;  // Shutdown()

  GrpcPeerTransport(const GrpcPeerTransport&) = delete;
  GrpcPeerTransport& operator=(const GrpcPeerTransport&) = delete;

  // Serves the PeerTransport service on `listen_urls` (--listen-peer-urls: http:// or unix://; port
  // 0 binds an ephemeral port, see bound_ports()) and starts dialing every peer. https:// in
  // listen_urls or in any peer's URLs is Unimplemented ("peer TLS is not supported yet"); a URL
  // that cannot be bound is Unavailable. Call once.
  absl::Status Start(const std::vector<std::string>& listen_urls);
  // Start() and Shutdown() belong to the owner and are called from one thread; everything else
  // may be called from any thread, concurrently with them.
  //
  // Stops serving and dialing, drops whatever is queued, joins every thread. Idempotent. After it
  // returns no receiver call is posted any more (earlier posts may still run).
  void Shutdown();

  // Never blocks: enqueues for `to_region`'s sender thread, or drops and counts (unknown member,
  // payload over max_message_bytes, queue at send_queue_bytes_max). Any thread. Before Start()
  // messages queue; after Shutdown() they are dropped.
  void Send(uint64_t to_region, std::string payload) override;
  // Any thread, any time; messages that arrive before it are dropped and counted. Each delivery
  // posts the receiver held at arrival time.
  void SetReceiver(Receiver receiver) override;

  // One entry per configured peer, ordered by member id. Any thread.
  std::vector<PeerStatus> Peers() const;
  UnattributedCounters Unattributed() const;
  // The port bound for each listen URL, in order (after a successful Start; 0 for unix).
  std::vector<int> bound_ports() const;

 private:
  struct Core;
  class Service;
  class InboundReactor;
  std::shared_ptr<Core> core_;  // shared with inbound reactors, which may outlive a call
  std::unique_ptr<Service> service_;
  struct Server;
  std::unique_ptr<Server> server_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_PEER_TRANSPORT_H_
