#include "gateway/config.h"

#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace geoetcd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

using Env = std::map<std::string, std::string>;

absl::StatusOr<ParseOutcome> Parse(const std::vector<std::string>& args, const Env& env = {}) {
  std::vector<const char*> argv = {"geoetcd"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return ParseServerFlags(static_cast<int>(argv.size()), argv.data(), env);
}

// Parses args that must yield a runnable config.
ServerConfig MustParse(const std::vector<std::string>& args, const Env& env = {}) {
  absl::StatusOr<ParseOutcome> outcome = Parse(args, env);
  EXPECT_TRUE(outcome.ok()) << outcome.status();
  if (!outcome.ok()) return ServerConfig();
  EXPECT_EQ(outcome->kind, ParseOutcome::kRun);
  return outcome->config;
}

// The message of a parse that must fail, checked to be one line.
std::string ParseError(const std::vector<std::string>& args, const Env& env = {}) {
  absl::StatusOr<ParseOutcome> outcome = Parse(args, env);
  EXPECT_FALSE(outcome.ok());
  if (outcome.ok()) return "";
  std::string message(outcome.status().message());
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  return message;
}

std::string WriteTempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/config_test_" + name + ".yml";
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return path;
}

bool HasWarning(const ServerConfig& config, const std::string& part) {
  for (const std::string& warning : config.warnings) {
    if (absl::StrContains(warning, part)) return true;
  }
  return false;
}

TEST(ServerConfigTest, DefaultsMatchEtcd) {
  ServerConfig config = MustParse({});
  EXPECT_EQ(config.name, "default");
  EXPECT_EQ(config.data_dir, "default.geoetcd");
  EXPECT_THAT(config.listen_client_urls, ElementsAre("http://localhost:2379"));
  EXPECT_THAT(config.advertise_client_urls, ElementsAre("http://localhost:2379"));
  EXPECT_THAT(config.listen_peer_urls, ElementsAre("http://localhost:2380"));
  EXPECT_THAT(config.initial_advertise_peer_urls, ElementsAre("http://localhost:2380"));
  EXPECT_EQ(config.initial_cluster, "default=http://localhost:2380");
  EXPECT_EQ(config.initial_cluster_state, "new");
  EXPECT_EQ(config.initial_cluster_token, "etcd-cluster");
  EXPECT_EQ(config.max_request_bytes, 1572864);
  EXPECT_EQ(config.max_txn_ops, 128);
  EXPECT_EQ(config.quota_backend_bytes, int64_t{2} << 30);
  EXPECT_EQ(config.auto_compaction_mode, "periodic");
  EXPECT_EQ(config.auto_compaction_retention, "0");
  EXPECT_EQ(config.auto_compaction_period_ms, 0);
  EXPECT_EQ(config.auto_compaction_revisions, 0);
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.watch_progress_notify_interval_ms, 600000);
  EXPECT_EQ(config.group_commit_batch_max, 4096);
  EXPECT_EQ(config.config_file, "");
  EXPECT_TRUE(config.warnings.empty());
}

TEST(ServerConfigTest, AcceptsEveryGoFlagSyntax) {
  ServerConfig config = MustParse({"--name", "a", "--data-dir=/var/lib/a", "-max-txn-ops", "7",
                                   "-initial-cluster-token=tok", "--log-level=debug"});
  EXPECT_EQ(config.name, "a");
  EXPECT_EQ(config.data_dir, "/var/lib/a");
  EXPECT_EQ(config.max_txn_ops, 7);
  EXPECT_EQ(config.initial_cluster_token, "tok");
  EXPECT_EQ(config.log_level, "debug");
}

TEST(ServerConfigTest, LastOccurrenceOfAFlagWins) {
  EXPECT_EQ(MustParse({"--name=a", "--name=b"}).name, "b");
}

TEST(ServerConfigTest, ValueMayStartWithDash) {
  // Go's flag package takes the next argument as the value whatever it looks like.
  EXPECT_EQ(MustParse({"--initial-cluster-token", "-x"}).initial_cluster_token, "-x");
}

TEST(ServerConfigTest, NameDerivesDataDirAndInitialCluster) {
  ServerConfig config = MustParse({"--name", "n1", "--initial-advertise-peer-urls",
                                   "http://10.0.0.1:2380,http://10.0.0.1:2381",
                                   "--listen-peer-urls", "http://10.0.0.1:2380"});
  EXPECT_EQ(config.data_dir, "n1.geoetcd");
  EXPECT_EQ(config.initial_cluster, "n1=http://10.0.0.1:2380,n1=http://10.0.0.1:2381");
}

TEST(ServerConfigTest, ExplicitInitialClusterMustNameThisMember) {
  ServerConfig config = MustParse(
      {"--name", "b", "--initial-cluster", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
       "--initial-advertise-peer-urls", "http://10.0.0.2:2380"});
  EXPECT_EQ(config.initial_cluster, "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380");
  EXPECT_THAT(ParseError({"--name", "c", "--initial-cluster", "a=http://10.0.0.1:2380"}),
              HasSubstr("couldn't find local name \"c\" in the initial cluster configuration"));
  EXPECT_THAT(ParseError({"--initial-cluster", "default=localhost:2380"}),
              HasSubstr("--initial-cluster: URL scheme must be http, https, unix, or unixs"));
}

TEST(ServerConfigTest, NewClusterMemberAdvertisesWhatInitialClusterSays) {
  // etcd's own message, and only when bootstrapping a new cluster.
  EXPECT_EQ(ParseError({"--name", "b", "--initial-cluster",
                        "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
                        "--initial-advertise-peer-urls", "http://10.0.0.3:2380"}),
            "--initial-cluster has b=http://10.0.0.2:2380 but missing from "
            "--initial-advertise-peer-urls=http://10.0.0.3:2380 (resolved urls: "
            "\"http://10.0.0.3:2380\" != \"http://10.0.0.2:2380\")");
  MustParse({"--name", "b", "--initial-cluster", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
             "--initial-advertise-peer-urls", "http://10.0.0.3:2380",
             "--initial-cluster-state", "existing"});
  // Order does not matter; the set does.
  MustParse({"--name", "b", "--initial-cluster",
             "b=http://10.0.0.2:2381,a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
             "--initial-advertise-peer-urls", "http://10.0.0.2:2380,http://10.0.0.2:2381"});
}

