#include "gateway/metrics_endpoint.h"

#include <chrono>
#include <future>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/node.h"
#include "gateway/peer_transport.h"
#include "gateway/rpc_metrics.h"
#include "gateway/system_ports.h"

namespace geoetcd {
namespace {

using Type = MetricsWriter::Type;

constexpr const char* kTextPlain = "text/plain; charset=utf-8";

// Go's http.Error: the message and a newline, text/plain, nosniff.
HttpResponse GoHttpError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.content_type = kTextPlain;
  r.body = message + "\n";
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  return r;
}

HttpResponse MethodNotAllowed() {
  HttpResponse r = GoHttpError(405, "Method Not Allowed");
  r.headers.push_back({"Allow", "GET"});
  return r;
}

// Every value of a query parameter, split at commas too ("?exclude=a,b&exclude=c").
std::set<std::string> QueryList(const HttpRequest& request, const std::string& name) {
  std::set<std::string> values;
  auto [begin, end] = request.query.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    for (absl::string_view v : absl::StrSplit(it->second, ',', absl::SkipEmpty())) {
      values.insert(std::string(v));
    }
  }
  return values;
}

bool QueryFlag(const HttpRequest& request, const std::string& name) {
  auto it = request.query.find(name);
  return it != request.query.end() &&
         (it->second.empty() || it->second == "true" || it->second == "1");
}

std::string AlarmName(etcdserverpb::AlarmType type) {
  switch (type) {
    case etcdserverpb::NOSPACE:
      return "NOSPACE";
    case etcdserverpb::CORRUPT:
      return "CORRUPT";
    default:
      return "NONE";
  }
}

// Everything /metrics reports from the Node, copied under the state lock.
struct NodeView {
  uint64_t member_id = 0;
  uint64_t default_write_region = 0;
  std::vector<AccountStats> accounts;
  PeerStats peers;
  GroupCommitStats group_commit;
};

}  // namespace

std::vector<double> WalFsyncBuckets() { return ExponentialBuckets(0.001, 2, 14); }

std::vector<double> GroupCommitBuckets() {
  return ExponentialBuckets(1, 2, GroupCommitStats::kBuckets);
}

PeerRttMetrics::PeerRttMetrics(const std::vector<uint64_t>& peer_ids) {
  for (uint64_t id : peer_ids) {
    by_peer_[id] = std::make_unique<Histogram>(ExponentialBuckets(0.0001, 2, 14));
  }
}

void PeerRttMetrics::Observe(uint64_t member_id, int64_t rtt_us) {
  auto it = by_peer_.find(member_id);
  if (it != by_peer_.end()) it->second->Observe(static_cast<double>(rtt_us) / 1e6);
}

void PeerRttMetrics::Render(MetricsWriter* out) const {
  out->Family("etcd_network_peer_round_trip_time_seconds",
              "Round-trip-time histogram between peers (the peer transport's pings).",
              Type::kHistogram);
  for (const auto& [id, h] : by_peer_) {
    out->HistogramSample({{"To", absl::StrFormat("%x", id)}}, h->Snapshot());
  }
}

HttpResponse MetricsEndpoint::Handle(const HttpRequest& request) const {
  if (request.path == "/metrics") {
    HttpResponse r;
    r.content_type = kMetricsContentType;
    r.body = RenderMetrics();
    return r;
  }
  if (request.path == "/health") return Health(request);
  if (request.path == "/livez") return Probe(request, "livez", {"serializable_read"});
  if (request.path == "/readyz") {
    return Probe(request, "readyz", {"data_corruption", "serializable_read", "linearizable_read"});
  }
  return GoHttpError(404, "404 page not found");
}

bool MetricsEndpoint::HasLeader() const {
  uint64_t self, write_region;
  bool failed;
  {
    absl::ReaderMutexLock lock(&s_.executor->state_mutex());
    self = s_.node->member_id();
    write_region = s_.node->write_region(Node::kDefaultAccount);
    failed = s_.node->failed();
  }
  if (failed || write_region == 0) return false;
  if (write_region == self) return true;
  if (s_.transport == nullptr) return false;
  for (const PeerStatus& peer : s_.transport->Peers()) {
    if (peer.member_id == write_region) return peer.connected;
  }
  return false;
}

