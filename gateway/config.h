// geoetcd's command line: etcd 3.4/3.5 server flags, ETCD_* environment variables and the
// --config-file YAML, with etcd's precedence rules, so an etcd systemd unit or test harness
// starts geoetcd unchanged.
//
// Sources, as in etcd:
//   1. argv, Go `flag` style: `--name x`, `--name=x`, `-name x`, `-name=x`; bool flags as
//      `--enable-v2` or `--enable-v2=false` (never `--enable-v2 false`); `--` ends the flags.
//   2. ETCD_<FLAG_NAME> environment variables (flag --foo-bar <-> ETCD_FOO_BAR), only for
//      flags not given in argv; empty values are skipped.
//   3. --config-file / ETCD_CONFIG_FILE: when set, the file is the whole configuration and
//      other flags and environment variables are ignored (with a warning). argv is still
//      parsed first, so unknown flags, malformed values, --help and --version still count.
//
// Flags etcd has but that mean nothing to geoetcd (raft tuning, TLS, v2, metrics...) are
// accepted and reported in ServerConfig::warnings, one line each. No globals: the only I/O
// is reading the config file, and the environment is passed in (see CurrentEnvironment()).
#ifndef GEOETCD_GATEWAY_CONFIG_H_
#define GEOETCD_GATEWAY_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/go_duration.h"  // ParseGoDurationMs, for every duration flag

namespace geoetcd {

inline constexpr int64_t kMaxRequestBytesDefault = 1572864;   // 1.5 MiB, as etcd.
inline constexpr int64_t kMaxRequestBytesLimit = 64LL << 20;  // 64 MiB.
inline constexpr int64_t kMaxTxnOpsDefault = 128;
inline constexpr int64_t kMaxTxnOpsLimit = 1000000;
inline constexpr int64_t kQuotaBackendBytesDefault = 2LL << 30;         // 2 GiB.
inline constexpr int64_t kQuotaBackendBytesRecommendedMax = 8LL << 30;  // 8 GiB: warn above.
inline constexpr int64_t kWatchProgressNotifyIntervalMsDefault = 10 * 60 * 1000;
inline constexpr int64_t kGroupCommitBatchMaxDefault = 4096;
inline constexpr int64_t kGroupCommitBatchMaxLimit = 1 << 20;
inline constexpr int64_t kLogCatchupEntriesDefault = 5000;  // etcd's default
inline constexpr int64_t kLogCatchupEntriesLimit = 100'000'000;
inline constexpr int64_t kConfigFileBytesMax = 1 << 20;
inline constexpr int64_t kForwardTimeoutMsDefault = 5000;
inline constexpr int64_t kForwardTimeoutMsMin = 100;
inline constexpr int64_t kForwardTimeoutMsMax = 10 * 60 * 1000;
inline constexpr int64_t kGossipIntervalMsDefault = 1000;
inline constexpr int64_t kGossipIntervalMsMin = 10;
inline constexpr int64_t kGossipIntervalMsMax = 10 * 60 * 1000;

struct ServerConfig {
  std::string name = "default";
  // After parsing, never empty: defaults to "<name>.geoetcd" (etcd uses "<name>.etcd").
  std::string data_dir;
  // URL lists hold validated URLs (scheme http, https, unix or unixs), duplicates removed.
  std::vector<std::string> listen_client_urls = {"http://localhost:2379"};
  std::vector<std::string> advertise_client_urls = {"http://localhost:2379"};
  std::vector<std::string> listen_peer_urls = {"http://localhost:2380"};
  std::vector<std::string> initial_advertise_peer_urls = {"http://localhost:2380"};
  // --listen-metrics-urls: /metrics, /health, /livez, /readyz over HTTP/1.1; empty: none.
  // http:// only (https is Unimplemented, unix InvalidArgument).
  std::vector<std::string> listen_metrics_urls;
  // "name=url,name2=url2". After parsing, never empty: defaults to "<name>=<url>" for each
  // initial-advertise-peer-url, and always names this member (checked).
  std::string initial_cluster;
  std::string initial_cluster_state = "new";  // new | existing
  std::string initial_cluster_token = "etcd-cluster";
  int64_t max_request_bytes = kMaxRequestBytesDefault;  // 1 .. kMaxRequestBytesLimit
  int64_t max_txn_ops = kMaxTxnOpsDefault;              // 1 .. kMaxTxnOpsLimit
  // 0 on the command line means the default; negative disables the quota. Above 8 GiB is
  // accepted with a warning. All as etcd does.
  int64_t quota_backend_bytes = kQuotaBackendBytesDefault;
  std::string auto_compaction_mode = "periodic";  // periodic | revision
  // "0" = off. periodic: a Go duration ("1h", "30m") or a bare number of hours;
  // revision: a count of revisions to keep.
  std::string auto_compaction_retention = "0";
  // auto_compaction_retention decoded for the mode in use; the other one is 0.
  int64_t auto_compaction_period_ms = 0;
  int64_t auto_compaction_revisions = 0;
  std::string log_level = "info";  // debug | info | warn | error | dpanic | panic | fatal
  // --experimental-watch-progress-notify-interval (3.6: --watch-progress-notify-interval),
  // a Go duration. 0 means the default, as in etcd.
  int64_t watch_progress_notify_interval_ms = kWatchProgressNotifyIntervalMsDefault;

