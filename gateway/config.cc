#include "gateway/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "yaml-cpp/yaml.h"

extern char** environ;

namespace geoetcd {
namespace {

constexpr char kGeoetcdVersion[] = "0.1.0";
constexpr char kEtcdApiVersion[] = "3.5";
constexpr char kEnvPrefix[] = "ETCD_";
constexpr int kHelpColumns = 100;

// ---------------------------------------------------------------------------------------
// Scalars in Go's spelling.

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

absl::string_view StripTrailingSpace(absl::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return StripTrailingSpace(s);
}

// strconv.ParseBool.
std::optional<bool> ParseGoBool(absl::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") {
    return false;
  }
  return std::nullopt;
}

// A non-negative decimal integer; a leading '+' is allowed, as in Go.
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

// ---------------------------------------------------------------------------------------
// URLs, validated as etcd's types.NewURLs does.

struct ParsedUrl {
  std::string scheme;  // lower case
  std::string host;    // http(s): without IPv6 brackets
  std::string port;    // http(s)
  bool bracketed = false;
  std::string unix_path;  // unix(s): everything after "://"
};

bool SplitHostPort(absl::string_view host_port, ParsedUrl* url) {
  size_t colon;
  if (absl::StartsWith(host_port, "[")) {
    size_t close = host_port.find(']');
    if (close == absl::string_view::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return false;
    }
    url->host = std::string(host_port.substr(1, close - 1));
    url->bracketed = true;
    colon = close + 1;
  } else {
    colon = host_port.rfind(':');
    if (colon == absl::string_view::npos || host_port.find(':') != colon) return false;
    url->host = std::string(host_port.substr(0, colon));
  }
  if (url->host.find_first_of("[]@ ") != std::string::npos) return false;
  url->port = std::string(host_port.substr(colon + 1));
  int64_t port = 0;
  return url->port.size() <= 5 && AllDigits(url->port) && absl::SimpleAtoi(url->port, &port) &&
         port <= 65535;
}

absl::StatusOr<ParsedUrl> ParseUrl(absl::string_view text) {
  ParsedUrl url;
  size_t sep = text.find("://");
  if (sep != absl::string_view::npos) url.scheme = absl::AsciiStrToLower(text.substr(0, sep));
  if (url.scheme == "unix" || url.scheme == "unixs") {
    url.unix_path = std::string(text.substr(sep + 3));
    if (url.unix_path.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("unix URL needs a socket path: ", text));
    }
    return url;
  }
  if (url.scheme != "http" && url.scheme != "https") {
    return absl::InvalidArgumentError(
        absl::StrCat("URL scheme must be http, https, unix, or unixs: ", text));
  }
  absl::string_view rest = text.substr(sep + 3);
  size_t authority_end = rest.find_first_of("/?#");
  if (authority_end != absl::string_view::npos) {
    if (rest[authority_end] == '/') {
      return absl::InvalidArgumentError(absl::StrCat("URL must not contain a path: ", text));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("URL must not contain a query or fragment: ", text));
  }
  if (!SplitHostPort(rest, &url)) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL address does not have the form \"host:port\": ", text));
  }
  return url;
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// etcd's checkBindURLs, plus geoetcd's missing TLS.
absl::Status CheckListenUrls(absl::string_view flag, const std::vector<std::string>& urls) {
  for (const std::string& text : urls) {
    absl::StatusOr<std::string> address = UrlToListenAddress(text);
    if (!address.ok()) {
      return absl::Status(address.status().code(),
                          absl::StrCat("--", flag, ": ", address.status().message()));
    }
    absl::StatusOr<ParsedUrl> url = ParseUrl(text);
    if (url->scheme == "unix") continue;
    if (url->host != "localhost" && !IsIpLiteral(url->host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": expected IP in URL for binding (", text, ")"));
    }
  }
  return absl::OkStatus();
}