TEST(ServerConfigTest, RegionFlags) {
  const std::vector<std::string> two = {"--name", "a", "--initial-cluster",
                                        "a=http://localhost:2380,b=http://10.0.0.2:2380"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = two;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ServerConfig defaults = MustParse(two);
  EXPECT_EQ(defaults.write_region, "");
  EXPECT_EQ(defaults.forward_timeout_ms, 5000);
  EXPECT_EQ(defaults.gossip_interval_ms, 1000);
  ServerConfig set = MustParse(with({"--write-region", "b", "--forward-timeout", "1.5s",
                                     "--gossip-interval", "250ms", "--peer-dial-urls",
                                     "b=http://127.0.0.1:9999"}));
  EXPECT_EQ(set.write_region, "b");
  EXPECT_EQ(set.forward_timeout_ms, 1500);
  EXPECT_EQ(set.gossip_interval_ms, 250);
  EXPECT_EQ(set.peer_dial_urls, "b=http://127.0.0.1:9999");
  EXPECT_EQ(set.peer_dial, (std::map<std::string, std::vector<std::string>>{
                               {"b", {"http://127.0.0.1:9999"}}}));
  // Bounds, at and past them.
  EXPECT_EQ(MustParse(with({"--forward-timeout", "100ms"})).forward_timeout_ms, 100);
  EXPECT_EQ(MustParse(with({"--forward-timeout", "10m"})).forward_timeout_ms, 600000);
  EXPECT_EQ(ParseError(with({"--forward-timeout", "99ms"})),
            "--forward-timeout must be between 100ms and 600000ms, got 99ms");
  EXPECT_EQ(ParseError(with({"--forward-timeout", "10m1ms"})),
            "--forward-timeout must be between 100ms and 600000ms, got 600001ms");
  EXPECT_EQ(MustParse(with({"--gossip-interval", "10ms"})).gossip_interval_ms, 10);
  EXPECT_EQ(ParseError(with({"--gossip-interval", "9ms"})),
            "--gossip-interval must be between 10ms and 600000ms, got 9ms");
  EXPECT_THAT(ParseError(with({"--forward-timeout", "5"})),
              HasSubstr("invalid value \"5\" for --forward-timeout"));
  EXPECT_EQ(ParseError(with({"--write-region", "c"})),
            "--write-region \"c\" is not a member of the initial cluster configuration "
            "(--initial-cluster \"a=http://localhost:2380,b=http://10.0.0.2:2380\")");
  EXPECT_EQ(ParseError(with({"--peer-dial-urls", "a=http://127.0.0.1:1"})),
            "--peer-dial-urls: \"a\" is not another member of --initial-cluster");
  EXPECT_EQ(ParseError(with({"--peer-dial-urls", "z=http://127.0.0.1:1"})),
            "--peer-dial-urls: \"z\" is not another member of --initial-cluster");
  EXPECT_THAT(ParseError(with({"--peer-dial-urls", "b=127.0.0.1:1"})),
              HasSubstr("--peer-dial-urls: URL scheme must be"));
}

TEST(ServerConfigTest, UrlListsAreTrimmedAndDeduplicated) {
  ServerConfig config = MustParse({"--listen-client-urls",
                                   "http://127.0.0.1:2379, http://[::1]:2379,http://127.0.0.1:2379",
                                   "--advertise-client-urls", "http://10.0.0.1:2379"});
  EXPECT_THAT(config.listen_client_urls, ElementsAre("http://127.0.0.1:2379", "http://[::1]:2379"));
  EXPECT_THAT(config.advertise_client_urls, ElementsAre("http://10.0.0.1:2379"));
}

TEST(ServerConfigTest, ListenClientUrlsRequireAdvertiseClientUrls) {
  EXPECT_EQ(ParseError({"--listen-client-urls", "http://127.0.0.1:2379"}),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly");
  // The environment counts as setting it, as in etcd.
  EXPECT_THAT(ParseError({}, {{"ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379"}}),
              HasSubstr("--advertise-client-urls is required"));
}

TEST(ServerConfigTest, RejectsBadUrls) {
  EXPECT_THAT(ParseError({"--listen-peer-urls", "localhost:2380"}),
              HasSubstr("invalid value \"localhost:2380\" for --listen-peer-urls: URL scheme "
                        "must be http, https, unix, or unixs"));
  EXPECT_THAT(ParseError({"--listen-peer-urls", "http://127.0.0.1:2380/path"}),
              HasSubstr("URL must not contain a path"));
  EXPECT_THAT(ParseError({"--listen-peer-urls", "http://127.0.0.1"}),
              HasSubstr("does not have the form \"host:port\""));
  EXPECT_THAT(ParseError({"--listen-peer-urls", "http://127.0.0.1:99999"}),
              HasSubstr("does not have the form \"host:port\""));
  EXPECT_THAT(ParseError({"--listen-peer-urls", "http://127.0.0.1:2380,"}),
              HasSubstr("URL scheme must be"));
  // etcd binds only to IP addresses or localhost.
  EXPECT_THAT(ParseError({"--listen-peer-urls", "http://example.com:2380"}),
              HasSubstr("--listen-peer-urls: expected IP in URL for binding"));
  EXPECT_THAT(ParseError({"--advertise-client-urls", "http://:2379"}),
              HasSubstr("--advertise-client-urls: unexpected empty host"));
}

TEST(ServerConfigTest, ListenMetricsUrls) {
  EXPECT_TRUE(MustParse({}).listen_metrics_urls.empty());
  EXPECT_THAT(MustParse({"--listen-metrics-urls", "http://127.0.0.1:2381,http://[::1]:2381"})
                  .listen_metrics_urls,
              ElementsAre("http://127.0.0.1:2381", "http://[::1]:2381"));
  EXPECT_THAT(MustParse({}, {{"ETCD_LISTEN_METRICS_URLS", "http://localhost:2381"}})
                  .listen_metrics_urls,
              ElementsAre("http://localhost:2381"));
  EXPECT_THAT(ParseError({"--listen-metrics-urls", "127.0.0.1:2381"}),
              HasSubstr("invalid value \"127.0.0.1:2381\" for --listen-metrics-urls: URL "
                        "scheme must be http, https, unix, or unixs"));
  EXPECT_THAT(ParseError({"--listen-metrics-urls", "http://example.com:2381"}),
              HasSubstr("--listen-metrics-urls: expected IP in URL for binding"));
  EXPECT_THAT(ParseError({"--listen-metrics-urls", "unix:///tmp/m.sock"}),
              HasSubstr("--listen-metrics-urls: only http:// URLs are supported"));
  absl::StatusOr<ParseOutcome> tls = Parse({"--listen-metrics-urls", "https://127.0.0.1:2381"});
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ServerConfigTest, TlsListenUrlsAreUnimplemented) {
  absl::StatusOr<ParseOutcome> outcome =
      Parse({"--listen-client-urls", "https://127.0.0.1:2379", "--advertise-client-urls",
             "https://127.0.0.1:2379"});
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(outcome.status().message(), HasSubstr("TLS is not supported yet"));
  // Advertising https (a TLS proxy in front) is fine.
  EXPECT_THAT(
      MustParse({"--advertise-client-urls", "https://db.example.com:2379"}).advertise_client_urls,
      ElementsAre("https://db.example.com:2379"));
}

TEST(ServerConfigTest, EnvironmentAppliesWhenFlagAbsent) {
  ServerConfig config = MustParse({}, {{"ETCD_NAME", "from-env"},
                                       {"ETCD_MAX_TXN_OPS", "9"},
                                       {"ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "5s"},
                                       {"PATH", "/usr/bin"},
                                       {"ETCDCTL_API", "3"}});
  EXPECT_EQ(config.name, "from-env");
  EXPECT_EQ(config.data_dir, "from-env.geoetcd");
  EXPECT_EQ(config.max_txn_ops, 9);
  EXPECT_EQ(config.watch_progress_notify_interval_ms, 5000);
  EXPECT_TRUE(config.warnings.empty()) << config.warnings[0];
}

TEST(ServerConfigTest, FlagShadowsEnvironment) {
  ServerConfig config = MustParse({"--name", "from-flag"}, {{"ETCD_NAME", "from-env"}});
  EXPECT_EQ(config.name, "from-flag");
  EXPECT_TRUE(HasWarning(config, "ETCD_NAME is shadowed by a command-line flag"))
      << config.warnings.size();
  // An alias shadows too.
  config = MustParse({"--watch-progress-notify-interval=1s"},
                     {{"ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", "9s"}});
  EXPECT_EQ(config.watch_progress_notify_interval_ms, 1000);
}

TEST(ServerConfigTest, EnvironmentEdgeCases) {
  EXPECT_EQ(MustParse({}, {{"ETCD_NAME", ""}}).name, "default");  // Empty is unset.
  ServerConfig config = MustParse({}, {{"ETCD_BOGUS", "1"},
                                       {"ETCD_SNAPSHOT_COUNT", "5"},
                                       {"ETCD_VERSION", "3.5"},
                                       {"ETCD_name", "x"}});
  EXPECT_EQ(config.name, "default");
  EXPECT_TRUE(HasWarning(config, "unrecognized environment variable ETCD_BOGUS"));
  EXPECT_TRUE(HasWarning(config, "unrecognized environment variable ETCD_name"));
  EXPECT_TRUE(HasWarning(config, "flag --snapshot-count has no effect in geoetcd; ignored"));
  EXPECT_TRUE(HasWarning(config, "ETCD_VERSION cannot be set"));
  EXPECT_EQ(ParseError({}, {{"ETCD_MAX_TXN_OPS", "abc"}}),
            "invalid value \"abc\" for ETCD_MAX_TXN_OPS: not a number");
  EXPECT_THAT(ParseError({}, {{"ETCD_ENABLE_V2", "maybe"}}), HasSubstr("ETCD_ENABLE_V2"));
}

TEST(ServerConfigTest, ConfigFileInEtcdFormat) {
  const std::string path = WriteTempFile("etcd_format",
                                         "# This is the configuration file for the etcd server.\n"
                                         "---\n"
                                         "name: 'infra1'\n"
                                         "data-dir: /var/lib/geoetcd   # trailing comment\n"
                                         "wal-dir:\n"
                                         "snapshot-count: 10000\n"
                                         "\n"
                                         "listen-peer-urls: http://10.0.0.1:2380\n"
                                         "listen-client-urls: http://10.0.0.1:2379,"
                                         "http://127.0.0.1:2379\n"
                                         "initial-cluster: \"infra1=http://10.0.0.1:2380,"
                                         "infra2=http://10.0.0.2:2380\"\n"
                                         "initial-cluster-state: existing\n"
                                         "max-request-bytes: 123\n"
                                         "max-txn-ops: 64\n"
                                         "auto-compaction-mode: periodic\n"
                                         "auto-compaction-retention: \"1\"\n"
                                         "log-level: warn\n"
                                         "client-transport-security:\n"
                                         "  cert-file:\n"
                                         "  client-cert-auth: false\n"
                                         "log-outputs: [stderr]\n"
                                         "cipher-suites: [\n"
                                         "  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,\n"
                                         "  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"
                                         "]\n"
                                         "no-such-key: 1\n"
                                         "group-commit-max-ops: 100\n");
  ServerConfig config = MustParse({"--config-file", path});
  EXPECT_EQ(config.config_file, path);
  EXPECT_EQ(config.name, "infra1");
  EXPECT_EQ(config.data_dir, "/var/lib/geoetcd");
  EXPECT_THAT(config.listen_peer_urls, ElementsAre("http://10.0.0.1:2380"));
  EXPECT_THAT(config.listen_client_urls,
              ElementsAre("http://10.0.0.1:2379", "http://127.0.0.1:2379"));
  // In file mode etcd keeps the default advertise URL rather than requiring one.
  EXPECT_THAT(config.advertise_client_urls, ElementsAre("http://localhost:2379"));
  EXPECT_EQ(config.initial_cluster, "infra1=http://10.0.0.1:2380,infra2=http://10.0.0.2:2380");
  EXPECT_EQ(config.initial_cluster_state, "existing");
  EXPECT_EQ(config.max_request_bytes, 123);
  EXPECT_EQ(config.max_txn_ops, 64);
  EXPECT_EQ(config.auto_compaction_period_ms, 3600 * 1000);
  EXPECT_EQ(config.log_level, "warn");
  EXPECT_EQ(config.group_commit_batch_max, 100);
  EXPECT_TRUE(HasWarning(config, "flag --snapshot-count has no effect in geoetcd; ignored"));
  EXPECT_FALSE(HasWarning(config, "--wal-dir")) << "a key without a value is unset";
  EXPECT_TRUE(HasWarning(config, "nested block 'client-transport-security' is not supported"));
  EXPECT_TRUE(HasWarning(config, "flag --log-outputs has no effect"));
  EXPECT_TRUE(HasWarning(config, "flag --cipher-suites has no effect"));
  EXPECT_TRUE(HasWarning(config, "line 25: unknown key 'no-such-key'; ignored"));
  EXPECT_EQ(config.warnings.size(), 5u);
}

TEST(ServerConfigTest, ConfigFileListsAndDurations) {
  const std::string path = WriteTempFile("lists",
                                         "listen-client-urls:\n"
                                         "  - http://127.0.0.1:2379\n"
                                         "  - 'http://127.0.0.1:22379'\n"
                                         "advertise-client-urls: [\"http://10.0.0.1:2379\", "
                                         "http://10.0.0.1:22379]\n"
                                         "experimental-watch-progress-notify-interval: 5000000000\n"
                                         "data-dir: ~\n"
                                         "initial-cluster:\n");
  ServerConfig config = MustParse({"--config-file=" + path});
  EXPECT_THAT(config.listen_client_urls,
              ElementsAre("http://127.0.0.1:2379", "http://127.0.0.1:22379"));
  EXPECT_THAT(config.advertise_client_urls,
              ElementsAre("http://10.0.0.1:2379", "http://10.0.0.1:22379"));
  // A bare number is nanoseconds, as etcd's YAML into a time.Duration.
  EXPECT_EQ(config.watch_progress_notify_interval_ms, 5000);
  EXPECT_EQ(config.data_dir, "default.geoetcd");
  EXPECT_EQ(config.initial_cluster, "default=http://localhost:2380");

  const std::string go_duration =
      WriteTempFile("duration", "experimental-watch-progress-notify-interval: 250ms\n");
  EXPECT_EQ(MustParse({"--config-file", go_duration}).watch_progress_notify_interval_ms, 250);
}

TEST(ServerConfigTest, ConfigFileReplacesFlagsAndEnvironmentWithWarning) {
  const std::string path = WriteTempFile("precedence", "name: from-file\n");
  ServerConfig config =
      MustParse({"--name", "from-flag", "--config-file", path, "--snapshot-count", "1"},
                {{"ETCD_DATA_DIR", "/from/env"}});
  EXPECT_EQ(config.name, "from-file");
  EXPECT_EQ(config.data_dir, "from-file.geoetcd");
  ASSERT_EQ(config.warnings.size(), 2u);
  EXPECT_EQ(config.warnings[0],
            "--config-file is set, so these command-line flags are ignored: --name, "
            "--snapshot-count");
  EXPECT_EQ(config.warnings[1],
            "--config-file is set, so these environment variables are ignored: ETCD_DATA_DIR");
  // Flags are still parsed first, so a malformed one is still an error.
  EXPECT_THAT(ParseError({"--config-file", path, "--max-txn-ops", "x"}),
              HasSubstr("--max-txn-ops"));
}

TEST(ServerConfigTest, ConfigFileFromEnvironment) {
  const std::string path = WriteTempFile("from_env", "name: env-file\n");
  ServerConfig config = MustParse({}, {{"ETCD_CONFIG_FILE", path}, {"ETCD_NAME", "ignored"}});
  EXPECT_EQ(config.name, "env-file");
  EXPECT_TRUE(HasWarning(config,
                         "ETCD_CONFIG_FILE is set, so these environment variables are "
                         "ignored: ETCD_NAME"));
  // The flag wins over the variable.
  const std::string other = WriteTempFile("from_flag", "name: flag-file\n");
  EXPECT_EQ(MustParse({"--config-file", other}, {{"ETCD_CONFIG_FILE", path}}).name, "flag-file");
}

// Syntax errors are yaml-cpp's, at the line it names; what geoetcd itself refuses (keys that
// are not flag names, values of the wrong shape or syntax) keeps geoetcd's words.
TEST(ServerConfigTest, ConfigFileQuotedValueLeftOpenIsRefused) {
  // yaml-cpp alone would take the rest of the file as the value, hiding later settings.
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("open_single", "data-dir: d\nname: 'abc\n"
                                                                       "max-txn-ops: 7\n")}),
              HasSubstr("line 2: a quoted value is not closed"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("open_double", "name: \"a\\\"b\n")}),
              HasSubstr("line 1: a quoted value is not closed"));
  EXPECT_THAT(
      ParseError({"--config-file", WriteTempFile("open_item", "log-outputs:\n  - 'stderr\n")}),
      HasSubstr("line 2: a quoted value is not closed"));
  // Closed ones, with their escapes, and a quoted value spanning lines, still parse.
  ServerConfig config = MustParse({"--config-file",
                                   WriteTempFile("closed", "name: 'it''s'\n"
                                                           "initial-cluster-token: \"a\\\"b\"\n"
                                                           "data-dir: 'x\n  y'\n"
                                                           "initial-advertise-peer-urls: http://localhost:2380\n"
                                                           "initial-cluster: \"it's=http://localhost:2380\"\n")});
  EXPECT_EQ(config.name, "it's");
  EXPECT_EQ(config.initial_cluster_token, "a\"b");
  EXPECT_EQ(config.data_dir, "x y");
}