std::string MetricsEndpoint::ReadProbe(bool linearizable) const {
  etcdserverpb::RangeRequest req;
  req.set_key("health");
  req.set_keys_only(true);
  req.set_limit(1);
  req.set_serializable(!linearizable);
  const RequestContext rc;
  {
    absl::ReaderMutexLock lock(&s_.executor->state_mutex());
    if (s_.node->failed()) return "the region stopped after a storage failure";
    if (s_.node->ReadsInPlace(rc, req)) {
      auto r = s_.node->ReadRange(rc, req);
      return r.ok() ? "" : std::string(r.status().message());
    }
  }
  // Away from the write region a linearizable read needs W's read index: it fails or times
  // out when W is unreachable. The reply may come after we stopped waiting; it owns its
  // promise.
  auto done = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> result = done->get_future();
  {
    absl::MutexLock lock(&s_.executor->state_mutex());
    s_.node->Range(rc, req, [done](absl::StatusOr<etcdserverpb::RangeResponse> r) {
      done->set_value(r.status());
    });
  }
  if (result.wait_for(std::chrono::milliseconds(s_.read_timeout_ms)) != std::future_status::ready) {
    return "linearizable read timed out";
  }
  const absl::Status status = result.get();
  return status.ok() ? "" : std::string(status.message());
}

// etcd 3.4's /health, byte for byte: 200 {"health":"true"}, or 503 {"health":"false"} when
// an alarm is raised, there is no leader (no reachable write region), or a linearizable read
// fails. `exclude` (alarm names) and `serializable` (skip the leader check and read locally)
// are etcd 3.5's parameters.
HttpResponse MetricsEndpoint::Health(const HttpRequest& request) const {
  if (request.method != "GET") return MethodNotAllowed();
  const std::set<std::string> excluded = QueryList(request, "exclude");
  const bool serializable = QueryFlag(request, "serializable");
  std::vector<etcdserverpb::AlarmMember> alarms;
  {
    absl::ReaderMutexLock lock(&s_.executor->state_mutex());
    alarms = s_.node->alarms(Node::kDefaultAccount);
  }
  const HttpResponse unhealthy = GoHttpError(503, "{\"health\":\"false\"}");
  for (const auto& alarm : alarms) {
    // As etcd 3.4, an alarm answers before the health counters are touched.
    if (excluded.count(AlarmName(alarm.alarm())) == 0) return unhealthy;
  }
  const bool healthy =
      (serializable || HasLeader()) && ReadProbe(/*linearizable=*/!serializable).empty();
  (healthy ? health_success_ : health_failures_).fetch_add(1, std::memory_order_relaxed);
  if (!healthy) return unhealthy;
  HttpResponse r;
  r.content_type = kTextPlain;
  r.body = "{\"health\":\"true\"}";
  return r;
}

std::string MetricsEndpoint::RunCheck(const std::string& check) const {
  if (check == "serializable_read") return ReadProbe(/*linearizable=*/false);
  if (check == "linearizable_read") return ReadProbe(/*linearizable=*/true);
  if (check == "data_corruption") {
    absl::ReaderMutexLock lock(&s_.executor->state_mutex());
    for (const auto& alarm : s_.node->alarms(Node::kDefaultAccount)) {
      if (alarm.alarm() == etcdserverpb::CORRUPT) return "alarm CORRUPT raised";
    }
    return "";
  }
  return "unknown check";
}