// etcd's checkHostURLs.
absl::Status CheckAdvertiseUrls(absl::string_view flag, const std::vector<std::string>& urls) {
  for (const std::string& text : urls) {
    absl::StatusOr<ParsedUrl> url = ParseUrl(text);
    if (url.ok() && url->unix_path.empty() && url->host.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": unexpected empty host (", text, ")"));
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// The flag tables.

enum class ValueKind { kString, kCount, kUrls, kDuration, kEnum };
using Setter = absl::Status (*)(absl::string_view value, ServerConfig* config);

struct Flag {
  const char* name;
  ValueKind kind;
  Setter set;
  const char* section;       // --help grouping
  const char* default_text;  // as --help shows it
  const char* help;
};

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
    {"forward-timeout", ValueKind::kDuration,
     &SetDurationMs<&ServerConfig::forward_timeout_ms>, kGeoetcd, "5s",
     "How long a region waits for the write region to answer a forwarded request before\n"
     "    the client gets 'request timed out' (100ms to 10m)."},
    {"peer-dial-urls", ValueKind::kString, &SetString<&ServerConfig::peer_dial_urls>, kGeoetcd,
     "", "Comma-separated name=url: dial these members there (a proxy or NAT address)\n"
     "    instead of at their --initial-cluster peer URLs."},
    {"gossip-interval", ValueKind::kDuration, &SetDurationMs<&ServerConfig::gossip_interval_ms>,
     kGeoetcd, "1s", "How often a region gossips an anti-entropy digest (10ms to 10m)."},
};

// etcd flags that geoetcd accepts but does not act on.
enum class IgnoredKind {
  kValue,   // takes a value
  kBool,    // Go bool flag: bare, or =true/=false
  kLegacy,  // etcd's own ignored pre-v2 flags: bool-like, any value after '='
};

struct IgnoredFlag {
  const char* name;
  IgnoredKind kind;
  const char* why;  // appended to the warning when non-empty
};

constexpr char kNoTls[] = "TLS is not supported yet";

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
    {"listen-metrics-urls", IgnoredKind::kValue, ""},
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
    {"experimental-snapshot-catchup-entries", IgnoredKind::kValue, ""},
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

// Handled by the parser itself rather than through the tables.
constexpr char kConfigFileFlag[] = "config-file";
constexpr char kVersionFlag[] = "version";

struct FlagRef {
  const Flag* flag = nullptr;
  const IgnoredFlag* ignored = nullptr;

  bool found() const { return flag != nullptr || ignored != nullptr; }
  bool takes_value() const { return flag != nullptr || ignored->kind == IgnoredKind::kValue; }
};

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

// ---------------------------------------------------------------------------------------
// Collecting values from one source (argv + env, or the config file).

struct Collected {
  ServerConfig config;
  std::set<std::string> explicitly_set;  // meaningful flag names given a value
  std::set<std::string> ignored_warned;
};

void WarnIgnored(const IgnoredFlag& ignored, Collected* collected) {
  if (!collected->ignored_warned.insert(ignored.name).second) return;
  std::string line = absl::StrCat("flag --", ignored.name, " has no effect in geoetcd; ignored");
  if (*ignored.why != '\0') absl::StrAppend(&line, " (", ignored.why, ")");
  collected->config.warnings.push_back(std::move(line));
}

// Sets a flag's value. For an ignored flag only records the warning; `check_bool` asks for
// Go bool syntax on ignored bool flags (argv and env; YAML has its own booleans).
absl::Status ApplyValue(const FlagRef& ref, absl::string_view value, bool check_bool,
                        Collected* collected) {
  if (ref.flag != nullptr) {
    absl::Status status = ref.flag->set(value, &collected->config);
    if (status.ok()) collected->explicitly_set.insert(ref.flag->name);
    return status;
  }
  if (check_bool && ref.ignored->kind == IgnoredKind::kBool && !ParseGoBool(value)) {
    return absl::InvalidArgumentError("not a bool (use true or false)");
  }
  WarnIgnored(*ref.ignored, collected);
  return absl::OkStatus();
}

absl::Status ValueError(absl::string_view value, absl::string_view where,
                        const absl::Status& cause) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value \"", value, "\" for ", where, ": ", cause.message()));
}

// ---------------------------------------------------------------------------------------
// argv, in Go flag package syntax.

struct ArgvResult {
  bool help = false;
  bool version = false;
  std::string config_file;
  std::vector<std::string> flags_given;  // in order, for the --config-file warning
  std::set<Setter> setters_given;        // shadows env for the flag and its aliases
  std::set<std::string> names_given;
  Collected collected;
};