TEST(ServerConfigTest, ConfigFileErrorsNameTheLine) {
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("no_colon", "name: a\n\nname b\n")}),
              HasSubstr("line 3: invalid key 'name b'"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("indent", "name: a\n  data-dir: b\n")}),
              HasSubstr("line 2: illegal map value"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("list", "log-outputs: [a,\n")}),
              HasSubstr("line 2: end of sequence flow not found"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("colon", "name: a: b\n")}),
              HasSubstr("line 1: illegal map value"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("tab", "name: a\n\tx: 1\n")}),
              HasSubstr("line 2: illegal tab when looking for indentation"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("escape", "name: \"\\q\"\n")}),
              HasSubstr("line 1: unknown escape character: q"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("documents", "name: a\n---\nname: b\n")}),
              HasSubstr("line 3: a second YAML document"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("not_a_map", "- name\n")}),
              HasSubstr("line 1: expected 'key: value'"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("value", "x: 1\nmax-txn-ops: lots\n")}),
              HasSubstr("line 2: invalid value \"lots\" for max-txn-ops: not a number"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("nested", "name:\n  first: a\n")}),
              HasSubstr("line 1: 'name' needs a value, not a nested block"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("nested_list", "name: [[a]]\n")}),
              HasSubstr("line 1: 'name' needs a value, not a nested block"));
  EXPECT_THAT(ParseError({"--config-file", ::testing::TempDir() + "/does-not-exist.yml"}),
              HasSubstr("cannot open config file"));
}

