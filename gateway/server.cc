#include "gateway/server.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <map>
#include <type_traits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/check.h"

#include "core/node.h"
#include "gateway/admin_services.h"
#include "gateway/kv_service.h"
#include "gateway/lease_service.h"
#include "gateway/file_util.h"
#include "gateway/http_server.h"
#include "gateway/metrics.h"
#include "gateway/metrics_endpoint.h"
#include "gateway/native_frontend.h"
#include "gateway/peer_transport.h"
#include "gateway/rocksdb_storage.h"
#include "gateway/rpc_metrics.h"
#include "gateway/snapshot_stream.h"
#include "gateway/system_ports.h"
#include "gateway/watch_service.h"
#include "grpcpp/grpcpp.h"
#include "xxhash.h"

namespace geoetcd {

// The server is built on core/ without injected bugs (core/injected_bugs.h): no flag exists.
static_assert(std::is_empty_v<InjectedBugs>,
              "the server must link geoetcd_core, not the simulator's geoetcd_core_sim");

namespace {

// etcd's gRPC server accepts MaxRequestBytes plus this much framing overhead.
constexpr int64_t kGrpcOverheadBytes = 512 * 1024;
constexpr uint64_t kIdSeed = 0x67656f65746364ULL;  // "geoetcd"

uint64_t HashString(const std::string& s) { return XXH64(s.data(), s.size(), kIdSeed); }

}  // namespace

uint64_t MemberIdOf(const std::string& token, const std::string& name,
                    const std::vector<std::string>& peer_urls) {
  std::vector<std::string> urls = peer_urls;
  std::sort(urls.begin(), urls.end());
  std::string s = token + "|" + name;
  for (const auto& url : urls) s += "|" + url;
  return HashString(s);
}

uint64_t ComputeMemberId(const ServerConfig& config) {
  return MemberIdOf(config.initial_cluster_token, config.name,
                    config.initial_advertise_peer_urls);
}

uint64_t ComputeClusterId(const ServerConfig& config) {
  auto members = ParseInitialCluster(config.initial_cluster);
  CHECK(members.ok() && !members->empty());
  std::vector<uint64_t> ids;
  for (const auto& m : *members) {
    ids.push_back(MemberIdOf(config.initial_cluster_token, m.name, m.peer_urls));
  }
  std::sort(ids.begin(), ids.end());
  const std::string& write_region =
      config.write_region.empty() ? members->front().name : config.write_region;
  std::string s = config.initial_cluster_token;
  for (uint64_t id : ids) s += absl::StrFormat("|%016x", id);
  s += "|write-region=" + write_region;
  return HashString(s);
}

namespace {

std::string Hex(uint64_t id) { return absl::StrFormat("%016x", id); }

// What <data-dir>/member holds: "cluster-id <hex>", "member-id <hex>", "name <name>".
struct DataDirIdentity {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  std::string name;
};

constexpr int64_t kMemberFileBytesMax = 4096;

absl::StatusOr<DataDirIdentity> ParseIdentity(const std::string& path,
                                              const std::string& text) {
  DataDirIdentity id;
  bool have_cluster = false, have_member = false, have_name = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "cluster-id") {
      have_cluster = absl::SimpleHexAtoi(kv.second, &id.cluster_id);
    } else if (kv.first == "member-id") {
      have_member = absl::SimpleHexAtoi(kv.second, &id.member_id);
    } else if (kv.first == "name") {
      id.name = std::string(kv.second);
      have_name = !id.name.empty();
    }
  }
  if (!have_cluster || !have_member || !have_name) {
    return absl::DataLossError(absl::StrCat(
        path, " is malformed (want lines \"cluster-id <hex>\", \"member-id <hex>\", "
              "\"name <name>\"); it records which cluster and member the data dir belongs to"));
  }
  return id;
}

}  // namespace