absl::Status NotAFlag(absl::string_view arg, absl::string_view previous_bool_flag) {
  std::string message = absl::StrCat("\"", arg, "\" is not a valid flag");
  if (!previous_bool_flag.empty()) {
    absl::StrAppend(&message, " (a bool flag takes its value as --", previous_bool_flag, "=", arg,
                    ")");
  }
  return absl::InvalidArgumentError(message);
}

absl::Status ParseArgv(int argc, const char* const* argv, ArgvResult* result) {
  std::string previous_bool_flag;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      return i + 1 < argc ? NotAFlag(argv[i + 1], "") : absl::OkStatus();
    }
    if (arg.size() < 2 || arg[0] != '-') return NotAFlag(arg, previous_bool_flag);
    absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
    if (body.empty() || body[0] == '-' || body[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", arg));
    }
    absl::string_view name = body;
    std::optional<absl::string_view> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
    }
    previous_bool_flag.clear();
    if (name == "h" || name == "help") {
      result->help = true;  // Go's flag package stops at -help.
      return absl::OkStatus();
    }
    const bool is_config_file = name == kConfigFileFlag;
    FlagRef ref = LookupFlag(name);
    if (name != kVersionFlag && !is_config_file && !ref.found()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag: --", name));
    }
    const bool takes_value = is_config_file || (name != kVersionFlag && ref.takes_value());
    if (!value.has_value()) {
      if (takes_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: --", name));
        }
        value = argv[++i];
      } else {
        value = "true";
        previous_bool_flag = std::string(name);
      }
    }
    if (name == kVersionFlag) {
      std::optional<bool> on = ParseGoBool(*value);
      if (!on) return ValueError(*value, "--version", absl::InvalidArgumentError("not a bool"));
      result->version = *on;
      continue;
    }
    if (is_config_file) {
      result->config_file = std::string(*value);
      continue;
    }
    if (result->names_given.insert(std::string(name)).second) {
      result->flags_given.push_back(absl::StrCat("--", name));
    }
    if (ref.flag != nullptr) result->setters_given.insert(ref.flag->set);
    absl::Status status = ApplyValue(ref, *value, /*check_bool=*/true, &result->collected);
    if (!status.ok()) return ValueError(*value, absl::StrCat("--", name), status);
  }
  return absl::OkStatus();
}