TEST(ServerConfigTest, ConfigFileQuotingAndComments) {
  const std::string path = WriteTempFile("quoting",
                                         "name: \"a # not a comment\"\n"
                                         "initial-cluster-token: 'it''s'\n"
                                         "data-dir: dir#x # a comment\n"
                                         "initial-advertise-peer-urls: http://127.0.0.1:2380\n"
                                         "initial-cluster: \"a # not a comment="
                                         "http://127.0.0.1:2380\"\n");
  ServerConfig config = MustParse({"--config-file", path});
  EXPECT_EQ(config.name, "a # not a comment");
  EXPECT_EQ(config.initial_cluster_token, "it's");
  EXPECT_EQ(config.data_dir, "dir#x");
}

// etcd 3.4's sample config (tests/gateway/testdata) starts geoetcd as it starts etcd: it
// spells out etcd's defaults for everything geoetcd has except compaction (hourly), and
// every other key is a known etcd flag that warns.
TEST(ServerConfigTest, ConfigFileEtcdSample) {
  const std::string path = std::string(GEOETCD_TESTDATA_DIR) + "/etcd.conf.yml.sample";
  const ServerConfig config = MustParse({"--config-file", path});
  const ServerConfig defaults = MustParse({});
  const auto settings = [](const ServerConfig& c) {
    return std::make_tuple(c.name, c.data_dir, c.listen_peer_urls, c.listen_client_urls,
                           c.initial_advertise_peer_urls, c.advertise_client_urls,
                           c.initial_cluster, c.initial_cluster_token, c.initial_cluster_state,
                           c.quota_backend_bytes, c.max_request_bytes, c.max_txn_ops,
                           c.auto_compaction_mode, c.log_level);
  };
  EXPECT_EQ(settings(config), settings(defaults));
  EXPECT_EQ(config.config_file, path);
  EXPECT_EQ(config.auto_compaction_retention, "1");
  EXPECT_EQ(config.auto_compaction_period_ms, 3600 * 1000);

  std::vector<std::string> expected;
  for (const char* flag :
       {"snapshot-count", "heartbeat-interval", "election-timeout", "max-snapshots", "max-wals",
        "discovery-fallback", "strict-reconfig-check", "enable-v2", "enable-pprof", "proxy",
        "proxy-failure-wait", "proxy-refresh-interval", "proxy-dial-timeout",
        "proxy-write-timeout", "proxy-read-timeout", "debug", "logger", "log-outputs"}) {
    expected.push_back(absl::StrCat("flag --", flag, " has no effect in geoetcd; ignored"));
  }
  expected.push_back(
      "flag --force-new-cluster has no effect in geoetcd; ignored (geoetcd has no raft "
      "membership to reset)");
  std::vector<std::string> flag_warnings;
  int nested = 0;
  for (const std::string& warning : config.warnings) {
    EXPECT_THAT(warning, Not(HasSubstr("unknown key")));
    if (absl::StrContains(warning, "nested block 'client-transport-security' is not supported; "
                                   "ignored (TLS is not supported yet)") ||
        absl::StrContains(warning, "nested block 'peer-transport-security' is not supported; "
                                   "ignored (TLS is not supported yet)")) {
      ++nested;
    } else {
      flag_warnings.push_back(warning);
    }
  }
  EXPECT_EQ(nested, 2);
  EXPECT_THAT(flag_warnings, ElementsAreArray(expected));
}

