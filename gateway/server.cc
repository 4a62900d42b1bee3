#include "gateway/server.h"

#include <cstdio>
#include <filesystem>
#include <future>
#include <limits>

#include "core/node.h"
#include "gateway/admin_services.h"
#include "gateway/kv_service.h"
#include "gateway/lease_service.h"
#include "gateway/native_frontend.h"
#include "gateway/rocksdb_storage.h"
#include "gateway/snapshot_stream.h"
#include "gateway/system_ports.h"
#include "gateway/watch_service.h"
#include "grpcpp/grpcpp.h"
#include "xxhash.h"

namespace geoetcd {
namespace {

// etcd's gRPC server accepts MaxRequestBytes plus this much framing overhead.
constexpr int64_t kGrpcOverheadBytes = 512 * 1024;
constexpr uint64_t kIdSeed = 0x67656f65746364ULL;  // "geoetcd"

uint64_t HashString(const std::string& s) { return XXH64(s.data(), s.size(), kIdSeed); }

}  // namespace

uint64_t ComputeClusterId(const ServerConfig& config) {
  return HashString(config.initial_cluster_token + "|" + config.initial_cluster);
}

uint64_t ComputeMemberId(const ServerConfig& config) {
  std::string s = config.initial_cluster_token + "|" + config.name;
  for (const auto& url : config.initial_advertise_peer_urls) s += "|" + url;
  return HashString(s);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerConfig& config) {
  std::unique_ptr<Server> server(new Server());
  if (auto s = server->Init(config); !s.ok()) {
    server->Shutdown();
    return s;
  }
  return server;
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
  auto storage = RocksDbStorage::Open(config.data_dir + "/rocksdb", executor_.get(),
                                      RocksDbOptions());
  if (!storage.ok()) return storage.status();
  storage_ = std::move(*storage);

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
  Ports ports;
  ports.clock = clock_.get();
  ports.executor = executor_.get();
  ports.storage = storage_.get();
  node_ = std::make_unique<Node>(options, ports, Random(static_cast<uint64_t>(clock_->WallMs())));
  {
    // The Node arms its timers on the executor, which requires the state mutex.
    absl::MutexLock lock(&executor_->state_mutex());
    if (auto s = node_->Start(); !s.ok()) return s;
  }
  executor_->Start();

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
  services_.push_back(std::make_unique<KvService>(node_.get(), executor_.get()));
  services_.push_back(std::make_unique<WatchService>(node_.get(), executor_.get()));
  services_.push_back(std::make_unique<LeaseService>(node_.get(), executor_.get()));
  // Snapshot checkpoints are staged inside the data dir: same filesystem, so SST files are
  // hard links; leftovers of a crash are removed here.
  snapshots_ =
      std::make_unique<SnapshotStreamer>(storage_.get(), config.data_dir + "/snapshot-tmp");
  services_.push_back(std::make_unique<MaintenanceService>(node_.get(), executor_.get(),
                                                           storage_.get(), snapshots_.get()));
  services_.push_back(
      std::make_unique<ClusterService>(node_.get(), executor_.get(), InitialMembers(config)));
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
                                               grpc_server_->InProcessChannel(args), options);
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
  // The native transport first: its relayed calls are clients of the gRPC server.
  if (native_) native_->Shutdown(2000);
  if (grpc_server_) {
    // Give in-flight calls a moment to finish, then cancel the rest.
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
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
}

Server::~Server() { Shutdown(); }

}  // namespace geoetcd