// ETCD_* variables for flags argv did not give, as etcd's flags.SetFlagsFromEnv.
absl::Status ApplyEnvironment(const std::map<std::string, std::string>& env, const ArgvResult& argv,
                              Collected* collected) {
  std::vector<std::string>& warnings = collected->config.warnings;
  for (const auto& [key, value] : env) {
    if (!absl::StartsWith(key, kEnvPrefix) || key == FlagToEnv(kConfigFileFlag)) continue;
    if (key == FlagToEnv(kVersionFlag)) {
      if (!value.empty()) {
        warnings.push_back(absl::StrCat("environment variable ", key, " cannot be set; ignored"));
      }
      continue;
    }
    std::string name = absl::AsciiStrToLower(key.substr(std::strlen(kEnvPrefix)));
    absl::StrReplaceAll({{"_", "-"}}, &name);
    FlagRef ref = LookupFlag(name);
    if (!ref.found() || FlagToEnv(name) != key) {
      warnings.push_back(absl::StrCat("unrecognized environment variable ", key, "; ignored"));
      continue;
    }
    const bool shadowed = argv.names_given.count(name) > 0 ||
                          (ref.flag != nullptr && argv.setters_given.count(ref.flag->set) > 0);
    if (shadowed) {
      warnings.push_back(absl::StrCat("environment variable ", key,
                                      " is shadowed by a command-line flag; ignored"));
      continue;
    }
    if (value.empty()) continue;
    absl::Status status = ApplyValue(ref, value, /*check_bool=*/true, collected);
    if (!status.ok()) return ValueError(value, key, status);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// The config file: YAML read by yaml-cpp, of which geoetcd uses the top-level mapping, as
// etcd does: each key is a flag name, each value a scalar or a list of scalars. Nested
// mappings are recognised only so they can be skipped or refused.

struct YamlEntry {
  enum class Shape { kNull, kScalar, kList, kNested };
  std::string key;
  int line = 0;
  Shape shape = Shape::kNull;
  std::string value;               // kScalar
  std::vector<std::string> items;  // kList
};

absl::Status YamlError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

bool IsFlagName(const std::string& key) {
  constexpr char kFlagNameChars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
  return !key.empty() && key.find_first_not_of(kFlagNameChars) == std::string::npos;
}

// The shape and text of one setting. `value_bytes` counts the bytes of every value taken
// so far: without aliases they cannot exceed the file, so an alias repeated to blow a
// small file up into gigabytes stops at the file bound instead.
absl::Status ReadYamlValue(const YAML::Node& value, YamlEntry* entry, int64_t* value_bytes) {
  const auto take = [&](const std::string& text) {
    *value_bytes += static_cast<int64_t>(text.size());
    return *value_bytes <= kConfigFileBytesMax;
  };
  bool within_bound = true;
  if (value.IsScalar()) {
    entry->shape = YamlEntry::Shape::kScalar;
    entry->value = value.Scalar();
    within_bound = take(entry->value);
  } else if (value.IsMap()) {
    entry->shape = YamlEntry::Shape::kNested;
  } else if (value.IsSequence()) {
    entry->shape = YamlEntry::Shape::kList;
    for (const YAML::Node& item : value) {
      if (item.IsNull()) continue;
      if (!item.IsScalar()) {
        entry->shape = YamlEntry::Shape::kNested;  // A list of lists or mappings.
        entry->items.clear();
        break;
      }
      entry->items.push_back(item.Scalar());
      within_bound = within_bound && take(entry->items.back());
      if (!within_bound) break;
    }
  }
  if (!within_bound) {
    return YamlError(entry->line, absl::StrCat("the values add up to more than ",
                                               kConfigFileBytesMax, " bytes (aliases?)"));
  }
  return absl::OkStatus();
}

// A syntax error as yaml-cpp reports it, at the line it names.
absl::Status YamlSyntaxError(const YAML::Exception& e) {
  if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("invalid YAML: ", e.msg));
  return YamlError(e.mark.line + 1, e.msg);
}

absl::StatusOr<std::vector<YamlEntry>> ParseConfigYaml(const std::string& text) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return YamlSyntaxError(e);
  }
  if (documents.size() > 1) {
    return YamlError(LineOf(documents[1]), "a second YAML document (one is the whole config)");
  }
  std::vector<YamlEntry> entries;
  if (documents.empty() || documents[0].IsNull()) return entries;
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) return YamlError(LineOf(root), "expected 'key: value'");
  int64_t value_bytes = 0;
  for (const auto& setting : root) {
    YamlEntry entry;
    entry.line = LineOf(setting.first);
    entry.key = setting.first.IsScalar() ? setting.first.Scalar() : "";
    if (!IsFlagName(entry.key)) {
      return YamlError(entry.line, absl::StrCat("invalid key '", entry.key, "'"));
    }
    absl::Status status = ReadYamlValue(setting.second, &entry, &value_bytes);
    if (!status.ok()) return status;
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open config file \"", path, "\": ", std::strerror(errno)));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
    if (static_cast<int64_t>(text.size()) > kConfigFileBytesMax) break;
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read config file \"", path, "\""));
  }
  if (static_cast<int64_t>(text.size()) > kConfigFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file \"", path, "\" is larger than ", kConfigFileBytesMax, " bytes"));
  }
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.erase(0, 3);
  return text;
}