TEST(ServerConfigTest, ConfigFileRepeatedKeyWarnsAndTheLaterWins) {
  ServerConfig config =
      MustParse({"--config-file", WriteTempFile("repeat", "name: a\n\nname: b\n")});
  EXPECT_EQ(config.name, "b");
  EXPECT_TRUE(HasWarning(config, "line 3: key 'name' repeats line 1; the later value wins"));
}

TEST(ServerConfigTest, ConfigFileSizeIsBounded) {
  std::string at_bound = "name: bound\n#";
  at_bound.append(kConfigFileBytesMax - at_bound.size() - 1, 'x');
  at_bound += '\n';
  ASSERT_EQ(static_cast<int64_t>(at_bound.size()), kConfigFileBytesMax);
  EXPECT_EQ(MustParse({"--config-file", WriteTempFile("at_bound", at_bound)}).name, "bound");
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("over_bound", at_bound + "\n")}),
              HasSubstr("is larger than 1048576 bytes"));
}

// An alias repeats its anchor's value without repeating its bytes in the file; the values
// taken from a file still add up to at most kConfigFileBytesMax.
TEST(ServerConfigTest, ConfigFileAliasesCannotOutgrowTheBound) {
  const std::string half(kConfigFileBytesMax / 2, 'v');
  const std::string two = "logger: &big " + half + "\nlog-outputs: *big\n";
  ServerConfig config = MustParse({"--config-file", WriteTempFile("alias_two", two)});
  EXPECT_TRUE(HasWarning(config, "flag --log-outputs has no effect"));
  EXPECT_THAT(ParseError({"--config-file", WriteTempFile("alias_three", two + "cors: *big\n")}),
              HasSubstr("line 3: the values add up to more than 1048576 bytes"));
}

TEST(ServerConfigTest, IgnoredFlagsWarnOncePerFlag) {
  ServerConfig config =
      MustParse({"--snapshot-count", "5", "--snapshot-count=6", "--enable-v2", "--enable-v2=false",
                 "-unsafe-no-fsync", "--wal-dir", "/w", "--cert-file=/c"});
  EXPECT_THAT(config.warnings,
              ElementsAre("flag --snapshot-count has no effect in geoetcd; ignored",
                          "flag --enable-v2 has no effect in geoetcd; ignored",
                          "flag --unsafe-no-fsync has no effect in geoetcd; ignored (geoetcd "
                          "always fsyncs)",
                          "flag --wal-dir has no effect in geoetcd; ignored",
                          "flag --cert-file has no effect in geoetcd; ignored (TLS is not "
                          "supported yet)"));
}

