#include "sim/simulation.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/watch_buffer.h"
#include "sim/buggify.h"
#include "sim/kv_model.h"
#include "sim/sim_network.h"
#include "sim/sim_node.h"
#include "sim/sim_world.h"
#include "sim/watch_workload.h"
#include "sim/workload.h"

namespace geoetcd::sim {

using etcdserverpb::CompactionResponse;
using etcdserverpb::DeleteRangeResponse;
using etcdserverpb::LeaseGrantResponse;
using etcdserverpb::LeaseKeepAliveResponse;
using etcdserverpb::LeaseRevokeResponse;
using etcdserverpb::LeaseTimeToLiveResponse;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnResponse;

namespace {

// A phase that needs more simulated time than this has stopped making progress.
constexpr int64_t kPhaseSimUsMax = int64_t{3600} * 1'000'000;
constexpr uint64_t kClusterId = 0x67656f'657463'64ULL;  // "geoetcd"
constexpr int64_t kWallEpochMs = int64_t{1'700'000'000'000};
constexpr int64_t kWallSkewMsMax = 5'000;
constexpr int64_t kClockJumpMsMax = 5'000;
constexpr int64_t kInterRegionLatencyUsDefault = 40'000;
constexpr int64_t kLeaseTtlMinS = 1;

struct BugName {
  const char* name;
  bool InjectedBugs::*flag;
};
constexpr BugName kBugNames[] = {
    {"ack-before-fsync", &InjectedBugs::ack_before_fsync},
    {"stale-linearizable-read", &InjectedBugs::stale_linearizable_read},
    {"skip-watch-event", &InjectedBugs::skip_watch_event},
    {"reuse-revision-after-crash", &InjectedBugs::reuse_revision_after_crash},
    {"txn-not-atomic", &InjectedBugs::txn_not_atomic},
    {"lease-revoke-not-atomic", &InjectedBugs::lease_revoke_not_atomic},
    {"apply-out-of-order", &InjectedBugs::apply_out_of_order},
    {"drop-replicated-commit", &InjectedBugs::drop_replicated_commit},
    {"ack-forward-before-apply", &InjectedBugs::ack_forward_before_apply},
    {"merge-prefers-older", &InjectedBugs::merge_prefers_older},
};
// A region that needs longer than this (simulated) to reach the write region's state after
// every fault healed does not converge.
constexpr int64_t kConvergeSimUsMax = int64_t{60} * 1'000'000;

double WallSecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Half of all runs are buggified when the seed decides.
Buggify MakeBuggify(BuggifyMode mode, Random& random) {
  const bool coin = random.Chance(0.5);
  const bool enabled = mode == BuggifyMode::kOn || (mode == BuggifyMode::kSeed && coin);
  return Buggify(enabled, random.Fork());
}

// Adapts a Node reply into a KvReply for the client.
template <typename Resp, typename Set>
Reply<Resp> ToKvReply(std::function<void(KvReply)> send, Set set) {
  return [send = std::move(send), set](absl::StatusOr<Resp> r) {
    KvReply reply;
    if (r.ok()) {
      set(&reply, *std::move(r));
    } else {
      reply.status = r.status();
    }
    send(std::move(reply));
  };
}

class Simulation : public KvEndpoint, public WatchEndpoint {
 public:
  explicit Simulation(const SimConfig& config);
  SimResult Run();

  // KvEndpoint.
  void Call(int32_t client, const KvCall& call, std::function<void(KvReply)> reply) override;
  // WatchEndpoint.
  uint64_t OpenWatchConnection(int32_t client, Callbacks callbacks) override;
  void SendWatchRequest(uint64_t connection, const etcdserverpb::WatchRequest& req) override;
  void CloseWatchConnection(uint64_t connection) override;

 private:
  // The server side of one watch connection: the Node's stream, its bounded outbound
  // buffer, and a pump that sends buffered responses to the client at the link's pace.
  struct WatchConnection {
    int32_t client_endpoint = 0;
    SimNode* node = nullptr;
    uint64_t incarnation = 0;  // of the node process the stream lives in
    uint64_t stream_id = 0;    // 0 until the node opened the stream
    bool broken = false;
    std::unique_ptr<WatchStreamBuffer> buffer;
    uint64_t next_seq = 1;
    bool pump_scheduled = false;
    Callbacks callbacks;
  };
  static uint64_t ToNodeFlow(uint64_t connection) { return 2 * connection; }
  static uint64_t ToClientFlow(uint64_t connection) { return 2 * connection + 1; }
  WatchConnection* FindConnection(uint64_t id);
  // True when the connection's stream is open in the node process that is running now.
  bool StreamLive(const WatchConnection& c) const;
  void OpenStreamOnNode(uint64_t id);
  bool OfferWatchResponse(uint64_t id, etcdserverpb::WatchResponse response);
  void SchedulePump(uint64_t id);
  void Pump(uint64_t id);
  // The node died: its streams are gone, and each client hears its connection reset.
  void BreakConnections(int32_t node_index);

  void Setup();
  // The region (node index) a client's gateway is in.
  int32_t RegionOf(int32_t client) const { return client % config_.regions; }
  // True once every region holds the write region's durable log.
  bool Converged() const;
  // Every region's state equals the write region's at every revision they share, and their
  // logs are equal entry by entry. Empty when they are; otherwise what differs.
  std::string CompareRegions() const;
  NodeOptions MakeNodeOptions(int32_t index);
  void Dispatch(SimNode& node, int32_t client_endpoint, const KvCall& call,
                std::function<void(KvReply)> reply);
  void Respond(int32_t from, int32_t to, KvReply reply, std::function<void(KvReply)> done);