absl::Status ApplyYamlEntry(const YamlEntry& entry, const std::string& where,
                            Collected* collected) {
  std::vector<std::string>& warnings = collected->config.warnings;
  FlagRef ref = LookupFlag(entry.key);
  if (entry.shape == YamlEntry::Shape::kNested && ref.flag == nullptr) {
    std::string line =
        absl::StrCat(where, ": nested block '", entry.key, "' is not supported; ignored");
    if (absl::EndsWith(entry.key, "transport-security")) absl::StrAppend(&line, " (", kNoTls, ")");
    warnings.push_back(std::move(line));
    return absl::OkStatus();
  }
  if (!ref.found()) {
    warnings.push_back(absl::StrCat(where, ": unknown key '", entry.key, "'; ignored"));
    return absl::OkStatus();
  }
  std::string value;
  switch (entry.shape) {
    case YamlEntry::Shape::kNull:
      return absl::OkStatus();  // As in etcd, a key without a value keeps the default.
    case YamlEntry::Shape::kNested:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", entry.key, "' needs a value, not a nested block"));
    case YamlEntry::Shape::kList:
      value = absl::StrJoin(entry.items, ",");
      break;
    case YamlEntry::Shape::kScalar:
      value = entry.value;
      break;
  }
  // etcd reads its YAML into time.Duration fields, where a bare number is nanoseconds.
  if (ref.flag != nullptr && ref.flag->kind == ValueKind::kDuration && AllDigits(value)) {
    absl::StrAppend(&value, "ns");
  }
  absl::Status status = ApplyValue(ref, value, /*check_bool=*/false, collected);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": invalid value \"", value, "\" for ",
                                                   entry.key, ": ", status.message()));
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(const std::string& path, Collected* collected) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<YamlEntry>> entries = ParseConfigYaml(*text);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file \"", path, "\" ", entries.status().message()));
  }
  std::map<std::string, int> first_line;
  for (const YamlEntry& entry : *entries) {
    const std::string where = absl::StrCat("config file \"", path, "\" line ", entry.line);
    auto [it, fresh] = first_line.emplace(entry.key, entry.line);
    if (!fresh) {
      collected->config.warnings.push_back(absl::StrCat(
          where, ": key '", entry.key, "' repeats line ", it->second, "; the later value wins"));
    }
    absl::Status status = ApplyYamlEntry(entry, where, collected);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Cross-field defaults and validation, after all sources are applied.

absl::Status CheckRange(absl::string_view flag, int64_t value, int64_t min, int64_t max) {
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be between ", min, " and ", max, ", got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckDurationRange(absl::string_view flag, int64_t ms, int64_t min_ms,
                                int64_t max_ms) {
  if (ms < min_ms || ms > max_ms) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be between ", min_ms,
                                                   "ms and ", max_ms, "ms, got ", ms, "ms"));
  }
  return absl::OkStatus();
}

absl::Status DecodeCompactionRetention(ServerConfig* config) {
  if (config->auto_compaction_retention.empty()) config->auto_compaction_retention = "0";
  const std::string& retention = config->auto_compaction_retention;
  config->auto_compaction_period_ms = 0;
  config->auto_compaction_revisions = 0;
  int64_t count = 0;
  const bool is_count = ParseCount(retention, &count).ok();
  const std::string prefix =
      absl::StrCat("invalid --auto-compaction-retention \"", retention, "\": ");
  if (config->auto_compaction_mode == "revision") {
    if (!is_count) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "revision mode needs a non-negative number of revisions"));
    }
    config->auto_compaction_revisions = count;
    return absl::OkStatus();
  }
  constexpr int64_t kHourMs = 3600 * 1000;
  if (is_count) {
    if (count > std::numeric_limits<int64_t>::max() / kHourMs) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "too many hours"));
    }
    config->auto_compaction_period_ms = count * kHourMs;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> ms = ParseGoDurationMs(retention);
  if (!ms.ok()) return absl::InvalidArgumentError(absl::StrCat(prefix, ms.status().message()));
  if (*ms < 0) return absl::InvalidArgumentError(absl::StrCat(prefix, "must not be negative"));
  config->auto_compaction_period_ms = *ms;
  return absl::OkStatus();
}