TEST(ServerConfigTest, EveryEtcdFlagIsAccepted) {
  const std::vector<std::string> flags = {"wal-dir",
                                          "snapshot-count",
                                          "heartbeat-interval",
                                          "election-timeout",
                                          "max-snapshots",
                                          "max-wals",
                                          "cors",
                                          "enable-v2",
                                          "enable-pprof",
                                          "logger",
                                          "log-outputs",
                                          "metrics",
                                          "strict-reconfig-check",
                                          "pre-vote",
                                          "auto-tls",
                                          "peer-auto-tls",
                                          "cert-file",
                                          "key-file",
                                          "client-cert-auth",
                                          "trusted-ca-file",
                                          "peer-cert-file",
                                          "peer-key-file",
                                          "peer-client-cert-auth",
                                          "peer-trusted-ca-file",
                                          "discovery",
                                          "discovery-srv",
                                          "force-new-cluster",
                                          "unsafe-no-fsync",
                                          "backend-batch-interval",
                                          "backend-batch-limit",
                                          "experimental-initial-corrupt-check",
                                          "experimental-enable-lease-checkpoint",
                                          "experimental-compaction-batch-limit",
                                          "grpc-keepalive-min-time",
                                          "grpc-keepalive-interval",
                                          "grpc-keepalive-timeout",
                                          "socket-reuse-port",
                                          "socket-reuse-address",
                                          "enable-grpc-gateway",
                                          "auth-token",
                                          "bcrypt-cost",
                                          "debug",
                                          "proxy",
                                          "max-concurrent-streams",
                                          "v2-deprecation",
                                          "initial-election-tick-advance",
                                          "discovery-fallback",
                                          "host-whitelist",
                                          "experimental-corrupt-check-time",
                                          "experimental-memory-mlock"};
  for (const std::string& flag : flags) {
    absl::StatusOr<ParseOutcome> outcome = Parse({"--" + flag + "=1"});
    ASSERT_TRUE(outcome.ok()) << flag << ": " << outcome.status();
    EXPECT_TRUE(HasWarning(outcome->config, "flag --" + flag + " has no effect")) << flag;
  }
}

TEST(ServerConfigTest, IgnoredValueFlagConsumesItsValue) {
  ServerConfig config = MustParse({"--heartbeat-interval", "100", "--name", "n"});
  EXPECT_EQ(config.name, "n");
  // etcd's own pre-v2 leftovers are bool-like and take no value.
  EXPECT_EQ(MustParse({"-v", "--name", "m"}).name, "m");
}

TEST(ServerConfigTest, RejectsUnknownAndMalformedFlags) {
  EXPECT_EQ(ParseError({"--bogus"}), "unknown flag: --bogus");
  EXPECT_EQ(ParseError({"-bogus=1"}), "unknown flag: --bogus");
  EXPECT_EQ(ParseError({"--name"}), "flag needs an argument: --name");
  EXPECT_EQ(ParseError({"---name", "x"}), "bad flag syntax: ---name");
  EXPECT_EQ(ParseError({"--=x"}), "bad flag syntax: --=x");
  EXPECT_EQ(ParseError({"extra"}), "\"extra\" is not a valid flag");
  EXPECT_EQ(ParseError({"--", "extra"}), "\"extra\" is not a valid flag");
  EXPECT_EQ(MustParse({"--name", "x", "--"}).name, "x");
  // A bool flag never takes the next argument, as with Go's flag package.
  EXPECT_EQ(ParseError({"--enable-v2", "false"}),
            "\"false\" is not a valid flag (a bool flag takes its value as --enable-v2=false)");
  EXPECT_THAT(ParseError({"--enable-v2=maybe"}),
              HasSubstr("invalid value \"maybe\" for --enable-v2"));
}

TEST(ServerConfigTest, RejectsBadNumbers) {
  EXPECT_EQ(ParseError({"--max-txn-ops", "abc"}),
            "invalid value \"abc\" for --max-txn-ops: not a number");
  EXPECT_EQ(ParseError({"--max-txn-ops", "-5"}),
            "invalid value \"-5\" for --max-txn-ops: must not be negative");
  EXPECT_EQ(ParseError({"--max-request-bytes", "99999999999999999999"}),
            "invalid value \"99999999999999999999\" for --max-request-bytes: out of range");
  // etcd: a negative quota disables it.
  EXPECT_EQ(MustParse({"--quota-backend-bytes", "-1"}).quota_backend_bytes, -1);
  EXPECT_THAT(ParseError({"--quota-backend-bytes", "-x"}), HasSubstr("not a number"));
  EXPECT_THAT(ParseError({"--max-txn-ops", "1.5"}), HasSubstr("not a number"));
  EXPECT_THAT(ParseError({"--max-txn-ops", ""}), HasSubstr("not a number"));
  EXPECT_EQ(MustParse({"--max-txn-ops", "+5"}).max_txn_ops, 5);
}

TEST(ServerConfigTest, MaxRequestBytesBound) {
  EXPECT_EQ(MustParse({"--max-request-bytes", "67108864"}).max_request_bytes, 64 << 20);
  EXPECT_EQ(ParseError({"--max-request-bytes", "67108865"}),
            "--max-request-bytes must be between 1 and 67108864, got 67108865");
  EXPECT_THAT(ParseError({"--max-request-bytes", "0"}), HasSubstr("must be between 1"));
  EXPECT_EQ(MustParse({"--max-request-bytes", "1"}).max_request_bytes, 1);
}

TEST(ServerConfigTest, MaxTxnOpsBound) {
  EXPECT_EQ(MustParse({"--max-txn-ops", "1000000"}).max_txn_ops, 1000000);
  EXPECT_THAT(ParseError({"--max-txn-ops", "1000001"}),
              HasSubstr("--max-txn-ops must be between 1 and 1000000"));
  EXPECT_EQ(MustParse({"--max-txn-ops", "1"}).max_txn_ops, 1);
  EXPECT_THAT(ParseError({"--max-txn-ops", "0"}), HasSubstr("--max-txn-ops must be between"));
}

