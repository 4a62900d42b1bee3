#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gateway/config.h"
#include "gateway/config_internal.h"

namespace geoetcd {
namespace config_internal {
namespace {

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

// The metrics listener is plain HTTP/1.1 on TCP.
absl::Status CheckMetricsUrls(const std::vector<std::string>& urls) {
  if (absl::Status s = CheckListenUrls("listen-metrics-urls", urls); !s.ok()) return s;
  for (const std::string& text : urls) {
    if (ParseUrl(text)->scheme != "http") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen-metrics-urls: only http:// URLs are supported (", text, ")"));
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

// etcd's default --initial-cluster: this member at each peer URL it advertises.
std::string DefaultInitialCluster(const ServerConfig& config) {
  std::vector<std::string> entries;
  for (const std::string& url : config.initial_advertise_peer_urls) {
    entries.push_back(absl::StrCat(config.name, "=", url));
  }
  return absl::StrJoin(entries, ",");
}

// As etcd bootstrapping a new cluster: this member's entries in --initial-cluster are
// exactly the peer URLs it advertises, since every member derives the others' ids from
// --initial-cluster. (etcd joining an existing cluster does not check.)
absl::Status CheckSelfAdvertised(const ServerConfig& config, const InitialMember& self) {
  std::vector<std::string> listed = self.peer_urls;
  std::vector<std::string> advertised = config.initial_advertise_peer_urls;
  std::sort(listed.begin(), listed.end());
  std::sort(advertised.begin(), advertised.end());
  if (config.initial_cluster_state != "new" || listed == advertised) return absl::OkStatus();
  std::vector<std::string> entries;
  for (const std::string& url : self.peer_urls) {
    entries.push_back(absl::StrCat(config.name, "=", url));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--initial-cluster has ", absl::StrJoin(entries, ","),
                   " but missing from --initial-advertise-peer-urls=",
                   absl::StrJoin(config.initial_advertise_peer_urls, ","), " (resolved urls: \"",
                   absl::StrJoin(advertised, ","), "\" != \"", absl::StrJoin(listed, ","), "\")"));
}

// --peer-dial-urls names other members only; fills config->peer_dial.
absl::Status ResolvePeerDialUrls(ServerConfig* config, const std::vector<InitialMember>& members) {
  config->peer_dial.clear();
  if (config->peer_dial_urls.empty()) return absl::OkStatus();
  auto dial = ParseInitialCluster(config->peer_dial_urls);
  if (!dial.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--peer-dial-urls: ", dial.status().message()));
  }
  for (const InitialMember& d : *dial) {
    const bool member = std::any_of(members.begin(), members.end(),
                                    [&](const InitialMember& m) { return m.name == d.name; });
    if (!member || d.name == config->name) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--peer-dial-urls: \"", d.name, "\" is not another member of --initial-cluster"));
    }
    config->peer_dial[d.name] = d.peer_urls;
  }
  return absl::OkStatus();
}

absl::Status FinalizeCluster(ServerConfig* config) {
  if (config->initial_cluster.empty()) config->initial_cluster = DefaultInitialCluster(*config);
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
  absl::Status status = CheckSelfAdvertised(*config, *self);
  if (status.ok()) status = ResolvePeerDialUrls(config, *members);
  if (!status.ok()) return status;
  if (!write_region_found) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--write-region \"", config->write_region,
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
  if (status.ok()) status = CheckMetricsUrls(config.listen_metrics_urls);
  if (status.ok()) {
    status = CheckAdvertiseUrls("advertise-client-urls", config.advertise_client_urls);
  }
  if (status.ok()) {
    status = CheckAdvertiseUrls("initial-advertise-peer-urls", config.initial_advertise_peer_urls);
  }
  return status;
}

}  // namespace

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
    status = CheckDurationRange("forward-timeout", config.forward_timeout_ms, kForwardTimeoutMsMin,
                                kForwardTimeoutMsMax);
  }
  if (status.ok()) {
    status = CheckDurationRange("gossip-interval", config.gossip_interval_ms, kGossipIntervalMsMin,
                                kGossipIntervalMsMax);
  }
  if (status.ok()) {
    status = CheckRange("experimental-snapshot-catchup-entries", config.log_catchup_entries, 1,
                        kLogCatchupEntriesLimit);
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

}  // namespace config_internal

// ---------------------------------------------------------------------------------------
// URL and cluster syntax (config.h).

using config_internal::ParsedUrl;
using config_internal::ParseUrl;
using config_internal::Trim;

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

}  // namespace geoetcd
