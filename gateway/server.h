// One region's server process: RocksDB storage, the Node on its executor thread, and the
// gRPC services on every --listen-client-urls address.
#ifndef GEOETCD_GATEWAY_SERVER_H_
#define GEOETCD_GATEWAY_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/config.h"

namespace grpc {
class Server;
class Service;
}  // namespace grpc

namespace geoetcd {

class AsioExecutor;
class GrpcPeerTransport;
class Histogram;
class HttpServer;
class MetricsEndpoint;
class PeerRttMetrics;
class RpcMetrics;
class NativeFrontend;
class Node;
struct NodeOptions;
struct Ports;
class RocksDbStorage;
class SnapshotStreamer;
class SystemClock;

class Server {
 public:
  // Opens the data dir, recovers the Node and starts serving. Errors name what failed
  // ("data dir ... is in use by another geoetcd process", "cannot listen on ...").
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerConfig& config);
  ~Server();

  // Blocks until Shutdown() is called from another thread.
  void Wait();
  // Stops accepting calls, drains in-flight ones and closes storage. Idempotent.
  void Shutdown();

  uint64_t cluster_id() const { return cluster_id_; }
  uint64_t member_id() const { return member_id_; }
  // /metrics, /health, /livez, /readyz as a function of the request, for any HTTP/1.1
  // listener (the metrics URLs now; the client URLs once their transport speaks HTTP/1.1).
  const MetricsEndpoint& metrics_endpoint() const { return *metrics_endpoint_; }
  // The port bound for each --listen-metrics-urls entry, in order.
  std::vector<int> metrics_ports() const;

 private:
  Server() = default;
  absl::Status Init(const ServerConfig& config);
  // Fills the Node's regions and write region and creates the peer transport.
  absl::Status ConfigureRegions(const ServerConfig& config, NodeOptions* options, Ports* ports);
  absl::Status StartClientServices(const ServerConfig& config);
  absl::Status StartMetrics(const ServerConfig& config);

  ServerConfig config_;
  // Metrics the gateway records (the Node's own counters are read at scrape time).
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<Histogram> wal_fsync_seconds_;
  std::unique_ptr<PeerRttMetrics> peer_rtt_;
  uint64_t cluster_id_ = 0;
  uint64_t member_id_ = 0;
  std::unique_ptr<SystemClock> clock_;
  std::unique_ptr<AsioExecutor> executor_;
  std::unique_ptr<RocksDbStorage> storage_;
  // With more than one member in --initial-cluster: the other regions, over the peer URLs.
  std::unique_ptr<GrpcPeerTransport> transport_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<SnapshotStreamer> snapshots_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<NativeFrontend> native_;
  std::unique_ptr<MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<HttpServer> metrics_http_;
  bool executor_running_ = false;
  bool shut_down_ = false;
};

// etcd-style IDs: stable hashes of the cluster token and membership. A member's id hashes
// the token, its name and its peer URLs (in any order). The cluster id hashes the token,
// every member's id (in any order) and the write region of the account `default`, so
// regions started with different write regions refuse each other's peer messages instead
// of disagreeing about where writes are sequenced. REQUIRES: a config ParseServerFlags
// accepted (its --initial-cluster parses).
uint64_t ComputeClusterId(const ServerConfig& config);
uint64_t ComputeMemberId(const ServerConfig& config);
uint64_t MemberIdOf(const std::string& token, const std::string& name,
                    const std::vector<std::string>& peer_urls);

// The identity a data dir was created with, kept in <data-dir>/member: the first start
// writes it (durably, atomically); every later start must match it, or the region refuses
// to start (FailedPrecondition naming both identities).
absl::Status CheckDataDirIdentity(const std::string& data_dir, uint64_t cluster_id,
                                  uint64_t member_id, const std::string& name);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_SERVER_H_