TEST(ServerConfigTest, GroupCommitMaxOpsBound) {
  EXPECT_EQ(MustParse({"--group-commit-max-ops", "1048576"}).group_commit_batch_max, 1 << 20);
  EXPECT_THAT(ParseError({"--group-commit-max-ops", "1048577"}),
              HasSubstr("--group-commit-max-ops must be between 1 and 1048576"));
  EXPECT_THAT(ParseError({"--group-commit-max-ops", "0"}), HasSubstr("must be between"));
}

TEST(ServerConfigTest, WriteQuorum) {
  EXPECT_EQ(MustParse({}).write_quorum, "majority");
  EXPECT_EQ(MustParse({"--write-quorum", "local"}).write_quorum, "local");
  EXPECT_EQ(MustParse({"--write-quorum=all"}).write_quorum, "all");
  EXPECT_THAT(ParseError({"--write-quorum", "two"}), HasSubstr("--write-quorum"));
}

TEST(ServerConfigTest, SnapshotCatchupEntriesBound) {
  EXPECT_EQ(MustParse({}).log_catchup_entries, 5000);  // etcd's default
  EXPECT_EQ(MustParse({"--experimental-snapshot-catchup-entries", "1"}).log_catchup_entries, 1);
  EXPECT_EQ(
      MustParse({"--experimental-snapshot-catchup-entries", "100000000"}).log_catchup_entries,
      100'000'000);
  EXPECT_THAT(ParseError({"--experimental-snapshot-catchup-entries", "100000001"}),
              HasSubstr("--experimental-snapshot-catchup-entries must be between 1 and 100000000"));
  EXPECT_THAT(ParseError({"--experimental-snapshot-catchup-entries", "0"}),
              HasSubstr("must be between"));
}

TEST(ServerConfigTest, QuotaBackendBytes) {
  EXPECT_EQ(MustParse({"--quota-backend-bytes", "0"}).quota_backend_bytes, int64_t{2} << 30);
  EXPECT_EQ(MustParse({"--quota-backend-bytes", "1024"}).quota_backend_bytes, 1024);
  ServerConfig at_max = MustParse({"--quota-backend-bytes", "8589934592"});
  EXPECT_EQ(at_max.quota_backend_bytes, int64_t{8} << 30);
  EXPECT_TRUE(at_max.warnings.empty());
  ServerConfig above = MustParse({"--quota-backend-bytes", "8589934593"});
  EXPECT_EQ(above.quota_backend_bytes, (int64_t{8} << 30) + 1);
  EXPECT_TRUE(HasWarning(above, "exceeds maximum recommended 8 GiB"));
}

TEST(ServerConfigTest, EnumValues) {
  EXPECT_EQ(MustParse({"--initial-cluster-state=existing"}).initial_cluster_state, "existing");
  EXPECT_EQ(ParseError({"--initial-cluster-state=old"}),
            "invalid value \"old\" for --initial-cluster-state: must be one of new, existing");
  EXPECT_THAT(ParseError({"--auto-compaction-mode=daily"}),
              HasSubstr("must be one of periodic, revision"));
  for (const char* level : {"debug", "info", "warn", "error", "panic", "fatal"}) {
    EXPECT_EQ(MustParse({std::string("--log-level=") + level}).log_level, level);
  }
  EXPECT_THAT(ParseError({"--log-level=verbose"}), HasSubstr("must be one of debug"));
}

TEST(ServerConfigTest, AutoCompactionRetention) {
  ServerConfig hours = MustParse({"--auto-compaction-retention", "1"});
  EXPECT_EQ(hours.auto_compaction_period_ms, 3600 * 1000);
  EXPECT_EQ(MustParse({"--auto-compaction-retention", "30m"}).auto_compaction_period_ms,
            30 * 60 * 1000);
  EXPECT_EQ(MustParse({"--auto-compaction-retention", "1h30m"}).auto_compaction_period_ms,
            90 * 60 * 1000);
  ServerConfig revisions =
      MustParse({"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1000"});
  EXPECT_EQ(revisions.auto_compaction_revisions, 1000);
  EXPECT_EQ(revisions.auto_compaction_period_ms, 0);
  EXPECT_THAT(ParseError({"--auto-compaction-mode=revision", "--auto-compaction-retention=1h"}),
              HasSubstr("revision mode needs a non-negative number of revisions"));
  EXPECT_THAT(ParseError({"--auto-compaction-retention=soon"}),
              HasSubstr("invalid --auto-compaction-retention \"soon\""));
  EXPECT_THAT(ParseError({"--auto-compaction-retention=-1h"}), HasSubstr("negative"));
}

TEST(ServerConfigTest, WatchProgressNotifyInterval) {
  EXPECT_EQ(MustParse({"--experimental-watch-progress-notify-interval=5s"})
                .watch_progress_notify_interval_ms,
            5000);
  EXPECT_EQ(
      MustParse({"--watch-progress-notify-interval", "100ms"}).watch_progress_notify_interval_ms,
      100);
  EXPECT_EQ(MustParse({"--experimental-watch-progress-notify-interval=0"})
                .watch_progress_notify_interval_ms,
            600000);
  EXPECT_THAT(ParseError({"--experimental-watch-progress-notify-interval=-1s"}),
              HasSubstr("must not be negative"));
  EXPECT_THAT(ParseError({"--experimental-watch-progress-notify-interval=5"}),
              HasSubstr("missing unit in duration \"5\""));
}

TEST(ServerConfigTest, EmptyNameRejected) {
  EXPECT_EQ(ParseError({"--name="}), "--name must not be empty");
}