  void StartFaults();
  void ScheduleCrash();
  void ScheduleDiskError();
  void ScheduleNetworkFault();
  void ScheduleClockJump();
  int64_t FaultDelayUs(int64_t mean_us);
  void CrashNode(int32_t index, const char* why);
  void RestartNode(int32_t index, size_t crash_record);
  void OnFatal(int32_t index, const absl::Status& status);
  int64_t DiskLatencyMs();
  void Quiesce();
  bool AllUp() const;
  bool RunPhase(const std::function<bool()>& done);
  void Note(const std::string& text) {
    if (world_.tracing()) world_.TraceNote(text);
  }

  SimConfig config_;
  SimWorld world_;
  Random fault_random_;
  Buggify buggify_;
  SimNetwork network_;
  std::vector<SimTransport*> transports_;  // by region
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::vector<int32_t> client_endpoints_;
  History history_;
  std::unique_ptr<KvWorkload> workload_;
  std::unique_ptr<WatchWorkload> watch_;
  std::map<uint64_t, WatchConnection> watch_connections_;
  uint64_t next_connection_id_ = 1;
  SimStats stats_;
  std::string recovery_error_;
  // A forwarding region answered a mutation before it had applied the answer's revision.
  std::string read_your_writes_error_;

  bool faults_active_ = false;
  bool crash_faults_ = false;
  bool network_faults_ = false;
  bool disk_faults_ = false;