absl::Status FinalizeCluster(ServerConfig* config) {
  if (config->initial_cluster.empty()) {
    std::vector<std::string> entries;
    for (const std::string& url : config->initial_advertise_peer_urls) {
      entries.push_back(absl::StrCat(config->name, "=", url));
    }
    config->initial_cluster = absl::StrJoin(entries, ",");
  }
  absl::StatusOr<std::vector<InitialMember>> members = ParseInitialCluster(config->initial_cluster);
  if (!members.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--initial-cluster: ", members.status().message()));
  }
  const InitialMember* self = nullptr;
  bool write_region_found = config->write_region.empty();
  for (const InitialMember& member : *members) {
    if (member.name == config->name) self = &member;
    if (member.name == config->write_region) write_region_found = true;
  }
  if (self == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("couldn't find local name \"", config->name,
                     "\" in the initial cluster configuration (--initial-cluster \"",
                     config->initial_cluster, "\")"));
  }
  // As etcd bootstrapping a new cluster: this member's entries in --initial-cluster are
  // exactly the peer URLs it advertises, since every member derives the others' ids from
  // --initial-cluster. (etcd joining an existing cluster does not check.)
  std::vector<std::string> listed = self->peer_urls;
  std::vector<std::string> advertised = config->initial_advertise_peer_urls;
  std::sort(listed.begin(), listed.end());
  std::sort(advertised.begin(), advertised.end());
  if (config->initial_cluster_state == "new" && listed != advertised) {
    std::vector<std::string> entries;
    for (const std::string& url : self->peer_urls) {
      entries.push_back(absl::StrCat(config->name, "=", url));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "--initial-cluster has ", absl::StrJoin(entries, ","),
        " but missing from --initial-advertise-peer-urls=",
        absl::StrJoin(config->initial_advertise_peer_urls, ","), " (resolved urls: \"",
        absl::StrJoin(advertised, ","), "\" != \"", absl::StrJoin(listed, ","), "\")"));
  }
  if (!config->peer_dial_urls.empty()) {
    auto dial = ParseInitialCluster(config->peer_dial_urls);
    if (!dial.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--peer-dial-urls: ", dial.status().message()));
    }
    for (const InitialMember& d : *dial) {
      const bool member = std::any_of(members->begin(), members->end(),
                                      [&](const InitialMember& m) { return m.name == d.name; });
      if (!member || d.name == config->name) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--peer-dial-urls: \"", d.name, "\" is not another member of --initial-cluster"));
      }
    }
  }
  if (!write_region_found) {
    return absl::InvalidArgumentError(
        absl::StrCat("--write-region \"", config->write_region,
                     "\" is not a member of the initial cluster configuration (--initial-cluster \"",
                     config->initial_cluster, "\")"));
  }
  return absl::OkStatus();
}

absl::Status FinalizeUrls(bool from_flags, const Collected& collected) {
  const ServerConfig& config = collected.config;
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {
      {"listen-client-urls", &config.listen_client_urls},
      {"advertise-client-urls", &config.advertise_client_urls},
      {"listen-peer-urls", &config.listen_peer_urls},
      {"initial-advertise-peer-urls", &config.initial_advertise_peer_urls},
  };
  for (const auto& [flag, urls] : lists) {
    if (urls->empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": no URLs"));
  }
  // etcd drops its default advertise URL once the listen URLs are given on the command line.
  if (from_flags && collected.explicitly_set.count("listen-client-urls") > 0 &&
      collected.explicitly_set.count("advertise-client-urls") == 0) {
    return absl::InvalidArgumentError(
        "--advertise-client-urls is required when --listen-client-urls is set explicitly");
  }
  absl::Status status = CheckListenUrls("listen-client-urls", config.listen_client_urls);
  if (status.ok()) status = CheckListenUrls("listen-peer-urls", config.listen_peer_urls);
  if (status.ok()) {
    status = CheckAdvertiseUrls("advertise-client-urls", config.advertise_client_urls);
  }
  if (status.ok()) {
    status = CheckAdvertiseUrls("initial-advertise-peer-urls", config.initial_advertise_peer_urls);
  }
  return status;
}