absl::Status CheckDataDirIdentity(const std::string& data_dir, uint64_t cluster_id,
                                  uint64_t member_id, const std::string& name) {
  const std::string path = data_dir + "/member";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    }
    // A new data dir (or one from before geoetcd recorded its identity): it is this
    // member's from now on.
    return WriteFileDurably(data_dir, "member",
                            absl::StrCat("cluster-id ", Hex(cluster_id), "\nmember-id ",
                                         Hex(member_id), "\nname ", name, "\n"));
  }
  std::string text(kMemberFileBytesMax + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (static_cast<int64_t>(text.size()) > kMemberFileBytesMax) {
    return absl::DataLossError(absl::StrCat(path, " is larger than ", kMemberFileBytesMax,
                                            " bytes; it is not a geoetcd member file"));
  }
  auto recorded = ParseIdentity(path, text);
  if (!recorded.ok()) return recorded.status();
  if (recorded->cluster_id == cluster_id && recorded->member_id == member_id) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "data dir ", data_dir, " belongs to member \"", recorded->name, "\" (",
      Hex(recorded->member_id), ") of cluster ", Hex(recorded->cluster_id),
      ", but --name, --initial-cluster, --initial-cluster-token and --write-region give member \"",
      name, "\" (", Hex(member_id), ") of cluster ", Hex(cluster_id),
      "; start it with the flags it was created with, or give this member an empty data dir"));
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  std::unique_ptr<Server> server(new Server());
  if (auto s = server->Init(config); !s.ok()) {
    server->Shutdown();
    return s;
  }
  return server;
}

// Regions (ARCHITECTURE.md §2): every member of --initial-cluster is one, reached over its
// peer URLs (or --peer-dial-urls); the account `default` is sequenced at --write-region, by
// default the first member. With one member there is nothing to configure.
absl::Status Server::ConfigureRegions(const ServerConfig& config, NodeOptions* options,
                                      Ports* ports) {
  auto members = ParseInitialCluster(config.initial_cluster);
  if (!members.ok()) return members.status();
  if (members->size() < 2) return absl::OkStatus();  // one region: no peers
  PeerTransportOptions peer_options;
  peer_options.member_id = member_id_;
  peer_options.cluster_id = cluster_id_;
  peer_options.name = config.name;
  peer_options.peer_urls = config.initial_advertise_peer_urls;
  peer_options.client_urls = config.advertise_client_urls;
  peer_options.executor = executor_.get();
  std::vector<uint64_t> peer_ids;
  const std::string& write_name =
      config.write_region.empty() ? members->front().name : config.write_region;
  for (const auto& m : *members) {
    const uint64_t id = MemberIdOf(config.initial_cluster_token, m.name, m.peer_urls);
    options->regions.push_back(RegionInfo{id, m.name});
    if (m.name == write_name) options->write_region = id;
    if (m.name == config.name) continue;
    peer_ids.push_back(id);
    auto d = config.peer_dial.find(m.name);
    peer_options.peers[id] =
        PeerConfig{m.name, d != config.peer_dial.end() ? d->second : m.peer_urls};
  }
  peer_rtt_ = std::make_unique<PeerRttMetrics>(peer_ids);
  peer_options.on_round_trip = [rtt = peer_rtt_.get()](uint64_t id, int64_t rtt_us) {
    rtt->Observe(id, rtt_us);
  };
  transport_ = std::make_unique<GrpcPeerTransport>(std::move(peer_options));
  ports->transport = transport_.get();
  return absl::OkStatus();
}

