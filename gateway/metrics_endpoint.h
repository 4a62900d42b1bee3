// /metrics (Prometheus text format 0.0.4), /health (byte for byte as etcd 3.4 answers it),
// /livez and /readyz (as etcd 3.5 documents them), for the metrics listener and, once the
// client port speaks HTTP/1.1, for the client URLs too: Handle() is a plain function of the
// request.
//
// What the answers mean, and how geoetcd's regions map onto etcd's leader, is in README.md
// ("Metrics and health") and docs/operations.md.
#ifndef GEOETCD_GATEWAY_METRICS_ENDPOINT_H_
#define GEOETCD_GATEWAY_METRICS_ENDPOINT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gateway/http_server.h"
#include "gateway/metrics.h"

namespace geoetcd {

class AsioExecutor;
class GrpcPeerTransport;
class Node;
class RpcMetrics;
class Storage;

// etcd_network_peer_round_trip_time_seconds, one histogram per other region (etcd's
// buckets: 0.1 ms doubling 14 times). Observe() from any thread.
class PeerRttMetrics {
 public:
  explicit PeerRttMetrics(const std::vector<uint64_t>& peer_ids);
  void Observe(uint64_t member_id, int64_t rtt_us);
  void Render(MetricsWriter* out) const;

 private:
  std::map<uint64_t, std::unique_ptr<Histogram>> by_peer_;  // fixed at construction
};

// etcd's bucket bounds.
std::vector<double> WalFsyncBuckets();     // 1 ms doubling, 14 bounds (to 8.192 s)
std::vector<double> GroupCommitBuckets();  // 1, 2, 4, ... 8192 entries

// What the endpoint reads. Not owned; each must outlive the endpoint. `transport` is null
// with one region.
struct MetricsSources {
  Node* node = nullptr;
  AsioExecutor* executor = nullptr;
  const Storage* storage = nullptr;
  const GrpcPeerTransport* transport = nullptr;
  const RpcMetrics* rpc = nullptr;
  const Histogram* wal_fsync_seconds = nullptr;
  const PeerRttMetrics* peer_rtt = nullptr;
  std::map<uint64_t, std::string> region_names;  // member id -> --initial-cluster name
  // How long /health and /readyz wait for their linearizable read.
  int64_t read_timeout_ms = 1000;
};

class MetricsEndpoint {
 public:
  explicit MetricsEndpoint(MetricsSources sources) : s_(std::move(sources)) {}

  // Any thread, concurrently. Paths: /metrics (any method), /health, /livez, /readyz (GET
  // only: 405 otherwise, as etcd); anything else is 404 "404 page not found".
  HttpResponse Handle(const HttpRequest& request) const;

  std::string RenderMetrics() const;

 private:
  HttpResponse Health(const HttpRequest& request) const;
  // /livez or /readyz: `checks` in order.
  HttpResponse Probe(const HttpRequest& request, const std::string& name,
                     const std::vector<std::string>& checks) const;
  // A check by name: empty when it passes, else why not.
  std::string RunCheck(const std::string& check) const;
  // Whether the account `default` has a reachable write region (etcd: "has a leader").
  bool HasLeader() const;
  // A linearizable (or serializable) Range of the key "health" in the account `default`.
  std::string ReadProbe(bool linearizable) const;

  const MetricsSources s_;
  // etcd_server_health_success / _failures: /health answers given.
  mutable std::atomic<uint64_t> health_success_{0};
  mutable std::atomic<uint64_t> health_failures_{0};
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_METRICS_ENDPOINT_H_