absl::Status Finalize(bool from_flags, Collected* collected) {
  ServerConfig& config = collected->config;
  if (config.name.empty()) return absl::InvalidArgumentError("--name must not be empty");
  if (config.data_dir.empty()) config.data_dir = config.name + ".geoetcd";
  absl::Status status = FinalizeUrls(from_flags, *collected);
  if (status.ok()) status = FinalizeCluster(&config);
  if (status.ok()) {
    status = CheckRange("max-request-bytes", config.max_request_bytes, 1, kMaxRequestBytesLimit);
  }
  if (status.ok()) status = CheckRange("max-txn-ops", config.max_txn_ops, 1, kMaxTxnOpsLimit);
  if (status.ok()) {
    status = CheckDurationRange("forward-timeout", config.forward_timeout_ms,
                                kForwardTimeoutMsMin, kForwardTimeoutMsMax);
  }
  if (status.ok()) {
    status = CheckDurationRange("gossip-interval", config.gossip_interval_ms,
                                kGossipIntervalMsMin, kGossipIntervalMsMax);
  }
  if (status.ok()) {
    status = CheckRange("group-commit-max-ops", config.group_commit_batch_max, 1,
                        kGroupCommitBatchMaxLimit);
  }
  if (status.ok()) status = DecodeCompactionRetention(&config);
  if (!status.ok()) return status;
  if (config.quota_backend_bytes == 0) config.quota_backend_bytes = kQuotaBackendBytesDefault;
  if (config.quota_backend_bytes > kQuotaBackendBytesRecommendedMax) {
    config.warnings.push_back(absl::StrCat("quota-backend-bytes ", config.quota_backend_bytes,
                                           " exceeds maximum recommended 8 GiB (",
                                           kQuotaBackendBytesRecommendedMax, "); accepted"));
  }
  if (config.watch_progress_notify_interval_ms == 0) {
    config.watch_progress_notify_interval_ms = kWatchProgressNotifyIntervalMsDefault;
  }
  return absl::OkStatus();
}

std::vector<std::string> EnvIgnoredByConfigFile(const std::map<std::string, std::string>& env) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : env) {
    if (absl::StartsWith(key, kEnvPrefix) && !value.empty() && key != FlagToEnv(kConfigFileFlag)) {
      keys.push_back(key);
    }
  }
  return keys;
}

absl::StatusOr<ServerConfig> ConfigFromFile(const std::string& path, bool path_from_env,
                                            const ArgvResult& argv,
                                            const std::map<std::string, std::string>& env) {
  Collected collected;
  absl::Status status = ApplyConfigFile(path, &collected);
  if (status.ok()) status = Finalize(/*from_flags=*/false, &collected);
  if (!status.ok()) return status;
  ServerConfig config = std::move(collected.config);
  config.config_file = path;
  const char* const source = path_from_env ? "ETCD_CONFIG_FILE" : "--config-file";
  std::vector<std::string> notices;
  if (!argv.flags_given.empty()) {
    notices.push_back(absl::StrCat(source, " is set, so these command-line flags are ignored: ",
                                   absl::StrJoin(argv.flags_given, ", ")));
  }
  std::vector<std::string> env_keys = EnvIgnoredByConfigFile(env);
  if (!env_keys.empty()) {
    notices.push_back(absl::StrCat(source, " is set, so these environment variables are ",
                                   "ignored: ", absl::StrJoin(env_keys, ", ")));
  }
  config.warnings.insert(config.warnings.begin(), notices.begin(), notices.end());
  return config;
}

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

// ---------------------------------------------------------------------------------------
// Public API.

absl::StatusOr<std::vector<std::string>> ParseUrlList(const std::string& comma_separated) {
  std::vector<std::string> urls;
  for (absl::string_view piece : absl::StrSplit(comma_separated, ',')) {
    absl::string_view url = Trim(piece);
    absl::StatusOr<ParsedUrl> parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    bool duplicate = false;
    for (const std::string& seen : urls) duplicate = duplicate || seen == url;
    if (!duplicate) urls.emplace_back(url);
  }
  return urls;
}

absl::StatusOr<std::string> UrlToListenAddress(const std::string& text) {
  absl::StatusOr<ParsedUrl> url = ParseUrl(Trim(text));
  if (!url.ok()) return url.status();
  if (url->scheme == "https" || url->scheme == "unixs") {
    return absl::UnimplementedError(absl::StrCat("TLS is not supported yet: ", Trim(text)));
  }
  if (url->scheme == "unix") return absl::StrCat("unix:", url->unix_path);
  const std::string host = url->host.empty() ? "0.0.0.0" : url->host;
  if (url->bracketed) return absl::StrCat("[", host, "]:", url->port);
  return absl::StrCat(host, ":", url->port);
}