absl::Status Server::Init(const ServerConfig& config) {
  config_ = config;
  cluster_id_ = ComputeClusterId(config);
  member_id_ = ComputeMemberId(config);

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError("cannot create data dir " + config.data_dir + ": " +
                                         ec.message());
  }
  clock_ = std::make_unique<SystemClock>();
  executor_ = std::make_unique<AsioExecutor>();
  if (config.client_transport == "native") {
    // Replies the Node produces in one executor task leave from the executor's thread at
    // the task's end, one write per connection, instead of waking the I/O loops.
    executor_->SetAfterTask([] { h2::FlushDeferred(); });
  }
  rpc_metrics_ = std::make_unique<RpcMetrics>();
  wal_fsync_seconds_ = std::make_unique<Histogram>(WalFsyncBuckets());
  RocksDbOptions storage_options;
  storage_options.sync_duration_seconds = wal_fsync_seconds_.get();
  auto storage = RocksDbStorage::Open(config.data_dir + "/rocksdb", executor_.get(),
                                      storage_options);
  if (!storage.ok()) return storage.status();
  storage_ = std::move(*storage);
  // After RocksDB's lock: a second process on this data dir has already been refused.
  if (auto s = CheckDataDirIdentity(config.data_dir, cluster_id_, member_id_, config.name);
      !s.ok()) {
    return s;
  }

  NodeOptions options;
  options.name = config.name;
  options.cluster_id = cluster_id_;
  options.member_id = member_id_;
  options.request_bytes_max = config.max_request_bytes;
  options.txn_ops_max = config.max_txn_ops;
  options.watch_progress_notify_interval_ms = config.watch_progress_notify_interval_ms;
  options.quota_bytes = config.quota_backend_bytes;
  options.auto_compaction.period_ms = config.auto_compaction_period_ms;
  options.auto_compaction.revisions = config.auto_compaction_revisions;
  options.forward_timeout_ms = config.forward_timeout_ms;
  options.gossip_interval_ms = config.gossip_interval_ms;
  options.log_catchup_entries_max = config.log_catchup_entries;
  options.write_quorum = config.write_quorum == "local" ? WriteQuorum::kLocal
                         : config.write_quorum == "all" ? WriteQuorum::kAll
                                                        : WriteQuorum::kMajority;
  Ports ports;
  ports.clock = clock_.get();
  ports.executor = executor_.get();
  ports.storage = storage_.get();
  if (auto s = ConfigureRegions(config, &options, &ports); !s.ok()) return s;
  node_ = std::make_unique<Node>(options, ports, Random(static_cast<uint64_t>(clock_->WallMs())));
  {
    // The Node arms its timers on the executor, which requires the state mutex.
    absl::MutexLock lock(&executor_->state_mutex());
    if (auto s = node_->Start(); !s.ok()) return s;
  }
  executor_->Start();
  executor_running_ = true;
  if (transport_) {
    if (auto s = transport_->Start(config.listen_peer_urls); !s.ok()) return s;
  }
  if (auto s = StartClientServices(config); !s.ok()) return s;
  return StartMetrics(config);
}

absl::Status Server::StartMetrics(const ServerConfig& config) {
  MetricsSources sources;
  sources.node = node_.get();
  sources.executor = executor_.get();
  sources.storage = storage_.get();
  sources.transport = transport_.get();
  sources.rpc = rpc_metrics_.get();
  sources.wal_fsync_seconds = wal_fsync_seconds_.get();
  sources.peer_rtt = peer_rtt_.get();
  if (auto members = ParseInitialCluster(config.initial_cluster); members.ok()) {
    for (const auto& m : *members) {
      sources.region_names[MemberIdOf(config.initial_cluster_token, m.name, m.peer_urls)] =
          m.name;
    }
  }
  metrics_endpoint_ = std::make_unique<MetricsEndpoint>(std::move(sources));
  if (config.listen_metrics_urls.empty()) return absl::OkStatus();
  auto addresses = UrlsToListenAddresses(config.listen_metrics_urls);
  if (!addresses.ok()) return addresses.status();
  auto http = HttpServer::Start(
      *addresses,
      [endpoint = metrics_endpoint_.get()](const HttpRequest& r) { return endpoint->Handle(r); },
      HttpServerOptions());
  if (!http.ok()) return http.status();
  metrics_http_ = std::move(*http);
  return absl::OkStatus();
}

std::vector<int> Server::metrics_ports() const {
  return metrics_http_ ? metrics_http_->bound_ports() : std::vector<int>();
}

