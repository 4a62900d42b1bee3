#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "gateway/config.h"
#include "gateway/config_internal.h"

// The flag tables: etcd's server flags that mean something to geoetcd (with their setters
// and --help text), the ones accepted only for compatibility, and --help built from both.
namespace geoetcd {
namespace config_internal {
namespace {

constexpr int kHelpColumns = 100;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

absl::string_view StripTrailingSpace(absl::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Scalars in Go's spelling.

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return StripTrailingSpace(s);
}

std::optional<bool> ParseGoBool(absl::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") {
    return false;
  }
  return std::nullopt;
}

absl::Status ParseCount(absl::string_view s, int64_t* out) {
  absl::string_view digits = s;
  absl::ConsumePrefix(&digits, "+");
  if (absl::StartsWith(s, "-") && AllDigits(s.substr(1))) {
    return absl::InvalidArgumentError("must not be negative");
  }
  if (!AllDigits(digits)) return absl::InvalidArgumentError("not a number");
  if (!absl::SimpleAtoi(digits, out)) return absl::InvalidArgumentError("out of range");
  return absl::OkStatus();
}

namespace {

// ---------------------------------------------------------------------------------------
// The tables.

template <std::string ServerConfig::*field>
absl::Status SetString(absl::string_view value, ServerConfig* config) {
  config->*field = std::string(value);
  return absl::OkStatus();
}

template <std::vector<std::string> ServerConfig::*field>
absl::Status SetUrls(absl::string_view value, ServerConfig* config) {
  absl::StatusOr<std::vector<std::string>> urls = ParseUrlList(std::string(value));
  if (!urls.ok()) return urls.status();
  config->*field = *std::move(urls);
  return absl::OkStatus();
}

template <int64_t ServerConfig::*field>
absl::Status SetCount(absl::string_view value, ServerConfig* config) {
  return ParseCount(value, &(config->*field));
}

// etcd: a negative --quota-backend-bytes disables the space quota.
absl::Status SetQuotaBackendBytes(absl::string_view value, ServerConfig* config) {
  const bool negative = absl::ConsumePrefix(&value, "-");
  if (auto s = ParseCount(value, &config->quota_backend_bytes); !s.ok()) return s;
  if (negative) config->quota_backend_bytes = -config->quota_backend_bytes;
  return absl::OkStatus();
}

template <int64_t ServerConfig::*field>
absl::Status SetDurationMs(absl::string_view value, ServerConfig* config) {
  absl::StatusOr<int64_t> ms = ParseGoDurationMs(std::string(value));
  if (!ms.ok()) return ms.status();
  if (*ms < 0) return absl::InvalidArgumentError("must not be negative");
  config->*field = *ms;
  return absl::OkStatus();
}

absl::Status SetOneOf(absl::string_view value, std::initializer_list<const char*> allowed,
                      std::string* field) {
  for (const char* candidate : allowed) {
    if (value == candidate) {
      *field = std::string(value);
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("must be one of ", absl::StrJoin(allowed, ", ")));
}

absl::Status SetClusterState(absl::string_view value, ServerConfig* config) {
  return SetOneOf(value, {"new", "existing"}, &config->initial_cluster_state);
}

absl::Status SetCompactionMode(absl::string_view value, ServerConfig* config) {
  if (value.empty()) value = "periodic";  // etcd treats an empty mode as the default.
  return SetOneOf(value, {"periodic", "revision"}, &config->auto_compaction_mode);
}

absl::Status SetClientTransport(absl::string_view value, ServerConfig* config) {
  return SetOneOf(value, {"native", "grpc"}, &config->client_transport);
}

absl::Status SetWriteQuorum(absl::string_view value, ServerConfig* config) {
  return SetOneOf(value, {"local", "majority", "all"}, &config->write_quorum);
}

absl::Status SetLogLevel(absl::string_view value, ServerConfig* config) {
  return SetOneOf(value, {"debug", "info", "warn", "error", "dpanic", "panic", "fatal"},
                  &config->log_level);
}

constexpr char kMember[] = "Member";
constexpr char kClustering[] = "Clustering";
constexpr char kLogging[] = "Logging";
constexpr char kExperimental[] = "Experimental";
constexpr char kGeoetcd[] = "geoetcd";

const Flag kFlags[] = {
    {"name", ValueKind::kString, &SetString<&ServerConfig::name>, kMember, "default",
     "Human-readable name for this member."},
    {"data-dir", ValueKind::kString, &SetString<&ServerConfig::data_dir>, kMember,
     "${name}.geoetcd", "Path to the data directory."},
    {"listen-peer-urls", ValueKind::kUrls, &SetUrls<&ServerConfig::listen_peer_urls>, kMember,
     "http://localhost:2380", "List of URLs to listen on for peer traffic."},
    {"listen-client-urls", ValueKind::kUrls, &SetUrls<&ServerConfig::listen_client_urls>, kMember,
     "http://localhost:2379",
     "List of URLs to listen on for client gRPC traffic. When set, --advertise-client-urls\n"
     "    must be set too."},
    {"listen-metrics-urls", ValueKind::kUrls, &SetUrls<&ServerConfig::listen_metrics_urls>,
     kMember, "",
     "List of additional URLs to listen on that respond to the /metrics, /health, /livez and\n"
     "    /readyz endpoints (http:// only)."},
    {"max-request-bytes", ValueKind::kCount, &SetCount<&ServerConfig::max_request_bytes>, kMember,
     "1572864", "Maximum client request size in bytes the server will accept (at most 67108864)."},
    {"max-txn-ops", ValueKind::kCount, &SetCount<&ServerConfig::max_txn_ops>, kMember, "128",
     "Maximum number of operations permitted in a transaction (at most 1000000)."},
    {"quota-backend-bytes", ValueKind::kCount, &SetQuotaBackendBytes, kMember, "0",
     "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB; negative\n"
     "    disables it; more than 8 GiB is accepted with a warning)."},
    {"initial-advertise-peer-urls", ValueKind::kUrls,
     &SetUrls<&ServerConfig::initial_advertise_peer_urls>, kClustering, "http://localhost:2380",
     "List of this member's peer URLs to advertise to the rest of the cluster."},
    {"initial-cluster", ValueKind::kString, &SetString<&ServerConfig::initial_cluster>, kClustering,
     "default=http://localhost:2380",
     "Initial cluster configuration for bootstrapping. Defaults to\n"
     "    ${name}=${initial-advertise-peer-urls}; must name this member."},
    {"initial-cluster-state", ValueKind::kEnum, &SetClusterState, kClustering, "new",
     "Initial cluster state ('new' when bootstrapping a new cluster or 'existing' when adding\n"
     "    new members to an existing cluster)."},
    {"initial-cluster-token", ValueKind::kString, &SetString<&ServerConfig::initial_cluster_token>,
     kClustering, "etcd-cluster", "Initial cluster token for the cluster during bootstrap."},
    {"advertise-client-urls", ValueKind::kUrls, &SetUrls<&ServerConfig::advertise_client_urls>,
     kClustering, "http://localhost:2379",
     "List of this member's client URLs to advertise to the public."},
    {"auto-compaction-retention", ValueKind::kString,
     &SetString<&ServerConfig::auto_compaction_retention>, kClustering, "0",
     "Auto compaction retention length. 0 means disable auto compaction."},
    {"auto-compaction-mode", ValueKind::kEnum, &SetCompactionMode, kClustering, "periodic",
     "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration\n"
     "    based retention, defaulting to hours if no time unit is provided (e.g. '5m').\n"
     "    'revision' for revision number based retention."},
    {"log-level", ValueKind::kEnum, &SetLogLevel, kLogging, "info",
     "Configures log level. Only supports debug, info, warn, error, panic, or fatal."},
    {"experimental-watch-progress-notify-interval", ValueKind::kDuration,
     &SetDurationMs<&ServerConfig::watch_progress_notify_interval_ms>, kExperimental, "10m",
     "Duration of periodic watch progress notifications (0 means the default)."},
    {"watch-progress-notify-interval", ValueKind::kDuration,
     &SetDurationMs<&ServerConfig::watch_progress_notify_interval_ms>, kExperimental, "10m",
     "etcd 3.6 spelling of --experimental-watch-progress-notify-interval."},
    {"group-commit-max-ops", ValueKind::kCount, &SetCount<&ServerConfig::group_commit_batch_max>,
     kGeoetcd, "4096", "Most write operations grouped into one storage commit (1 to 1048576)."},
    {"client-transport", ValueKind::kEnum, &SetClientTransport, kGeoetcd, "native",
     "How client gRPC is served: 'native' (geoetcd's own HTTP/2 transport, the fast path)\n"
     "    or 'grpc' (gRPC C++'s server for everything)."},
    {"write-region", ValueKind::kString, &SetString<&ServerConfig::write_region>, kGeoetcd,
     "first member of --initial-cluster",
     "Member name of the write region of the account 'default': every mutation is\n"
     "    sequenced there (README, Regions)."},
    {"write-quorum", ValueKind::kEnum, &SetWriteQuorum, kGeoetcd, "majority",
     "When the write region acknowledges a write of the account 'default': once durable\n"
     "    there ('local'), at a majority of the regions, or at 'all' of them."},
    {"forward-timeout", ValueKind::kDuration, &SetDurationMs<&ServerConfig::forward_timeout_ms>,
     kGeoetcd, "5s",
     "How long a region waits for the write region to answer a forwarded request before\n"
     "    the client gets 'request timed out' (100ms to 10m)."},
    {"peer-dial-urls", ValueKind::kString, &SetString<&ServerConfig::peer_dial_urls>, kGeoetcd, "",
     "Comma-separated name=url: dial these members there (a proxy or NAT address)\n"
     "    instead of at their --initial-cluster peer URLs."},
    {"gossip-interval", ValueKind::kDuration, &SetDurationMs<&ServerConfig::gossip_interval_ms>,
     kGeoetcd, "1s", "How often a region gossips an anti-entropy digest (10ms to 10m)."},
    {"experimental-snapshot-catchup-entries", ValueKind::kCount,
     &SetCount<&ServerConfig::log_catchup_entries>, kExperimental, "5000",
     "Log entries the write region keeps past a compaction for a region that lags; one\n"
     "    further behind catches up by Merkle repair (1 to 100000000)."},
};

const IgnoredFlag kIgnoredFlags[] = {
    // Member: raft, WAL and bbolt tuning.
    {"wal-dir", IgnoredKind::kValue, ""},
    {"snapshot-count", IgnoredKind::kValue, ""},
    {"heartbeat-interval", IgnoredKind::kValue, ""},
    {"election-timeout", IgnoredKind::kValue, ""},
    {"initial-election-tick-advance", IgnoredKind::kBool, ""},
    {"listen-client-http-urls", IgnoredKind::kValue, ""},
    {"max-snapshots", IgnoredKind::kValue, ""},
    {"max-wals", IgnoredKind::kValue, ""},
    {"backend-bbolt-freelist-type", IgnoredKind::kValue, ""},
    {"experimental-backend-bbolt-freelist-type", IgnoredKind::kValue, ""},
    {"backend-batch-interval", IgnoredKind::kValue, ""},
    {"backend-batch-limit", IgnoredKind::kValue, ""},
    {"max-concurrent-streams", IgnoredKind::kValue, ""},
    {"enable-grpc-gateway", IgnoredKind::kBool, ""},
    {"grpc-keepalive-min-time", IgnoredKind::kValue, ""},
    {"grpc-keepalive-interval", IgnoredKind::kValue, ""},
    {"grpc-keepalive-timeout", IgnoredKind::kValue, ""},
    {"socket-reuse-port", IgnoredKind::kBool, ""},
    {"socket-reuse-address", IgnoredKind::kBool, ""},
    {"raft-read-timeout", IgnoredKind::kValue, ""},
    {"raft-write-timeout", IgnoredKind::kValue, ""},
    // Clustering: discovery, raft options, v2.
    {"discovery", IgnoredKind::kValue, ""},
    {"discovery-fallback", IgnoredKind::kValue, ""},
    {"discovery-proxy", IgnoredKind::kValue, ""},
    {"discovery-srv", IgnoredKind::kValue, ""},
    {"discovery-srv-name", IgnoredKind::kValue, ""},
    {"strict-reconfig-check", IgnoredKind::kBool, ""},
    {"pre-vote", IgnoredKind::kBool, ""},
    {"enable-v2", IgnoredKind::kBool, ""},
    {"v2-deprecation", IgnoredKind::kValue, ""},
    {"experimental-enable-v2v3", IgnoredKind::kValue, ""},
    // Security.
    {"cert-file", IgnoredKind::kValue, kNoTls},
    {"key-file", IgnoredKind::kValue, kNoTls},
    {"client-cert-auth", IgnoredKind::kBool, kNoTls},
    {"client-cert-file", IgnoredKind::kValue, kNoTls},
    {"client-key-file", IgnoredKind::kValue, kNoTls},
    {"client-crl-file", IgnoredKind::kValue, kNoTls},
    {"client-cert-allowed-hostname", IgnoredKind::kValue, kNoTls},
    {"trusted-ca-file", IgnoredKind::kValue, kNoTls},
    {"auto-tls", IgnoredKind::kBool, kNoTls},
    {"peer-cert-file", IgnoredKind::kValue, kNoTls},
    {"peer-key-file", IgnoredKind::kValue, kNoTls},
    {"peer-client-cert-auth", IgnoredKind::kBool, kNoTls},
    {"peer-trusted-ca-file", IgnoredKind::kValue, kNoTls},
    {"peer-cert-allowed-cn", IgnoredKind::kValue, kNoTls},
    {"peer-cert-allowed-hostname", IgnoredKind::kValue, kNoTls},
    {"peer-auto-tls", IgnoredKind::kBool, kNoTls},
    {"peer-client-cert-file", IgnoredKind::kValue, kNoTls},
    {"peer-client-key-file", IgnoredKind::kValue, kNoTls},
    {"self-signed-cert-validity", IgnoredKind::kValue, kNoTls},
    {"peer-crl-file", IgnoredKind::kValue, kNoTls},
    {"cipher-suites", IgnoredKind::kValue, kNoTls},
    {"tls-min-version", IgnoredKind::kValue, kNoTls},
    {"tls-max-version", IgnoredKind::kValue, kNoTls},
    {"experimental-peer-skip-client-san-verification", IgnoredKind::kBool, kNoTls},
    {"cors", IgnoredKind::kValue, ""},
    {"host-whitelist", IgnoredKind::kValue, ""},
    // Auth.
    {"auth-token", IgnoredKind::kValue, ""},
    {"bcrypt-cost", IgnoredKind::kValue, ""},
    {"auth-token-ttl", IgnoredKind::kValue, ""},
    // Profiling and monitoring.
    {"enable-pprof", IgnoredKind::kBool, ""},
    {"metrics", IgnoredKind::kValue, ""},
    // Logging (log-output, log-package-levels and debug are etcd 3.4; log-format is 3.6).
    {"logger", IgnoredKind::kValue, ""},
    {"log-outputs", IgnoredKind::kValue, ""},
    {"log-output", IgnoredKind::kValue, ""},
    {"log-package-levels", IgnoredKind::kValue, ""},
    {"log-format", IgnoredKind::kValue, ""},
    {"debug", IgnoredKind::kBool, ""},
    {"enable-log-rotation", IgnoredKind::kBool, ""},
    {"log-rotation-config-json", IgnoredKind::kValue, ""},
    // Distributed tracing.
    {"experimental-enable-distributed-tracing", IgnoredKind::kBool, ""},
    {"experimental-distributed-tracing-address", IgnoredKind::kValue, ""},
    {"experimental-distributed-tracing-service-name", IgnoredKind::kValue, ""},
    {"experimental-distributed-tracing-instance-id", IgnoredKind::kValue, ""},
    {"experimental-distributed-tracing-sampling-rate", IgnoredKind::kValue, ""},
    // v2 proxy.
    {"proxy", IgnoredKind::kValue, ""},
    {"proxy-failure-wait", IgnoredKind::kValue, ""},
    {"proxy-refresh-interval", IgnoredKind::kValue, ""},
    {"proxy-dial-timeout", IgnoredKind::kValue, ""},
    {"proxy-write-timeout", IgnoredKind::kValue, ""},
    {"proxy-read-timeout", IgnoredKind::kValue, ""},
    // Experimental features.
    {"experimental-initial-corrupt-check", IgnoredKind::kBool, ""},
    {"experimental-corrupt-check-time", IgnoredKind::kValue, ""},
    {"experimental-compact-hash-check-enabled", IgnoredKind::kBool, ""},
    {"experimental-compact-hash-check-time", IgnoredKind::kValue, ""},
    {"experimental-enable-lease-checkpoint", IgnoredKind::kBool, ""},
    {"experimental-enable-lease-checkpoint-persist", IgnoredKind::kBool, ""},
    {"experimental-compaction-batch-limit", IgnoredKind::kValue, ""},
    {"experimental-compaction-sleep-interval", IgnoredKind::kValue, ""},
    {"experimental-downgrade-check-time", IgnoredKind::kValue, ""},
    {"experimental-memory-mlock", IgnoredKind::kBool, ""},
    {"experimental-warning-apply-duration", IgnoredKind::kValue, ""},
    {"experimental-warning-unary-request-duration", IgnoredKind::kValue, ""},
    {"experimental-txn-mode-write-with-shared-buffer", IgnoredKind::kBool, ""},
    {"experimental-bootstrap-defrag-threshold-megabytes", IgnoredKind::kValue, ""},
    {"experimental-stop-grpc-service-on-defrag", IgnoredKind::kBool, ""},
    {"experimental-max-learners", IgnoredKind::kValue, ""},
    {"experimental-wait-cluster-ready-timeout", IgnoredKind::kValue, ""},
    // Unsafe features.
    {"force-new-cluster", IgnoredKind::kBool, "geoetcd has no raft membership to reset"},
    {"unsafe-no-fsync", IgnoredKind::kBool, "geoetcd always fsyncs"},
    // Flags etcd itself has ignored since v2.
    {"cluster-active-size", IgnoredKind::kLegacy, ""},
    {"cluster-remove-delay", IgnoredKind::kLegacy, ""},
    {"cluster-sync-interval", IgnoredKind::kLegacy, ""},
    {"config", IgnoredKind::kLegacy, ""},
    {"force", IgnoredKind::kLegacy, ""},
    {"max-result-buffer", IgnoredKind::kLegacy, ""},
    {"max-retry-attempts", IgnoredKind::kLegacy, ""},
    {"peer-heartbeat-interval", IgnoredKind::kLegacy, ""},
    {"peer-election-timeout", IgnoredKind::kLegacy, ""},
    {"retry-interval", IgnoredKind::kLegacy, ""},
    {"snapshot", IgnoredKind::kLegacy, ""},
    {"v", IgnoredKind::kLegacy, ""},
    {"vv", IgnoredKind::kLegacy, ""},
};

void AppendWrapped(const std::vector<std::string>& words, std::string* out) {
  std::string line = "  ";
  for (size_t i = 0; i < words.size(); ++i) {
    std::string word = words[i] + (i + 1 < words.size() ? "," : "");
    if (line.size() > 2 && line.size() + 1 + word.size() > kHelpColumns) {
      absl::StrAppend(out, line, "\n");
      line = "  ";
    }
    absl::StrAppend(&line, line.size() > 2 ? " " : "", word);
  }
  absl::StrAppend(out, line, "\n");
}

}  // namespace

FlagRef LookupFlag(absl::string_view name) {
  FlagRef ref;
  for (const Flag& flag : kFlags) {
    if (name == flag.name) ref.flag = &flag;
  }
  for (const IgnoredFlag& ignored : kIgnoredFlags) {
    if (name == ignored.name) ref.ignored = &ignored;
  }
  return ref;
}

std::string FlagToEnv(absl::string_view name) {
  std::string env = absl::StrCat(kEnvPrefix, name);
  for (char& c : env) c = (c == '-') ? '_' : absl::ascii_toupper(c);
  return env;
}

}  // namespace config_internal

std::string HelpText() {
  using config_internal::AppendWrapped;
  using config_internal::Flag;
  using config_internal::IgnoredFlag;
  using config_internal::kFlags;
  using config_internal::kIgnoredFlags;
  std::string out =
      "Usage:\n"
      "\n"
      "  geoetcd [flags]\n"
      "    Start a geoetcd server. Flags are etcd's: --flag value, --flag=value and -flag\n"
      "    all work, and each flag can also be set as ETCD_<FLAG> (e.g. ETCD_DATA_DIR) when\n"
      "    it is not given on the command line.\n"
      "\n"
      "  geoetcd --version\n"
      "    Show the version of geoetcd.\n"
      "\n"
      "  geoetcd -h | --help\n"
      "    Show this help.\n"
      "\n"
      "  geoetcd snapshot restore <file> --data-dir <dir>\n"
      "  geoetcd snapshot status <file>\n"
      "    Restore a snapshot taken from geoetcd (etcdctl snapshot save) into a new data dir,\n"
      "    or verify one. The format is geoetcd's own, not etcd's bbolt file.\n"
      "\n"
      "  geoetcd --config-file <path>\n"
      "    Path to the server configuration file (etcd's YAML, keys are the flag names). Note\n"
      "    that if a configuration file is provided, other command line flags and environment\n"
      "    variables will be ignored.\n";
  const char* section = nullptr;
  for (const Flag& flag : kFlags) {
    if (section == nullptr || std::strcmp(section, flag.section) != 0) {
      section = flag.section;
      absl::StrAppend(&out, "\n", section, ":\n");
    }
    absl::StrAppend(&out, "  --", flag.name, " '", flag.default_text, "'\n    ", flag.help, "\n");
  }
  absl::StrAppend(&out,
                  "\nAccepted for etcd compatibility (no effect in geoetcd; each one given "
                  "logs a warning):\n");
  std::vector<std::string> names;
  for (const IgnoredFlag& ignored : kIgnoredFlags)
    names.push_back(absl::StrCat("--", ignored.name));
  AppendWrapped(names, &out);
  return out;
}

}  // namespace geoetcd