  // geoetcd-specific. --group-commit-max-ops: most operations one storage commit groups.
  int64_t group_commit_batch_max = kGroupCommitBatchMaxDefault;  // 1 .. kGroupCommitBatchMaxLimit
  // --client-transport: "native" serves client gRPC with gateway/h2 (KV natively, the rest
  // through gRPC C++ in-process); "grpc" serves everything with gRPC C++'s server.
  std::string client_transport = "native";
  // --write-quorum of the account 'default': local | majority | all (one region: local).
  std::string write_quorum = "majority";
  // Regions (README "Regions"). --write-region: the member of --initial-cluster that is the
  // write region of the account `default`; empty means the first member listed.
  std::string write_region;
  // --forward-timeout: how long a region waits for the write region's answer to a
  // forwarded mutation or read index before the client gets "request timed out".
  int64_t forward_timeout_ms = kForwardTimeoutMsDefault;
  // --experimental-snapshot-catchup-entries: log entries W keeps past a compaction for a
  // lagging region (NodeOptions::log_catchup_entries_max).
  int64_t log_catchup_entries = kLogCatchupEntriesDefault;
  // --gossip-interval: how often a region sends an anti-entropy digest to a random peer.
  int64_t gossip_interval_ms = kGossipIntervalMsDefault;
  // --peer-dial-urls "name=url,...": dial these members at these URLs (a proxy, a NAT
  // address) instead of their --initial-cluster peer URLs. Identity is unchanged: member
  // ids come from --initial-cluster, and the peer's hello must still name it. Checked to
  // name other members only.
  std::string peer_dial_urls;
  // peer_dial_urls as parsed: member name -> URLs to dial it at.
  std::map<std::string, std::vector<std::string>> peer_dial;

  // The config file actually used, or empty.
  std::string config_file;
  // One line per accepted-but-ignored flag, ignored environment variable or config key,
  // and per questionable-but-accepted value (quota above 8 GiB). For main() to log.
  std::vector<std::string> warnings;
};

struct InitialMember {
  std::string name;
  std::vector<std::string> peer_urls;
};

// Parses etcd's --initial-cluster syntax "a=http://h1:2380,b=http://h2:2380". A name may
// repeat to give a member several peer URLs ("a=http://h:2380,a=http://h:2381"). Members
// come back in order of first appearance. Errors: empty cluster, empty name, bad URL.
absl::StatusOr<std::vector<InitialMember>> ParseInitialCluster(const std::string& cluster);

struct ParseOutcome {
  enum Kind {
    kRun,      // Start the server with `config`.
    kHelp,     // Print `help_text` to stdout and exit 0.
    kVersion,  // Print VersionText() to stdout and exit 0.
  };
  Kind kind = kRun;
  ServerConfig config;
  std::string help_text;
};

// argv[0] is the program name. `env` is the process environment (see CurrentEnvironment());
// only ETCD_* entries are looked at. Errors are InvalidArgument with a one-line message
// ("unknown flag: --x", "invalid value \"abc\" for --max-txn-ops: not a number", ...),
// except Unimplemented for what geoetcd lacks: an https/unixs listen URL ("TLS is not
// supported yet") and etcd's subcommands (`gateway`, `grpc-proxy`).
absl::StatusOr<ParseOutcome> ParseServerFlags(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env);

// The process environment as a map, for ParseServerFlags.
std::map<std::string, std::string> CurrentEnvironment();

// The --help text: every flag, meaningful ones with their defaults, then the etcd flags
// accepted for compatibility only.
std::string HelpText();

// Like `etcd --version`, one "Key: value" per line, ending in a newline.
std::string VersionText();

// Validates a comma-separated URL list like etcd (scheme http/https/unix/unixs; http(s)
// needs host:port and no path) and returns the URLs, trimmed, duplicates removed.
absl::StatusOr<std::vector<std::string>> ParseUrlList(const std::string& comma_separated);

// A URL as a gRPC listening address: "http://localhost:2379" -> "localhost:2379",
// "http://[::1]:2379" -> "[::1]:2379", "unix:///tmp/s" -> "unix:/tmp/s",
// "unix://localhost:2379" -> "unix:localhost:2379" (etcd's socket file naming).
// https and unixs are Unimplemented ("TLS is not supported yet").
absl::StatusOr<std::string> UrlToListenAddress(const std::string& url);
absl::StatusOr<std::vector<std::string>> UrlsToListenAddresses(
    const std::vector<std::string>& urls);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_CONFIG_H_