// The etcd services on every --listen-client-urls address: the native HTTP/2 transport
// (with gRPC C++ in-process for the methods it relays) or gRPC C++'s own server.
absl::Status Server::StartClientServices(const ServerConfig& config) {
  auto addresses = UrlsToListenAddresses(config.listen_client_urls);
  if (!addresses.ok()) return addresses.status();
  const bool native = config.client_transport == "native";
  const int max_receive = static_cast<int>(config.max_request_bytes + kGrpcOverheadBytes);

  grpc::ServerBuilder builder;
  std::vector<int> ports_bound(addresses->size(), 0);
  if (!native) {
    for (size_t i = 0; i < addresses->size(); ++i) {
      builder.AddListeningPort((*addresses)[i], grpc::InsecureServerCredentials(),
                               &ports_bound[i]);
    }
  }
  builder.SetMaxReceiveMessageSize(max_receive);
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  // Per-call bookkeeping nobody reads: channelz's call counters.
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcMetricsInterceptorFactory(rpc_metrics_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  services_.push_back(std::make_unique<KvService>(node_.get(), executor_.get()));
  services_.push_back(std::make_unique<WatchService>(node_.get(), executor_.get()));
  services_.push_back(std::make_unique<LeaseService>(node_.get(), executor_.get()));
  // Snapshot checkpoints are staged inside the data dir: same filesystem, so SST files are
  // hard links; leftovers of a crash are removed here.
  snapshots_ =
      std::make_unique<SnapshotStreamer>(storage_.get(), config.data_dir + "/snapshot-tmp");
  services_.push_back(std::make_unique<MaintenanceService>(node_.get(), executor_.get(),
                                                           storage_.get(), snapshots_.get()));
  ClusterService::PeerClientUrls peer_client_urls;
  if (transport_) {
    peer_client_urls = [transport = transport_.get()] {
      std::map<uint64_t, std::vector<std::string>> urls;
      for (const PeerStatus& peer : transport->Peers()) urls[peer.member_id] = peer.client_urls;
      return urls;
    };
  }
  services_.push_back(std::make_unique<ClusterService>(
      node_.get(), executor_.get(), InitialMembers(config), std::move(peer_client_urls)));
  services_.push_back(std::make_unique<AuthService>(node_.get()));
  grpc::EnableDefaultHealthCheckService(true);
  for (auto& service : services_) builder.RegisterService(service.get());
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr) {
    return absl::UnavailableError("cannot listen on client URLs (address in use?)");
  }
  if (native) {
    // The gRPC C++ services stay reachable in-process for every method the native transport
    // relays; nothing of theirs listens on a socket.
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    h2::ServerOptions options;
    options.max_receive_message_bytes = static_cast<uint32_t>(max_receive);
    native_ = std::make_unique<NativeFrontend>(node_.get(), executor_.get(),
                                               grpc_server_->InProcessChannel(args), options,
                                               rpc_metrics_.get());
    return native_->Start(*addresses);
  }
  for (size_t i = 0; i < addresses->size(); ++i) {
    if (ports_bound[i] == 0) {
      return absl::UnavailableError("cannot listen on " + (*addresses)[i]);
    }
  }
  return absl::OkStatus();
}

void Server::Wait() {
  if (grpc_server_) grpc_server_->Wait();
}

void Server::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // The metrics listener reads the Node and storage: it goes before either.
  if (metrics_http_) metrics_http_->Shutdown();
  // The native transport first: its relayed calls are clients of the gRPC server.
  if (native_) native_->Shutdown(2000);
  if (grpc_server_) {
    // Give in-flight calls a moment to finish, then cancel the rest.
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  // Peers next: after this no peer message is posted; the ones already posted run before
  // storage closes.
  if (transport_) {
    transport_->Shutdown();
    if (executor_running_) {
      std::promise<void> drained;
      executor_->Post([&drained] { drained.set_value(); });
      drained.get_future().wait();
    }
  }
  // Every Snapshot call has ended with the server; its worker must stop before storage closes.
  snapshots_.reset();
  // The storage destructor drains queued writes and posts their callbacks, which the
  // executor thread must still run; stop the executor after storage is closed.
  storage_.reset();
  if (executor_) executor_->Stop();
  if (node_) {
    absl::MutexLock lock(&executor_->state_mutex());  // its destructor cancels timers
    node_.reset();
  }
  transport_.reset();
}

Server::~Server() { Shutdown(); }

}  // namespace geoetcd