absl::StatusOr<std::vector<std::string>> UrlsToListenAddresses(
    const std::vector<std::string>& urls) {
  std::vector<std::string> addresses;
  for (const std::string& url : urls) {
    absl::StatusOr<std::string> address = UrlToListenAddress(url);
    if (!address.ok()) return address.status();
    addresses.push_back(*std::move(address));
  }
  return addresses;
}

absl::StatusOr<std::vector<InitialMember>> ParseInitialCluster(const std::string& cluster) {
  std::vector<InitialMember> members;
  for (absl::string_view piece : absl::StrSplit(cluster, ',')) {
    absl::string_view entry = Trim(piece);
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("entry \"", entry, "\" is not of the form name=url"));
    }
    const std::string name(Trim(entry.substr(0, eq)));
    const std::string url(Trim(entry.substr(eq + 1)));
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("entry \"", entry, "\" has no name"));
    }
    if (url.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("entry \"", entry, "\" has no URL"));
    }
    absl::StatusOr<ParsedUrl> parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    InitialMember* member = nullptr;
    for (InitialMember& existing : members) {
      if (existing.name == name) member = &existing;
    }
    if (member == nullptr) member = &members.emplace_back(InitialMember{name, {}});
    bool duplicate = false;
    for (const std::string& seen : member->peer_urls) duplicate = duplicate || seen == url;
    if (!duplicate) member->peer_urls.push_back(url);
  }
  if (members.empty()) return absl::InvalidArgumentError("the initial cluster is empty");
  return members;
}

absl::StatusOr<ParseOutcome> ParseServerFlags(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env) {
  if (argc > 1 &&
      (absl::string_view(argv[1]) == "gateway" || absl::string_view(argv[1]) == "grpc-proxy")) {
    return absl::UnimplementedError(
        absl::StrCat("the etcd subcommand '", argv[1], "' is not supported by geoetcd"));
  }
  ArgvResult argv_result;
  absl::Status status = ParseArgv(argc, argv, &argv_result);
  if (!status.ok()) return status;
  ParseOutcome outcome;
  if (argv_result.help) {
    outcome.kind = ParseOutcome::kHelp;
    outcome.help_text = HelpText();
    return outcome;
  }
  if (argv_result.version) {
    outcome.kind = ParseOutcome::kVersion;
    return outcome;
  }
  std::string config_file = argv_result.config_file;
  const bool path_from_env = config_file.empty();
  if (path_from_env) {
    auto it = env.find(FlagToEnv(kConfigFileFlag));
    if (it != env.end()) config_file = it->second;
  }
  if (!config_file.empty()) {
    absl::StatusOr<ServerConfig> config =
        ConfigFromFile(config_file, path_from_env, argv_result, env);
    if (!config.ok()) return config.status();
    outcome.config = *std::move(config);
    return outcome;
  }
  Collected& collected = argv_result.collected;
  status = ApplyEnvironment(env, argv_result, &collected);
  if (status.ok()) status = Finalize(/*from_flags=*/true, &collected);
  if (!status.ok()) return status;
  outcome.config = std::move(collected.config);
  return outcome;
}

std::map<std::string, std::string> CurrentEnvironment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text = *entry;
    const size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

std::string HelpText() {
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

std::string VersionText() {
#if defined(__x86_64__)
  constexpr char kArch[] = "amd64";
#elif defined(__aarch64__)
  constexpr char kArch[] = "arm64";
#else
  constexpr char kArch[] = "unknown";
#endif
#if defined(__linux__)
  constexpr char kOs[] = "linux";
#elif defined(__APPLE__)
  constexpr char kOs[] = "darwin";
#else
  constexpr char kOs[] = "unknown";
#endif
#ifdef GEOETCD_GIT_SHA
  constexpr char kGitSha[] = GEOETCD_GIT_SHA;
#else
  constexpr char kGitSha[] = "not provided";
#endif
  return absl::StrCat("geoetcd Version: ", kGeoetcdVersion, "\n",
                      "API version (etcd compatible): ", kEtcdApiVersion, "\n",
                      "Git SHA: ", kGitSha, "\n", "Compiler: C++ ", __VERSION__, "\n",
                      "OS/Arch: ", kOs, "/", kArch, "\n");
}

}  // namespace geoetcd