  // Tunables, fixed per run (BUGGIFY varies them).
  int64_t disk_latency_ms_max_ = 2;
  double disk_spike_p_ = 0.02;
  int64_t disk_spike_ms_max_ = 300;
  int64_t crash_interval_us_ = 500'000;
  int64_t downtime_us_max_ = 100'000;
  int64_t disk_error_interval_us_ = 700'000;
  int64_t network_fault_interval_us_ = 400'000;
  int64_t clock_jump_interval_us_ = 1'000'000;
  int64_t watch_pump_us_ = 0;
  size_t watch_buffer_responses_max_ = kWatchStreamBufferedResponsesMax;
};

Simulation::Simulation(const SimConfig& config)
    : config_(config),
      world_(config.seed),
      fault_random_(world_.random().Fork()),
      buggify_(MakeBuggify(config.buggify, world_.random())),
      network_(&world_, world_.random().Fork()) {
  crash_faults_ = config.faults == FaultProfile::kCrash || config.faults == FaultProfile::kAll;
  network_faults_ = config.faults == FaultProfile::kNetwork || config.faults == FaultProfile::kAll;
  disk_faults_ = config.faults == FaultProfile::kDisk || config.faults == FaultProfile::kAll;
  if (config_.trace) world_.SetTraceSink(config_.trace);
}

NodeOptions Simulation::MakeNodeOptions(int32_t index) {
  NodeOptions options;
  options.name = absl::StrCat("region-", index);
  options.cluster_id = kClusterId;
  options.member_id = static_cast<uint64_t>(index) + 1;
  options.bugs = config_.bugs;
  // Tiny limits exercise the TooManyRequests path under load.
  options.pending_requests_max =
      buggify_.Choice("node_pending_requests_max", options.pending_requests_max, {1, 2, 8, 64});
  options.on_fatal = [this, index](const absl::Status& s) { OnFatal(index, s); };
  options.on_repaired = [this, index](const std::string&, int64_t revision) {
    history_.repairs.push_back({index, world_.now_us(), revision});
  };
  for (int32_t r = 0; r < config_.regions; ++r) {
    options.regions.push_back({static_cast<uint64_t>(r) + 1, absl::StrCat("region-", r)});
  }
  options.write_region = 1;  // region 0 sequences the account's writes
  options.replication_tick_ms = buggify_.Choice("replication_tick_ms", 20, {5, 100});
  options.retransmit_ms = buggify_.Choice("retransmit_ms", 200, {50, 1000});
  options.forward_retry_ms = buggify_.Choice("forward_retry_ms", 250, {60, 1000});
  options.gossip_interval_ms = buggify_.Choice("gossip_interval_ms", 200, {50, 2000});
  options.merkle_depth = 2;  // 256 leaves: the workload's keyspaces are tiny
  // A short log for laggards, so that a region down or cut off while W compacts catches up
  // by Merkle repair (node_repair.cc) within a run.
  options.log_catchup_entries_max =
      buggify_.Choice("log_catchup_entries_max", 20, {3, 1000000});
  options.append_bytes_max = buggify_.Choice("append_bytes_max", options.append_bytes_max, {200});
  options.replication_window_bytes =
      buggify_.Choice("replication_window_bytes", options.replication_window_bytes, {1000});
  // Leases as short as a second, so that leases left alone expire within a run (etcd's
  // minimum is 2 s: 1.5 election timeouts), and an expiry check as often as every 50 ms.
  options.lease_ttl_min_s = kLeaseTtlMinS;
  options.lease_tick_ms = buggify_.Choice("lease_tick_ms", options.lease_tick_ms, {50, 1000});
  options.lease_revokes_per_tick_max =
      buggify_.Choice("lease_revokes_per_tick_max", options.lease_revokes_per_tick_max, {1});
  // Frequent enough that progress notifications happen within a run.
  options.watch_progress_notify_interval_ms =
      buggify_.Choice("watch_progress_notify_interval_ms", 200, {100, 2000});
  return options;
}

void Simulation::Setup() {
  stats_.buggified = buggify_.enabled();
  history_.lease_ttl_min_s = kLeaseTtlMinS;
  disk_latency_ms_max_ = buggify_.Choice("disk_latency_ms_max", 5, {0, 1, 20, 40});
  disk_spike_p_ = static_cast<double>(buggify_.Choice("disk_spike_permille", 20, {0, 200})) / 1000;
  crash_interval_us_ = buggify_.Choice("crash_interval_ms", 500, {50, 150, 2000}) * 1000;
  downtime_us_max_ = buggify_.Choice("crash_downtime_ms_max", 100, {2, 1000}) * 1000;
  disk_error_interval_us_ = buggify_.Choice("disk_error_interval_ms", 700, {100, 3000}) * 1000;
  network_fault_interval_us_ = buggify_.Choice("network_fault_interval_ms", 400, {50, 2000}) * 1000;
  const int64_t drift_ppm_max = buggify_.Choice("clock_drift_ppm_max", 200, {0, 20'000});

  const int32_t regions = config_.regions;
  transports_.resize(regions, nullptr);
  for (int32_t r = 0; r < regions; ++r) {
    SimNodeConfig node_config;
    node_config.options = MakeNodeOptions(r);
    node_config.wall_offset_ms =
        kWallEpochMs + fault_random_.Range(-kWallSkewMsMax, kWallSkewMsMax);
    node_config.drift_ppm =
        static_cast<int32_t>(fault_random_.Range(-drift_ppm_max, drift_ppm_max));
    nodes_.push_back(std::make_unique<SimNode>(&world_, &network_, r, &transports_,
                                               std::move(node_config), world_.random().Fork()));
    transports_[r] = &nodes_.back()->transport();
    nodes_.back()->storage().SetLatencyHook([this] { return DiskLatencyMs(); });
  }
  const int64_t client_latency_us = buggify_.Choice("client_latency_us", 200, {20, 2000});
  for (int32_t a = 0; a < regions; ++a) {
    for (int32_t b = 0; b < regions; ++b) {
      network_.SetLatencyUs(a, b, a == b ? client_latency_us : kInterRegionLatencyUsDefault);
    }
  }
  NetworkFaults net;
  net.jitter_us_max = buggify_.Choice("net_jitter_us_max", 100, {0, 3000});
  if (network_faults_) {
    net.loss = static_cast<double>(buggify_.Choice("net_loss_permille", 5, {0, 50})) / 1000;
    net.duplicate = 0.01;
    net.reorder = 0.01;
    net.reorder_delay_us_max = 5'000;
  }
  network_.SetFaults(net);

  WorkloadConfig workload;
  workload.clients = config_.clients;
  workload.ops = config_.ops;
  workload.leases = config_.leases;
  workload.keys = static_cast<int32_t>(buggify_.Choice("workload_keys", 16, {2, 4, 64}));
  workload.think_us_max = buggify_.Choice("client_think_us_max", 10'000, {0, 200, 50'000});
  workload.timeout_us =
      buggify_.Choice("client_timeout_us", 1'000'000, {20'000, 100'000, 5'000'000});
  workload.txn_keys_max = static_cast<int32_t>(buggify_.Choice("txn_keys_max", 3, {2, 6}));
  // Clients (and the auditor) are spread over the regions, each talking to its own.
  for (int32_t c = 0; c <= config_.clients; ++c)
    client_endpoints_.push_back(network_.AddEndpoint(RegionOf(c)));
  workload_ =
      std::make_unique<KvWorkload>(&world_, &history_, this, workload, world_.random().Fork());
  // Slow readers with small buffers push watchers off the synced path into catch-up.
  watch_pump_us_ = buggify_.Choice("watch_pump_us", 0, {300, 3000});
  watch_buffer_responses_max_ = static_cast<size_t>(
      buggify_.Choice("watch_buffer_responses_max", kWatchStreamBufferedResponsesMax, {1, 4}));
  WatchConfig watch;
  watch.watchers = config_.watchers;
  watch.keys = workload.keys;
  const int32_t first_watcher = config_.clients + 1;  // after the clients and the auditor
  for (int32_t w = 0; w < watch.watchers; ++w) {
    client_endpoints_.push_back(network_.AddEndpoint(RegionOf(first_watcher + w)));
  }
  watch_ = std::make_unique<WatchWorkload>(&world_, &history_, this, watch, first_watcher,
                                           world_.random().Fork());

  for (auto& node : nodes_) CHECK(node->Start().ok());  // empty storage always starts
  world_.SetAfterEvent([this](int32_t) {
    if (config_.check_invariants) {
      // The register trees cost O(keys) encodings: every 64th event.
      const bool trees = world_.events_run() % 64 == 0;
      for (auto& node : nodes_) {
        if (!node->up()) continue;
        node->node()->CheckInvariants();
        if (trees) node->node()->CheckRegisterTrees();
      }
    }
    if (SimProgress* p = config_.progress) {
      p->events = static_cast<int64_t>(world_.events_run());
      p->now_us = world_.now_us();
      p->ops = static_cast<int64_t>(history_.ops.size());
      p->hash = world_.trace_hash();
    }
  });
}

void Simulation::Call(int32_t client, const KvCall& call, std::function<void(KvReply)> reply) {
  const int32_t client_endpoint = client_endpoints_.at(client);
  SimNode* node = nodes_[RegionOf(client)].get();
  const uint64_t incarnation = world_.incarnation(node->index());
  // The request itself stays in the history (the workload recorded it), so the message
  // carries only its index.
  CHECK(call.history_index >= 0);
  network_.Send(client_endpoint, node->endpoint(), /*duplicable=*/false,
                [this, node, client_endpoint, incarnation, index = call.history_index, reply] {
                  if (!node->up()) {
                    // Connection refused: the request provably did nothing.
                    KvReply refused;
                    refused.status = absl::UnavailableError("sim: connection refused");
                    Respond(node->endpoint(), client_endpoint, std::move(refused), reply);
                    return;
                  }
                  // The connection died with the process it was open to.
                  if (world_.incarnation(node->index()) != incarnation) return;
                  Dispatch(*node, client_endpoint, history_.ops[index].call, reply);
                });
}

void Simulation::Respond(int32_t from, int32_t to, KvReply reply,
                         std::function<void(KvReply)> done) {
  network_.Send(from, to, /*duplicable=*/false,
                [done = std::move(done), reply = std::move(reply)]() mutable {
                  done(std::move(reply));
                });
}

void Simulation::Dispatch(SimNode& node, int32_t client_endpoint, const KvCall& call,
                          std::function<void(KvReply)> reply) {
  auto send = [this, &node, from = node.endpoint(), client_endpoint, reply,
               index = call.history_index](KvReply r) {
    if (index >= 0 && r.status.ok()) {
      HistoryOp& op = history_.ops[index];
      op.server_changed = ResponseChangedState(r.response.op);
      HistoryOp tmp;
      tmp.call.kind = op.call.kind;
      tmp.SetResponse(r.response);
      op.server_revision = tmp.header_revision();
      // The answering region must hold what it answered: the client's next read there
      // (serializable ones included) sees its own write.
      if (op.server_changed && node.up() && read_your_writes_error_.empty() &&
          node.node()->durable_revision() < op.server_revision) {
        read_your_writes_error_ = absl::StrCat(
            "region ", node.index(), " answered ", FormatOp(op), " at revision ",
            op.server_revision, " while it had applied only revision ",
            node.node()->durable_revision());
      }
    }
    Respond(from, client_endpoint, std::move(r), reply);
  };
  const RequestContext ctx;
  Node* n = node.node();
  switch (call.kind) {
    case OpKind::kRange:
      n->Range(ctx, call.request.request_range(),
               ToKvReply<RangeResponse>(send, [](KvReply* k, RangeResponse r) {
                 *k->response.op.mutable_response_range() = std::move(r);
               }));
      break;
    case OpKind::kPut:
      n->Put(ctx, call.request.request_put(),
             ToKvReply<PutResponse>(send, [](KvReply* k, PutResponse r) {
               *k->response.op.mutable_response_put() = std::move(r);
             }));
      break;
    case OpKind::kDelete:
      n->DeleteRange(ctx, call.request.request_delete_range(),
                     ToKvReply<DeleteRangeResponse>(send, [](KvReply* k, DeleteRangeResponse r) {
                       *k->response.op.mutable_response_delete_range() = std::move(r);
                     }));
      break;
    case OpKind::kTxn:
      n->Txn(ctx, call.request.request_txn(),
             ToKvReply<TxnResponse>(send, [](KvReply* k, TxnResponse r) {
               *k->response.op.mutable_response_txn() = std::move(r);
             }));
      break;
    case OpKind::kCompact:
      n->Compact(ctx, call.compact,
                 ToKvReply<CompactionResponse>(send, [](KvReply* k, CompactionResponse r) {
                   k->response.compact = std::move(r);
                 }));
      break;
    case OpKind::kLeaseGrant:
      n->LeaseGrant(ctx, call.lease_grant,
                    ToKvReply<LeaseGrantResponse>(send, [](KvReply* k, LeaseGrantResponse r) {
                      k->response.lease_grant = std::move(r);
                    }));
      break;
    case OpKind::kLeaseRevoke:
      n->LeaseRevoke(ctx, call.lease_revoke,
                     ToKvReply<LeaseRevokeResponse>(send, [](KvReply* k, LeaseRevokeResponse r) {
                       k->response.lease_revoke = std::move(r);
                     }));
      break;
    case OpKind::kLeaseKeepAlive:
      n->LeaseKeepAlive(
          ctx, call.lease_keep_alive,
          ToKvReply<LeaseKeepAliveResponse>(send, [](KvReply* k, LeaseKeepAliveResponse r) {
            k->response.lease_keep_alive = std::move(r);
          }));
      break;
    case OpKind::kLeaseTimeToLive:
      n->LeaseTimeToLive(
          ctx, call.lease_time_to_live,
          ToKvReply<LeaseTimeToLiveResponse>(send, [](KvReply* k, LeaseTimeToLiveResponse r) {
            k->response.lease_time_to_live = std::move(r);
          }));
      break;
  }
}

Simulation::WatchConnection* Simulation::FindConnection(uint64_t id) {
  auto it = watch_connections_.find(id);
  return it == watch_connections_.end() ? nullptr : &it->second;
}

bool Simulation::StreamLive(const WatchConnection& c) const {
  return !c.broken && c.stream_id != 0 && c.node->up() &&
         world_.incarnation(c.node->index()) == c.incarnation;
}

uint64_t Simulation::OpenWatchConnection(int32_t client, Callbacks callbacks) {
  const uint64_t id = next_connection_id_++;
  WatchConnection& c = watch_connections_[id];
  c.client_endpoint = client_endpoints_.at(client);
  c.node = nodes_[RegionOf(client)].get();
  c.buffer = std::make_unique<WatchStreamBuffer>(watch_buffer_responses_max_);
  c.callbacks = std::move(callbacks);
  network_.SendOrdered(c.client_endpoint, c.node->endpoint(), ToNodeFlow(id),
                       [this, id] { OpenStreamOnNode(id); });
  return id;
}

void Simulation::OpenStreamOnNode(uint64_t id) {
  WatchConnection* c = FindConnection(id);
  if (c == nullptr || c->broken) return;
  absl::StatusOr<uint64_t> stream = absl::UnavailableError("sim: connection refused");
  if (c->node->up()) {
    stream = c->node->node()->OpenWatchStream(
        RequestContext(),
        [this, id](etcdserverpb::WatchResponse r) { return OfferWatchResponse(id, std::move(r)); });
  }
  if (!stream.ok()) {
    c->broken = true;
    network_.SendOrdered(c->node->endpoint(), c->client_endpoint, ToClientFlow(id), [this, id] {
      if (WatchConnection* conn = FindConnection(id); conn && conn->callbacks.on_broken) {
        conn->callbacks.on_broken();
      }
    });
    return;
  }
  c->incarnation = world_.incarnation(c->node->index());
  c->stream_id = *stream;
}

void Simulation::SendWatchRequest(uint64_t connection, const etcdserverpb::WatchRequest& req) {
  WatchConnection* c = FindConnection(connection);
  if (c == nullptr) return;
  network_.SendOrdered(c->client_endpoint, c->node->endpoint(), ToNodeFlow(connection),
                       [this, connection, req] {
                         WatchConnection* conn = FindConnection(connection);
                         if (conn == nullptr || !StreamLive(*conn)) return;
                         conn->node->node()->WatchRequest(conn->stream_id, req);
                       });
}

void Simulation::CloseWatchConnection(uint64_t connection) {
  WatchConnection* c = FindConnection(connection);
  if (c == nullptr) return;
  // The client forgets the connection at once; the server learns of it a moment later.
  c->callbacks = Callbacks();
  c->broken = true;
  network_.SendOrdered(c->client_endpoint, c->node->endpoint(), ToNodeFlow(connection),
                       [this, connection] {
                         WatchConnection* conn = FindConnection(connection);
                         if (conn == nullptr) return;
                         if (conn->stream_id != 0 && conn->node->up() &&
                             world_.incarnation(conn->node->index()) == conn->incarnation) {
                           conn->node->node()->CloseWatchStream(conn->stream_id);
                         }
                         network_.EndFlow(ToNodeFlow(connection));
                         network_.EndFlow(ToClientFlow(connection));
                         watch_connections_.erase(connection);
                       });
}

bool Simulation::OfferWatchResponse(uint64_t id, etcdserverpb::WatchResponse response) {
  WatchConnection* c = FindConnection(id);
  if (c == nullptr) return true;  // gone: as if the bytes went into a dead socket
  if (!c->buffer->Offer(std::move(response))) return false;
  SchedulePump(id);
  return true;
}

void Simulation::SchedulePump(uint64_t id) {
  WatchConnection* c = FindConnection(id);
  if (c == nullptr || c->pump_scheduled || c->buffer->empty()) return;
  c->pump_scheduled = true;
  // Node-scoped: the sending loop dies with the process.
  world_.Schedule(watch_pump_us_, EventType::kNodePost, c->node->index(), [this, id] { Pump(id); });
}

void Simulation::Pump(uint64_t id) {
  WatchConnection* c = FindConnection(id);
  if (c == nullptr) return;
  c->pump_scheduled = false;
  if (c->buffer->empty()) return;
  const uint64_t seq = c->next_seq++;
  network_.SendOrdered(c->node->endpoint(), c->client_endpoint, ToClientFlow(id),
                       [this, id, seq, r = c->buffer->Pop()] {
                         WatchConnection* conn = FindConnection(id);
                         if (conn != nullptr && conn->callbacks.on_response) {
                           conn->callbacks.on_response(seq, r);
                         }
                       });
  if (c->buffer->TakeResume() && StreamLive(*c)) c->node->node()->ResumeWatchStream(c->stream_id);
  SchedulePump(id);
}

void Simulation::BreakConnections(int32_t node_index) {
  for (auto& [id, c] : watch_connections_) {
    if (c.broken || c.node->index() != node_index) continue;
    c.broken = true;
    while (!c.buffer->empty()) c.buffer->Pop();
    network_.SendOrdered(c.node->endpoint(), c.client_endpoint, ToClientFlow(id), [this, id = id] {
      WatchConnection* conn = FindConnection(id);
      if (conn != nullptr && conn->callbacks.on_broken) {
        conn->callbacks.on_broken();
      }
    });
  }
}

int64_t Simulation::FaultDelayUs(int64_t mean_us) {
  return fault_random_.Range(mean_us / 2, mean_us * 3 / 2);
}

void Simulation::StartFaults() {
  faults_active_ = true;
  if (crash_faults_) ScheduleCrash();
  if (disk_faults_) ScheduleDiskError();
  if (network_faults_) {
    ScheduleNetworkFault();
    ScheduleClockJump();
  }
}

void Simulation::ScheduleCrash() {
  world_.Schedule(FaultDelayUs(crash_interval_us_), EventType::kFault, kNoNode, [this] {
    if (!faults_active_) return;
    const int32_t i = static_cast<int32_t>(fault_random_.Uniform(nodes_.size()));
    if (nodes_[i]->up()) CrashNode(i, "crash");
    ScheduleCrash();
  });
}

void Simulation::CrashNode(int32_t index, const char* why) {
  SimNode& node = *nodes_[index];
  // Usually the disk keeps only what was synced; sometimes the OS had written back some
  // unsynced batches too (a prefix of them, whole).
  size_t kept = 0;
  const size_t unsynced = node.storage().unsynced_batches();
  if (unsynced > 0 && fault_random_.Chance(0.25)) {
    kept = static_cast<size_t>(fault_random_.Range(1, static_cast<int64_t>(unsynced)));
  }
  CrashRecord record;
  record.node = index;
  record.crash_us = world_.now_us();
  history_.crashes.push_back(record);
  ++stats_.crashes;
  world_.Fold(0xc4a5'0000ULL + static_cast<uint64_t>(index));
  world_.Fold(kept);
  Note(absl::StrCat(why, ": node ", index, " keeps ", kept, " of ", unsynced, " unsynced batches"));
  node.Crash(kept);
  BreakConnections(index);
  const size_t crash_record = history_.crashes.size() - 1;
  world_.Schedule(fault_random_.Range(1000, std::max<int64_t>(1000, downtime_us_max_)),
                  EventType::kFault, kNoNode,
                  [this, index, crash_record] { RestartNode(index, crash_record); });
}

void Simulation::RestartNode(int32_t index, size_t crash_record) {
  SimNode& node = *nodes_[index];
  CrashRecord& record = history_.crashes[crash_record];
  if (absl::Status s = node.Start(); !s.ok()) {
    record.restart_failed = true;
    recovery_error_ = absl::StrCat("node ", index, " failed to restart: ", s.ToString());
    Note(recovery_error_);
    return;
  }
  record.restart_us = world_.now_us();
  record.recovered_revision = node.node()->durable_revision();
  world_.Fold(static_cast<uint64_t>(record.recovered_revision));
  Note(absl::StrCat("restart: node ", index, " recovered revision ", record.recovered_revision));
  workload_->Audit();
}

void Simulation::OnFatal(int32_t index, const absl::Status& status) {
  ++stats_.fail_stops;
  Note(absl::StrCat("fail-stop: node ", index, ": ", status.ToString()));
  // Not inline: this runs inside the Node. The process is then killed and restarted.
  world_.Schedule(0, EventType::kFault, kNoNode, [this, index] {
    SimNode& node = *nodes_[index];
    if (node.up() && node.node()->failed()) CrashNode(index, "fail-stop");
  });
}

int64_t Simulation::DiskLatencyMs() {
  // A synced write on a cloud SSD takes a millisecond or a few; 0 only when BUGGIFY says so.
  int64_t ms =
      fault_random_.Range(std::min<int64_t>(1, disk_latency_ms_max_), disk_latency_ms_max_);
  if (faults_active_ && disk_faults_ && fault_random_.Chance(disk_spike_p_)) {
    ms += fault_random_.Range(20, disk_spike_ms_max_);
  }
  return ms;
}

void Simulation::ScheduleDiskError() {
  world_.Schedule(FaultDelayUs(disk_error_interval_us_), EventType::kFault, kNoNode, [this] {
    if (!faults_active_) return;
    const int32_t i = static_cast<int32_t>(fault_random_.Uniform(nodes_.size()));
    ++stats_.disk_error_windows;
    Note(absl::StrCat("disk: node ", i, " writes fail"));
    nodes_[i]->storage().SetWriteError(absl::DataLossError("sim: injected disk write error"));
    world_.Schedule(fault_random_.Range(1000, 20'000), EventType::kFault, kNoNode,
                    [this, i] { nodes_[i]->storage().SetWriteError(absl::OkStatus()); });
    ScheduleDiskError();
  });
}

void Simulation::ScheduleNetworkFault() {
  world_.Schedule(FaultDelayUs(network_fault_interval_us_), EventType::kFault, kNoNode, [this] {
    if (!faults_active_) return;
    const int64_t duration_us = fault_random_.Range(5'000, 500'000);
    const int32_t node_endpoint = nodes_[fault_random_.Uniform(nodes_.size())]->endpoint();
    const uint64_t kind = fault_random_.Uniform(nodes_.size() > 1 ? 5 : 3);
    switch (kind) {
      case 0: {  // one client loses its connection
        const int32_t c = client_endpoints_[fault_random_.Uniform(client_endpoints_.size())];
        ++stats_.partitions;
        Note(absl::StrCat("partition: endpoint ", c, " from ", node_endpoint));
        network_.Partition(c, node_endpoint);
        world_.Schedule(duration_us, EventType::kFault, kNoNode,
                        [this, c, node_endpoint] { network_.Heal(c, node_endpoint); });
        break;
      }
      case 1:  // the region is cut off from every client
        ++stats_.partitions;
        Note(absl::StrCat("partition: endpoint ", node_endpoint, " from every client"));
        for (int32_t c : client_endpoints_) network_.Partition(c, node_endpoint);
        world_.Schedule(duration_us, EventType::kFault, kNoNode, [this, node_endpoint] {
          for (int32_t c : client_endpoints_) network_.Heal(c, node_endpoint);
        });
        break;
      case 3:    // two regions cannot reach each other (the peer link is cut)
      case 4: {  // or one region's messages stop reaching another; the reverse flows
        const bool one_way = kind == 4;
        const int32_t a = static_cast<int32_t>(fault_random_.Uniform(nodes_.size()));
        int32_t b = static_cast<int32_t>(fault_random_.Uniform(nodes_.size() - 1));
        if (b >= a) ++b;
        const int32_t ea = nodes_[a]->endpoint();
        const int32_t eb = nodes_[b]->endpoint();
        ++stats_.partitions;
        Note(absl::StrCat("partition: region ", a, one_way ? " -> region " : " from region ", b,
                          one_way ? " (one way)" : ""));
        if (one_way) {
          network_.PartitionOneWay(ea, eb);
        } else {
          network_.Partition(ea, eb);
        }
        world_.Schedule(duration_us, EventType::kFault, kNoNode, [this, ea, eb, one_way] {
          if (one_way) {
            network_.HealOneWay(ea, eb);
          } else {
            network_.Heal(ea, eb);
          }
        });
        break;
      }
      default:  // everything to and from the region is late
        ++stats_.clogs;
        Note(absl::StrCat("clog: endpoint ", node_endpoint));
        network_.Clog(node_endpoint, world_.now_us() + duration_us / 2);
        break;
    }
    ScheduleNetworkFault();
  });
}

void Simulation::ScheduleClockJump() {
  world_.Schedule(FaultDelayUs(clock_jump_interval_us_), EventType::kFault, kNoNode, [this] {
    if (!faults_active_) return;
    const int32_t i = static_cast<int32_t>(fault_random_.Uniform(nodes_.size()));
    const int64_t jump_ms = fault_random_.Range(-kClockJumpMsMax, kClockJumpMsMax);
    ++stats_.clock_jumps;
    Note(absl::StrCat("clock: node ", i, " wall time jumps ", jump_ms, " ms"));
    nodes_[i]->clock().JumpWallMs(jump_ms);
    ScheduleClockJump();
  });
}

void Simulation::Quiesce() {
  faults_active_ = false;
  network_.HealAll();
  network_.UnclogAll();
  NetworkFaults calm;
  calm.jitter_us_max = network_.faults().jitter_us_max;
  network_.SetFaults(calm);
  for (auto& node : nodes_) node->storage().SetWriteError(absl::OkStatus());
  Note("quiesce: faults healed");
}

bool Simulation::Converged() const {
  if (!AllUp()) return false;
  const Node* w = nodes_[0]->node();
  // Quiet too: nothing staged beyond the durable state anywhere (the register trees
  // reflect what is applied, durable or not).
  for (const auto& n : nodes_) {
    if (n->node()->durable_index() != w->durable_index() ||
        n->node()->durable_revision() != w->durable_revision() ||
        n->node()->applied_index() != n->node()->durable_index()) {
      return false;
    }
  }
  return true;
}

std::string Simulation::CompareRegions() const {
  const Node* w = nodes_[0]->node();
  for (size_t i = 1; i < nodes_.size(); ++i) {
    const Node* r = nodes_[i]->node();
    // A region that adopted another's state by Merkle repair has no history below the
    // revision it adopted (its compaction point), which lies within W's history.
    const bool repaired_past = nodes_[i]->repairs_completed() > 0 &&
                               r->compact_revision() > w->compact_revision() &&
                               r->compact_revision() <= w->durable_revision();
    if (r->compact_revision() != w->compact_revision() && !repaired_past) {
      return absl::StrCat("region ", i, " compacted at ", r->compact_revision(),
                          ", the write region at ", w->compact_revision());
    }
    const int64_t from =
        std::max<int64_t>(1, std::max(w->compact_revision(), r->compact_revision()));
    for (int64_t rev = from; rev <= w->durable_revision(); ++rev) {
      if (r->KvHashAt(Node::kDefaultAccount, rev) != w->KvHashAt(Node::kDefaultAccount, rev)) {
        return absl::StrCat("region ", i, " differs from the write region at revision ", rev);
      }
    }
    // Same log applied, same registers: the anti-entropy trees agree, and each holds its
    // keyspace's registers.
    w->CheckRegisterTrees();
    r->CheckRegisterTrees();
    if (r->merkle_root() != w->merkle_root()) {
      std::string first;
      w->keyspace()->ForEachNewest([&](const std::string& key, const KeyVersion& v) {
        const KeyVersion* rv = r->keyspace()->Newest(key);
        const Register wr = KvStore::RegisterOf(key, v);
        if (rv == nullptr || KvStore::RegisterOf(key, *rv) != wr) {
          first = absl::StrCat(": W holds ", RegisterDebugString(wr), ", the region ",
                               rv ? RegisterDebugString(KvStore::RegisterOf(key, *rv))
                                  : std::string("nothing"));
          return false;
        }
        return true;
      });
      return absl::StrCat("region ", i, "'s register tree root ", r->merkle_root(),
                          " differs from the write region's ", w->merkle_root(),
                          " at the same log index", first);
    }
    const auto& wl = w->log_tail();
    const auto& rl = r->log_tail();
    for (const LogEntry& e : rl) {
      if (wl.empty() || e.index() < wl.front().index() || e.index() > wl.back().index()) continue;
      const LogEntry& we = wl[e.index() - wl.front().index()];
      if (we.SerializeAsString() != e.SerializeAsString()) {
        return absl::StrCat("region ", i, " holds a different log entry ", e.index());
      }
    }
  }
  return "";
}

bool Simulation::AllUp() const {
  return std::all_of(nodes_.begin(), nodes_.end(), [](const auto& n) { return n->up(); });
}

bool Simulation::RunPhase(const std::function<bool()>& done) {
  return world_.RunUntil([&] { return done() || !recovery_error_.empty() || world_.overflowed(); },
                         world_.now_us() + kPhaseSimUsMax) &&
         recovery_error_.empty() && !world_.overflowed();
}

SimResult Simulation::Run() {
  const auto run_start = std::chrono::steady_clock::now();
  Setup();
  StartFaults();
  workload_->Start();
  watch_->Start();
  SimResult result;
  bool live = RunPhase([this] { return workload_->done(); });
  if (live) {
    Quiesce();
    live = RunPhase([this] { return AllUp() && !workload_->auditing(); });
  }
  if (live && crash_faults_) {
    // One last crash (of a node the seed picks) with nothing in flight from the faults:
    // every acknowledged write must come back, and the auditor reads it after the restart.
    CrashNode(static_cast<int32_t>(fault_random_.Uniform(nodes_.size())), "final crash");
    live = RunPhase([this] { return AllUp() && !workload_->auditing(); });
  }
  if (live) {
    workload_->Audit();
    live = RunPhase([this] { return !workload_->auditing(); });
  }
  std::string convergence_error;
  if (live && nodes_.size() > 1) {
    // After every fault healed, every region must reach the write region's state in a
    // bounded simulated time, and hold exactly its history.
    const int64_t start_us = world_.now_us();
    const bool converged = world_.RunUntil([this] { return Converged(); },
                                           start_us + kConvergeSimUsMax);
    if (!converged) {
      std::string lag;
      for (const auto& n : nodes_) {
        absl::StrAppend(&lag, " region ", n->index(), ":",
                        n->up() ? absl::StrCat("durable ", n->node()->durable_index(), " applied ",
                                               n->node()->applied_index(), " pulls ",
                                               n->node()->peer_stats().pulls_sent, " applied ",
                                               n->node()->peer_stats().entries_applied, " recv ",
                                               n->node()->peer_stats().received, " sent ",
                                               n->node()->peer_stats().sent, " foreign ",
                                               n->node()->peer_stats().dropped_foreign)
                                : "down");
      }
      convergence_error = absl::StrCat("regions did not reach the write region's log within ",
                                       kConvergeSimUsMax / 1'000'000, " simulated s:", lag);
    } else {
      convergence_error = CompareRegions();
    }
  }
  if (live) {
    // Every watcher must account for every revision up to the end (a bookmark at it).
    watch_->Finish(nodes_[0]->node()->durable_revision());
    live = RunPhase([this] { return watch_->finished(); });
  }
  watch_->Stop();
  result.run_wall_seconds = WallSecondsSince(run_start);

  for (const auto& [site, active] : buggify_.sites()) {
    if (active) stats_.buggify_sites_active.push_back(site);
  }
  for (const HistoryOp& op : history_.ops) {
    stats_.ops_ok += op.outcome == OpOutcome::kOk;
    stats_.ops_failed += op.outcome == OpOutcome::kFail;
    stats_.ops_unknown += op.outcome == OpOutcome::kUnknown;
  }
  stats_.messages_sent = network_.stats().sent;
  stats_.messages_lost = network_.stats().lost + network_.stats().partitioned;
  stats_.repairs = 0;
  for (const auto& n : nodes_) stats_.repairs += static_cast<int64_t>(n->repairs_completed());
  if (nodes_[0]->up()) stats_.final_revision = nodes_[0]->node()->durable_revision();

  const auto check_start = std::chrono::steady_clock::now();
  CheckResult check = CheckHistory(history_, config_.check);
  result.check_wall_seconds = WallSecondsSince(check_start);
  result.notes = check.notes;
  if (!recovery_error_.empty()) {
    result.ok = false;
    result.checker = "recovery";
    result.detail = recovery_error_;
  } else if (!read_your_writes_error_.empty()) {
    result.ok = false;
    result.checker = "read-your-writes";
    result.detail = read_your_writes_error_;
  } else if (!convergence_error.empty()) {
    result.ok = false;
    result.checker = "convergence";
    result.detail = convergence_error;
  } else if (!check.ok) {
    result.ok = false;
    result.checker = check.checker;
    result.detail = check.detail;
  } else if (!live) {
    result.ok = false;
    result.checker = "liveness";
    result.detail = world_.overflowed()
                        ? "the event queue overflowed"
                        : absl::StrCat("no progress within ", kPhaseSimUsMax / 1'000'000,
                                       " simulated seconds (", workload_->issued(), " of ",
                                       config_.ops, " requests issued)");
  }
  result.ops = static_cast<int64_t>(history_.ops.size());
  result.events = world_.events_run();
  result.sim_seconds = static_cast<double>(world_.now_us()) / 1e6;
  result.hash = world_.trace_hash();
  result.stats = stats_;
  result.history = std::move(history_);
  return result;
}

}  // namespace

bool ParseFaultProfile(std::string_view name, FaultProfile* profile) {
  static constexpr std::pair<const char*, FaultProfile> kProfiles[] = {
      {"none", FaultProfile::kNone},       {"crash", FaultProfile::kCrash},
      {"network", FaultProfile::kNetwork}, {"disk", FaultProfile::kDisk},
      {"all", FaultProfile::kAll},
  };
  for (const auto& [n, p] : kProfiles) {
    if (name == n) {
      *profile = p;
      return true;
    }
  }
  return false;
}

const char* FaultProfileName(FaultProfile profile) {
  switch (profile) {
    case FaultProfile::kNone:
      return "none";
    case FaultProfile::kCrash:
      return "crash";
    case FaultProfile::kNetwork:
      return "network";
    case FaultProfile::kDisk:
      return "disk";
    case FaultProfile::kAll:
      return "all";
  }
  return "?";
}

const std::vector<std::string>& InjectedBugNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>();
    for (const BugName& b : kBugNames) v->push_back(b.name);
    return v;
  }();
  return *names;
}

absl::Status ParseInjectedBug(std::string_view name, InjectedBugs* bugs) {
  if (name == "none") return absl::OkStatus();
  for (const BugName& b : kBugNames) {
    if (name == b.name) {
      bugs->*(b.flag) = true;
      return absl::OkStatus();
    }
  }
  std::string valid = "none";
  for (const BugName& b : kBugNames) absl::StrAppend(&valid, ", ", b.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --inject-bug '", std::string(name), "'; valid: ", valid));
}

absl::Status ValidateConfig(const SimConfig& config) {
  if (config.regions < 1 || config.regions > kRegionsMax) {
    return absl::InvalidArgumentError(absl::StrCat("--regions must be 1..", kRegionsMax));
  }
  if (config.clients < 1) return absl::InvalidArgumentError("--clients must be >= 1");
  if (config.watchers < 0) return absl::InvalidArgumentError("--watchers must be >= 0");
  if (config.ops < 0) return absl::InvalidArgumentError("--ops must be >= 0");
  return absl::OkStatus();
}

absl::StatusOr<SimResult> RunSimulation(const SimConfig& config) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  return Simulation(config).Run();
}

}  // namespace geoetcd::sim