TEST(ServerConfigTest, HelpAndVersion) {
  for (const char* help : {"--help", "-h", "-help", "--h"}) {
    absl::StatusOr<ParseOutcome> outcome = Parse({help});
    ASSERT_TRUE(outcome.ok()) << help;
    EXPECT_EQ(outcome->kind, ParseOutcome::kHelp);
    EXPECT_EQ(outcome->help_text, HelpText());
  }
  // Go stops at -help, so what follows is not looked at; what precedes is.
  EXPECT_EQ(Parse({"--help", "--bogus"})->kind, ParseOutcome::kHelp);
  EXPECT_EQ(ParseError({"--bogus", "--help"}), "unknown flag: --bogus");

  EXPECT_EQ(Parse({"--version"})->kind, ParseOutcome::kVersion);
  EXPECT_EQ(Parse({"--version", "--config-file", "/nonexistent"})->kind, ParseOutcome::kVersion);
  EXPECT_EQ(Parse({"--version=false"})->kind, ParseOutcome::kRun);
  EXPECT_TRUE(absl::StartsWith(VersionText(),
                               "geoetcd Version: 0.1.0\nAPI version (etcd compatible): 3.5\n"));
  EXPECT_TRUE(absl::EndsWith(VersionText(), "\n"));
}

TEST(ServerConfigTest, HelpDocumentsEveryFlag) {
  const std::string help = HelpText();
  for (const char* documented : {"--name 'default'",
                                 "--data-dir '${name}.geoetcd'",
                                 "--listen-client-urls",
                                 "--advertise-client-urls",
                                 "--listen-peer-urls",
                                 "--initial-advertise-peer-urls",
                                 "--initial-cluster 'default=http://localhost:2380'",
                                 "--initial-cluster-state 'new'",
                                 "--initial-cluster-token 'etcd-cluster'",
                                 "--max-request-bytes '1572864'",
                                 "--max-txn-ops '128'",
                                 "--quota-backend-bytes '0'",
                                 "--auto-compaction-mode 'periodic'",
                                 "--auto-compaction-retention '0'",
                                 "--log-level 'info'",
                                 "--config-file",
                                 "--experimental-watch-progress-notify-interval '10m'",
                                 "--group-commit-max-ops '4096'",
                                 "--client-transport 'native'",
                                 "--version",
                                 "--help",
                                 "--snapshot-count",
                                 "--unsafe-no-fsync",
                                 "--vv"}) {
    EXPECT_THAT(help, HasSubstr(documented));
  }
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    EXPECT_LE(line.size(), 100u) << line;
  }
}

TEST(ServerConfigTest, ClientTransportIsNativeOrGrpc) {
  EXPECT_EQ(MustParse({}).client_transport, "native");
  EXPECT_EQ(MustParse({"--client-transport", "grpc"}).client_transport, "grpc");
  EXPECT_EQ(MustParse({"--client-transport=native"}).client_transport, "native");
  EXPECT_THAT(ParseError({"--client-transport", "http"}), HasSubstr("must be one of native, grpc"));
  EXPECT_THAT(ParseError({"--client-transport", ""}), HasSubstr("must be one of"));
}

TEST(ServerConfigTest, EtcdSubcommandsAreUnimplemented) {
  absl::StatusOr<ParseOutcome> outcome = Parse({"grpc-proxy", "start"});
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kUnimplemented);
}

TEST(ServerConfigTest, ParseInitialCluster) {
  absl::StatusOr<std::vector<InitialMember>> members = ParseInitialCluster(
      "b=http://10.0.0.2:2380, a=http://10.0.0.1:2380,b=http://10.0.0.2:2381,,");
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[0].name, "b");
  EXPECT_THAT((*members)[0].peer_urls, ElementsAre("http://10.0.0.2:2380", "http://10.0.0.2:2381"));
  EXPECT_EQ((*members)[1].name, "a");
  EXPECT_THAT((*members)[1].peer_urls, ElementsAre("http://10.0.0.1:2380"));

  EXPECT_THAT(ParseInitialCluster("").status().message(), HasSubstr("empty"));
  EXPECT_THAT(ParseInitialCluster("a").status().message(), HasSubstr("name=url"));
  EXPECT_THAT(ParseInitialCluster("=http://h:1").status().message(), HasSubstr("no name"));
  EXPECT_THAT(ParseInitialCluster("a=").status().message(), HasSubstr("no URL"));
  EXPECT_THAT(ParseInitialCluster("a=http://h:1/x").status().message(),
              HasSubstr("must not contain a path"));
}

TEST(ServerConfigTest, UrlToListenAddress) {
  EXPECT_EQ(*UrlToListenAddress("http://localhost:2379"), "localhost:2379");
  EXPECT_EQ(*UrlToListenAddress("http://127.0.0.1:2379"), "127.0.0.1:2379");
  EXPECT_EQ(*UrlToListenAddress("HTTP://0.0.0.0:2379"), "0.0.0.0:2379");
  EXPECT_EQ(*UrlToListenAddress("http://[::1]:2379"), "[::1]:2379");
  EXPECT_EQ(*UrlToListenAddress("http://[::]:2379"), "[::]:2379");
  EXPECT_EQ(*UrlToListenAddress(" http://:2379 "), "0.0.0.0:2379");
  EXPECT_EQ(*UrlToListenAddress("unix:///tmp/geoetcd.sock"), "unix:/tmp/geoetcd.sock");
  EXPECT_EQ(*UrlToListenAddress("unix://localhost:2379"), "unix:localhost:2379");

  absl::StatusOr<std::string> tls = UrlToListenAddress("https://127.0.0.1:2379");
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(tls.status().message(), HasSubstr("TLS is not supported yet"));
  EXPECT_EQ(UrlToListenAddress("unixs://x").status().code(), absl::StatusCode::kUnimplemented);

  for (const char* bad : {"localhost:2379", "http://::1:2379", "http://[::1]", "http://h",
                          "http://h:2379/", "http://h:port", "ftp://h:21", "unix://"}) {
    EXPECT_EQ(UrlToListenAddress(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }

  absl::StatusOr<std::vector<std::string>> addresses =
      UrlsToListenAddresses({"http://127.0.0.1:2379", "http://[::1]:2379"});
  ASSERT_TRUE(addresses.ok());
  EXPECT_THAT(*addresses, ElementsAre("127.0.0.1:2379", "[::1]:2379"));
}

TEST(ServerConfigTest, ParseUrlList) {
  absl::StatusOr<std::vector<std::string>> urls =
      ParseUrlList("http://127.0.0.1:2379,http://[::1]:2379");
  ASSERT_TRUE(urls.ok());
  EXPECT_THAT(*urls, ElementsAre("http://127.0.0.1:2379", "http://[::1]:2379"));
  EXPECT_FALSE(ParseUrlList("").ok());
}

}  // namespace
}  // namespace geoetcd
