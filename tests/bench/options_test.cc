#include "bench/options.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace geoetcd::bench {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

absl::StatusOr<ParsedCommand> Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"geoetcd-bench"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

BenchOptions MustParse(const std::vector<std::string>& args) {
  auto parsed = Parse(args);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return BenchOptions();
  EXPECT_FALSE(parsed->help);
  return parsed->options;
}

std::string ParseError(const std::vector<std::string>& args) {
  auto parsed = Parse(args);
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(BenchOptionsTest, Defaults) {
  const BenchOptions o = MustParse({"put"});
  EXPECT_EQ(o.workload, Workload::kPut);
  EXPECT_THAT(o.endpoints, ElementsAre("127.0.0.1:2379"));
  EXPECT_EQ(o.conns, 1);
  EXPECT_EQ(o.clients, 1);
  EXPECT_EQ(o.total, 10000u);
  EXPECT_EQ(o.duration_ns, 0);
  EXPECT_EQ(o.rate, 0);
  EXPECT_FALSE(o.serializable);
}

TEST(BenchOptionsTest, ParsesEveryKindOfFlag) {
  const BenchOptions o = MustParse({"range",
                                    "--endpoints",
                                    "http://10.0.0.1:2379, 10.0.0.2:2379",
                                    "--conns=100",
                                    "--clients",
                                    "1000",
                                    "--duration",
                                    "1.5s",
                                    "--warmup",
                                    "500ms",
                                    "--rate",
                                    "2500.5",
                                    "--key-size",
                                    "16",
                                    "--val-size",
                                    "1024",
                                    "--key-space",
                                    "100000",
                                    "--sequential-keys",
                                    "--consistency",
                                    "s",
                                    "--metadata",
                                    "geoetcd-consistency=eventual",
                                    "--metadata",
                                    "x-trace=1",
                                    "--json",
                                    "--threads",
                                    "2"});
  EXPECT_EQ(o.workload, Workload::kRange);
  EXPECT_THAT(o.endpoints, ElementsAre("10.0.0.1:2379", "10.0.0.2:2379"));
  EXPECT_EQ(o.conns, 100);
  EXPECT_EQ(o.clients, 1000);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.duration_ns, 1'500'000'000);
  EXPECT_EQ(o.warmup_ns, 500'000'000);
  EXPECT_EQ(o.rate, 2500.5);
  EXPECT_EQ(o.key_size, 16);
  EXPECT_EQ(o.val_size, 1024);
  EXPECT_EQ(o.key_space, 100000u);
  EXPECT_TRUE(o.sequential_keys);
  EXPECT_TRUE(o.serializable);
  EXPECT_TRUE(o.json);
  EXPECT_THAT(o.metadata,
              ElementsAre(Pair("geoetcd-consistency", "eventual"), Pair("x-trace", "1")));
}

TEST(BenchOptionsTest, WatchDefaultsToARateLimitedWriter) {
  const BenchOptions o = MustParse({"watch", "--watchers", "10000"});
  EXPECT_EQ(o.rate, 100);
  EXPECT_EQ(o.total, 500u);
  EXPECT_EQ(o.watchers, 10000);
  EXPECT_THAT(ParseError({"watch", "--rate", "0"}), HasSubstr("needs a rate above 0"));
  EXPECT_THAT(ParseError({"watch", "--watchers", "5", "--streams", "6"}),
              HasSubstr("at most one stream per watcher"));
  EXPECT_THAT(ParseError({"watch", "--val-size", "7"}), HasSubstr("send time"));
}

TEST(BenchOptionsTest, BadInputIsRejectedWithTheFlagName) {
  EXPECT_THAT(ParseError({}), HasSubstr("missing workload"));
  EXPECT_THAT(ParseError({"get"}), HasSubstr("unknown workload 'get'"));
  EXPECT_THAT(ParseError({"put", "--total", "10", "--duration", "5s"}),
              HasSubstr("--total and --duration exclude each other"));
  EXPECT_THAT(ParseError({"put", "--val-size", "0"}), HasSubstr("--val-size"));
  EXPECT_THAT(ParseError({"put", "--key-size", "-1"}), HasSubstr("--key-size"));
  EXPECT_THAT(ParseError({"put", "--clients", "0"}), HasSubstr("--clients"));
  EXPECT_THAT(ParseError({"put", "--total", "0"}), HasSubstr("--total"));
  EXPECT_THAT(ParseError({"put", "--total", "ten"}), HasSubstr("not an integer"));
  EXPECT_THAT(ParseError({"put", "--rate", "-1"}), HasSubstr("--rate"));
  EXPECT_THAT(ParseError({"put", "--duration", "0s"}), HasSubstr("greater than zero"));
  EXPECT_THAT(ParseError({"put", "--duration", "soon"}), HasSubstr("not a duration"));
  EXPECT_THAT(ParseError({"put", "--nope"}), HasSubstr("unknown flag --nope"));
  EXPECT_THAT(ParseError({"put", "--clients"}), HasSubstr("needs a value"));
  EXPECT_THAT(ParseError({"put", "--json=yes"}), HasSubstr("takes no value"));
  EXPECT_THAT(ParseError({"put", "--conns", "2", "--conns", "3"}), HasSubstr("given twice"));
  EXPECT_THAT(ParseError({"put", "extra"}), HasSubstr("unexpected argument 'extra'"));
  EXPECT_THAT(ParseError({"put", "--endpoints", "localhost"}), HasSubstr("not host:port"));
  EXPECT_THAT(ParseError({"range", "--consistency", "strong"}),
              HasSubstr("not linearizable or serializable"));
  EXPECT_THAT(ParseError({"put", "--metadata", "novalue"}), HasSubstr("not k=v"));
  EXPECT_THAT(ParseError({"put", "--metadata", "Upper=1"}), HasSubstr("metadata key"));
  EXPECT_THAT(ParseError({"mixed", "--read-ratio", "1.5"}), HasSubstr("--read-ratio"));
}

TEST(BenchOptionsTest, KeySizeMustHoldTheKeySpace) {
  // "bench/" + 5 digits for keys 0..99999.
  EXPECT_EQ(MustParse({"put", "--key-size", "11", "--key-space", "100000"}).key_size, 11);
  EXPECT_THAT(ParseError({"put", "--key-size", "10", "--key-space", "100000"}),
              HasSubstr("need 11"));
  EXPECT_EQ(
      MustParse({"put", "--key-size", "5", "--key-space", "100000", "--key-prefix", ""}).key_size,
      5);
}

TEST(BenchOptionsTest, HelpIsNotAnError) {
  auto parsed = Parse({"--help"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help);
  EXPECT_THAT(parsed->help_text, HasSubstr("txn-put"));
  parsed = Parse({"put", "-h"});
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->help);
}

// --help comes from the flag declarations (cxxopts), so it names every flag.
TEST(BenchOptionsTest, HelpNamesEveryFlagAndWorkload) {
  const std::string help = UsageText();
  for (const char* flag :
       {"--endpoints", "--conns", "--clients", "--threads", "--total", "--duration", "--warmup",
        "--rate", "--timeout", "--connect-timeout", "--transport", "--key-size", "--val-size",
        "--key-space", "--sequential-keys", "--key-prefix", "--consistency", "--metadata",
        "--read-ratio", "--watchers", "--streams", "--watch-grace", "--lease-ttl", "--dir",
        "--writers", "--batch-size", "--json", "--progress", "--no-progress", "--help"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  for (const char* workload :
       {"put", "range", "txn-put", "mixed", "watch", "lease", "rocksdb-sync", "grpc-empty"}) {
    EXPECT_THAT(help, HasSubstr(absl::StrCat("\n  ", workload, " ")));
  }
  for (absl::string_view line : absl::StrSplit(help, '\n')) {
    EXPECT_LE(line.size(), 100u) << line;
  }
}

TEST(BenchOptionsTest, SwitchesTakeTrueOrFalse) {
  EXPECT_TRUE(MustParse({"put", "--json=true"}).json);
  EXPECT_FALSE(MustParse({"put", "--json=false"}).json);
  EXPECT_EQ(ParseError({"put", "--progress=yes"}),
            "--progress: takes no value (or =true, =false), got 'yes'");
}

TEST(BenchOptionsTest, ValuesMayLookLikeFlagsOrBeEmpty) {
  EXPECT_THAT(ParseError({"put", "--key-size", "-1"}), HasSubstr("--key-size: -1 is out of range"));
  EXPECT_EQ(MustParse({"put", "--key-prefix", "", "--key-size", "5", "--key-space", "10"})
                .key_prefix,
            "");
  EXPECT_EQ(MustParse({"put", "--key-prefix=--x", "--key-size", "8"}).key_prefix, "--x");
  EXPECT_THAT(ParseError({"put", "-x"}), HasSubstr("unexpected argument '-x'"));
  EXPECT_THAT(ParseError({"put", "--nope=3"}), HasSubstr("unknown flag --nope"));
}

TEST(BenchOptionsTest, Durations) {
  EXPECT_EQ(*ParseDuration("10"), 10'000'000'000);
  EXPECT_EQ(*ParseDuration("10s"), 10'000'000'000);
  EXPECT_EQ(*ParseDuration("250ms"), 250'000'000);
  EXPECT_EQ(*ParseDuration("2m"), 120'000'000'000);
  EXPECT_EQ(*ParseDuration("3us"), 3'000);
  EXPECT_EQ(*ParseDuration("1h30m"), 5'400'000'000'000);
  EXPECT_EQ(*ParseDuration("1.5"), 1'500'000'000);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
}

}  // namespace
}  // namespace geoetcd::bench