// etcd 3.5's /livez and /readyz (k8s style): 200 "ok" when every check not excluded passes;
// `verbose` lists each check as "[+]name ok"; a failure is 503 and lists every check with
// "[-]name failed: reason", then "<probe> check failed".
HttpResponse MetricsEndpoint::Probe(const HttpRequest& request, const std::string& name,
                                    const std::vector<std::string>& checks) const {
  if (request.method != "GET") return MethodNotAllowed();
  const std::set<std::string> excluded = QueryList(request, "exclude");
  const bool verbose = request.query.count("verbose") > 0;
  std::string lines;
  bool failed = false;
  for (const std::string& check : checks) {
    if (excluded.count(check) > 0) {
      absl::StrAppend(&lines, "[+]", check, " excluded: ok\n");
      continue;
    }
    const std::string reason = RunCheck(check);
    if (reason.empty()) {
      absl::StrAppend(&lines, "[+]", check, " ok\n");
    } else {
      failed = true;
      absl::StrAppend(&lines, "[-]", check, " failed: ", reason, "\n");
    }
  }
  if (failed) return GoHttpError(503, absl::StrCat(lines, name, " check failed"));
  HttpResponse r;
  r.content_type = kTextPlain;
  r.body = verbose ? absl::StrCat(lines, "ok\n") : "ok\n";
  return r;
}

std::string MetricsEndpoint::RenderMetrics() const {
  NodeView v;
  {
    absl::ReaderMutexLock lock(&s_.executor->state_mutex());
    v.member_id = s_.node->member_id();
    v.default_write_region = s_.node->write_region(Node::kDefaultAccount);
    v.accounts = s_.node->account_stats();
    v.peers = s_.node->peer_stats();
    v.group_commit = s_.node->group_commit_stats();
  }
  const bool has_leader = HasLeader();
  auto region = [this](uint64_t id) {
    auto it = s_.region_names.find(id);
    return it != s_.region_names.end() ? it->second : absl::StrFormat("%x", id);
  };
  uint64_t committed = 0, applied = 0;
  int64_t keys = 0;
  for (const AccountStats& a : v.accounts) {
    committed += a.durable_index;
    applied += a.applied_index;
    keys += a.live_keys;
  }

  MetricsWriter w;
  w.Family("etcd_server_has_leader",
           "Whether the account default has a reachable write region (etcd: a leader). 1 is "
           "existence, 0 is not.",
           Type::kGauge);
  w.Sample({}, has_leader ? 1 : 0);
  w.Family("etcd_server_is_leader",
           "Whether this region is the write region of the account default (etcd: the "
           "leader). 1 if is, 0 otherwise.",
           Type::kGauge);
  w.Sample({}, v.default_write_region == v.member_id ? 1 : 0);
  w.Family("etcd_server_proposals_committed_total",
           "Log entries this region holds durably, summed over accounts.", Type::kGauge);
  w.Sample({}, static_cast<double>(committed));
  w.Family("etcd_server_proposals_applied_total",
           "Log entries this region has applied, summed over accounts.", Type::kGauge);
  w.Sample({}, static_cast<double>(applied));
  w.Family("etcd_mvcc_db_total_size_in_bytes",
           "Total size of the underlying database (RocksDB SST files and memtables) in bytes.",
           Type::kGauge);
  w.Sample({}, static_cast<double>(s_.storage->ApproximateSizeBytes()));
  w.Family("etcd_debugging_mvcc_keys_total", "Total number of live keys, summed over accounts.",
           Type::kGauge);
  w.Sample({}, static_cast<double>(keys));
  w.Family("etcd_server_health_failures", "The total number of failed /health checks.",
           Type::kCounter);
  w.Sample({}, static_cast<double>(health_failures_.load(std::memory_order_relaxed)));
  w.Family("etcd_server_health_success", "The total number of successful /health checks.",
           Type::kCounter);
  w.Sample({}, static_cast<double>(health_success_.load(std::memory_order_relaxed)));
  w.Family("etcd_disk_wal_fsync_duration_seconds",
           "The latency distributions of synced storage writes (RocksDB WAL write and fsync).",
           Type::kHistogram);
  w.HistogramSample({}, s_.wal_fsync_seconds->Snapshot());
  s_.rpc->Render(&w);
  if (s_.peer_rtt != nullptr) s_.peer_rtt->Render(&w);

  w.Family("geoetcd_account_revision", "The account's newest revision at this region.",
           Type::kGauge);
  for (const AccountStats& a : v.accounts) {
    w.Sample({{"account", a.name}}, static_cast<double>(a.revision));
  }
  w.Family("geoetcd_account_write_region_info",
           "1 for the account's write region (label write_region) as this region sees it.",
           Type::kGauge);
  for (const AccountStats& a : v.accounts) {
    w.Sample({{"account", a.name}, {"write_region", region(a.write_region)}}, 1);
  }
  w.Family("geoetcd_replication_lag_revisions",
           "Log entries (one per revision for key writes) a region lacks of what the write "
           "region made durable. The write region reports every other region; any other "
           "region reports itself.",
           Type::kGauge);
  for (const AccountStats& a : v.accounts) {
    for (const auto& [id, lag] : a.lag_entries) {
      w.Sample({{"account", a.name}, {"region", region(id)}}, static_cast<double>(lag));
    }
  }
  w.Family("geoetcd_replication_lag_seconds",
           "At the write region, per other region: the age of the oldest log entry it lacks "
           "(0 when it lacks none).",
           Type::kGauge);
  for (const AccountStats& a : v.accounts) {
    for (const auto& [id, lag_ms] : a.lag_ms) {
      w.Sample({{"account", a.name}, {"region", region(id)}}, static_cast<double>(lag_ms) / 1e3);
    }
  }
  w.Family("geoetcd_forwarded_requests_total",
           "Requests this region forwarded to a write region elsewhere.", Type::kCounter);
  w.Sample({}, static_cast<double>(v.peers.forwards_sent));
  w.Family("geoetcd_forwards_executed_total",
           "Forwarded requests this region executed as the write region.", Type::kCounter);
  w.Sample({}, static_cast<double>(v.peers.forwards_executed));
  w.Family("geoetcd_forward_timeouts_total",
           "Forwarded requests that got no answer from the write region in time.", Type::kCounter);
  w.Sample({}, static_cast<double>(v.peers.forward_timeouts));
  w.Family("geoetcd_antientropy_bytes_total",
           "Bytes of anti-entropy messages sent (digests, pulls and the entries answering "
           "them, Merkle repair requests and replies).",
           Type::kCounter);
  w.Sample({}, static_cast<double>(v.peers.antientropy_bytes_sent));
  w.Family("geoetcd_merkle_repairs_total",
           "Merkle repairs of this region's state from a peer's, by how they ended so far.",
           Type::kCounter);
  w.Sample({{"result", "started"}}, static_cast<double>(v.peers.repairs_started));
  w.Sample({{"result", "completed"}}, static_cast<double>(v.peers.repairs_completed));
  w.Sample({{"result", "abandoned"}}, static_cast<double>(v.peers.repairs_abandoned));
  w.Family("geoetcd_digests_diverged_total",
           "Digests from a region at the same log index whose register tree differs.",
           Type::kCounter);
  w.Sample({}, static_cast<double>(v.peers.digests_diverged));
  w.Family("geoetcd_group_commit_size", "Log entries per storage write (group commit).",
           Type::kHistogram);
  {
    HistogramSnapshot h;
    h.bounds = GroupCommitBuckets();
    uint64_t running = 0;
    for (int i = 0; i < GroupCommitStats::kBuckets; ++i) {
      running += v.group_commit.buckets[static_cast<size_t>(i)];
      h.cumulative.push_back(running);
    }
    h.count = v.group_commit.writes;
    h.sum = static_cast<double>(v.group_commit.entries);
    w.HistogramSample({}, h);
  }
  if (s_.transport != nullptr) {
    w.Family("geoetcd_peer_connected",
             "1 while this region's stream to the region is up (hellos exchanged).", Type::kGauge);
    for (const PeerStatus& p : s_.transport->Peers()) {
      w.Sample({{"region", p.name}}, p.connected ? 1 : 0);
    }
  }
  return w.text();
}

}  // namespace geoetcd
