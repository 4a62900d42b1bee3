#include "bench/options.h"

#include <cmath>
#include <functional>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "cxxopts.hpp"
#include "gateway/go_duration.h"

namespace geoetcd::bench {
namespace {

struct WorkloadEntry {
  const char* name;
  Workload workload;
};

constexpr WorkloadEntry kWorkloads[] = {
    {"put", Workload::kPut},
    {"range", Workload::kRange},
    {"txn-put", Workload::kTxnPut},
    {"mixed", Workload::kMixed},
    {"watch", Workload::kWatch},
    {"lease", Workload::kLease},
    {"rocksdb-sync", Workload::kRocksDbSync},
    {"grpc-empty", Workload::kGrpcEmpty},
};

constexpr uint64_t kDefaultTotal = 10'000;
constexpr uint64_t kDefaultWatchPuts = 500;
constexpr double kDefaultWatchRate = 100;
// Bounds that keep a typo from allocating the machine away.
constexpr int kMaxClients = 1'000'000;
constexpr int kMaxConns = 10'000;
constexpr int kMaxThreads = 256;
constexpr int kMaxKeySize = 1 << 20;
constexpr int kMaxValSize = 64 << 20;
constexpr uint64_t kMaxKeySpace = uint64_t{1} << 32;
// Every value of the watch workload starts with its send time (8 bytes).
constexpr int kWatchStampBytes = 8;
constexpr int kHelpColumns = 100;

constexpr char kIntro[] =
    R"(Load generator for any etcd v3 endpoint (geoetcd or etcd), plus two machine floors.

workloads:
  put            unary Put of --val-size values
  range          unary Range of one key (preload keys with a put run first)
  txn-put        compare-and-swap: Txn(mod_revision == last seen) then Put; a failed
                 compare refreshes the revision and retries the same key
  mixed          --read-ratio ranges, the rest puts
  watch          --watchers watchers over --streams streams on the key prefix, one writer
                 putting at --rate; latency = put send to event receipt, every watcher
  lease          LeaseGrant per client, then LeaseKeepAlive round trips on a stream
  rocksdb-sync   floor: synced RocksDB WriteBatch writes in --dir (no server)
  grpc-empty     floor: empty unary RPCs to an in-process gRPC server on loopback

Durations are Go's (10s, 500ms, 2m, 1h30m); a bare number is seconds.
)";

absl::Status Bad(const std::string& flag, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", what));
}

absl::StatusOr<int64_t> ParseInt(const std::string& flag, const std::string& text, int64_t min,
                                 int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return Bad(flag, absl::StrCat("not an integer: '", text, "'"));
  if (v < min || v > max) {
    return Bad(flag, absl::StrCat(text, " is out of range [", min, ", ", max, "]"));
  }
  return v;
}

absl::StatusOr<double> ParseDouble(const std::string& flag, const std::string& text, double min,
                                   double max) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v)) {
    return Bad(flag, absl::StrCat("not a number: '", text, "'"));
  }
  if (v < min || v > max) {
    return Bad(flag, absl::StrCat(text, " is out of range [", min, ", ", max, "]"));
  }
  return v;
}

int DecimalDigits(uint64_t v) {
  int digits = 1;
  while (v >= 10) {
    v /= 10;
    ++digits;
  }
  return digits;
}

bool ValidMetadataKey(const std::string& key) {
  if (key.empty()) return false;
  for (char c : key) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Which of the flags that change each other's defaults were given.
struct Given {
  bool total = false;
  bool duration = false;
  bool rate = false;
};

using Setter = std::function<absl::Status(const std::string& flag, const std::string& value)>;

// A flag with a value: declared to cxxopts (name, placeholder, help) and applied by `set`.
struct ValuedFlag {
  const char* group;
  const char* name;
  const char* arg;
  const char* help;
  Setter set;
};

// A flag without a value (cxxopts also takes --name=true and --name=false).
struct Switch {
  const char* group;
  const char* name;
  const char* help;
  bool BenchOptions::*field;
};

constexpr char kLoad[] = "load";
constexpr char kKeys[] = "keys and values";
constexpr char kRange[] = "range and mixed";
constexpr char kWatch[] = "watch";
constexpr char kLease[] = "lease";
constexpr char kRocksDb[] = "rocksdb-sync";
constexpr char kOutput[] = "output";
// The --help sections, in this order.
std::vector<std::string> HelpGroups() {
  return {kLoad, kKeys, kRange, kWatch, kLease, kRocksDb, kOutput};
}

constexpr Switch kSwitches[] = {
    {kKeys, "sequential-keys", "walk the key space in order instead of uniformly at random",
     &BenchOptions::sequential_keys},
    {kOutput, "json", "one JSON object on stdout", &BenchOptions::json},
    {kOutput, "progress", "progress bar on stderr (default: when stderr is a terminal)",
     &BenchOptions::progress},
    {kOutput, "no-progress", "no progress bar, even on a terminal", &BenchOptions::no_progress},
};

Setter IntFlag(int* field, int64_t min, int64_t max) {
  return [=](const std::string& flag, const std::string& v) -> absl::Status {
    auto n = ParseInt(flag, v, min, max);
    if (!n.ok()) return n.status();
    *field = static_cast<int>(*n);
    return absl::OkStatus();
  };
}

Setter DurationFlag(int64_t* field_ns, bool allow_zero, bool* given = nullptr) {
  return [=](const std::string& flag, const std::string& v) -> absl::Status {
    if (given != nullptr) *given = true;
    auto d = ParseDuration(v);
    if (!d.ok()) return Bad(flag, std::string(d.status().message()));
    if (*d == 0 && !allow_zero) return Bad(flag, "must be greater than zero");
    *field_ns = *d;
    return absl::OkStatus();
  };
}

absl::Status SetEndpoints(const std::string& flag, const std::string& v, BenchOptions* o) {
  o->endpoints.clear();
  for (absl::string_view e : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
    e = absl::StripAsciiWhitespace(e);
    absl::ConsumePrefix(&e, "http://");
    const size_t colon = e.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == e.size()) {
      return Bad(flag, absl::StrCat("'", e, "' is not host:port"));
    }
    o->endpoints.emplace_back(e);
  }
  if (o->endpoints.empty()) return Bad(flag, "no endpoint given");
  return absl::OkStatus();
}

absl::Status SetMetadata(const std::string& flag, const std::string& v, BenchOptions* o) {
  const size_t eq = v.find('=');
  if (eq == std::string::npos) return Bad(flag, absl::StrCat("'", v, "' is not k=v"));
  std::string key = v.substr(0, eq);
  if (!ValidMetadataKey(key)) {
    return Bad(flag,
               absl::StrCat("'", key, "' is not a gRPC metadata key (lowercase a-z 0-9 - _ .)"));
  }
  o->metadata.emplace_back(std::move(key), v.substr(eq + 1));
  return absl::OkStatus();
}

std::vector<ValuedFlag> LoadFlags(BenchOptions* o, Given* given) {
  return {
      {kLoad, "endpoints", "host:port[,host:port...]",
       "(default 127.0.0.1:2379; http:// is accepted)",
       [o](const std::string& f, const std::string& v) { return SetEndpoints(f, v, o); }},
      {kLoad, "conns", "N", "distinct gRPC channels, each its own TCP connection (default 1)",
       IntFlag(&o->conns, 1, kMaxConns)},
      {kLoad, "clients", "N", "concurrently outstanding requests over the conns (default 1)",
       IntFlag(&o->clients, 1, kMaxClients)},
      {kLoad, "threads", "N", "completion-queue threads of this process (default 1)",
       IntFlag(&o->threads, 1, kMaxThreads)},
      {kLoad, "total", "N", "requests to measure (default 10000; watch: writer puts, 500)",
       [o, given](const std::string& f, const std::string& v) -> absl::Status {
         auto n = ParseInt(f, v, 1, INT64_MAX);
         if (!n.ok()) return n.status();
         o->total = static_cast<uint64_t>(*n);
         given->total = true;
         return absl::OkStatus();
       }},
      {kLoad, "duration", "D", "measure for D instead (10s, 500ms, 2m); excludes --total",
       DurationFlag(&o->duration_ns, false, &given->duration)},
      {kLoad, "warmup", "D", "run the load for D before measuring",
       DurationFlag(&o->warmup_ns, true)},
      {kLoad, "rate", "R", "requests/s over all clients, 0 = unlimited (watch: writer, 100)",
       [o, given](const std::string& f, const std::string& v) -> absl::Status {
         auto r = ParseDouble(f, v, 0, 1e9);
         if (!r.ok()) return r.status();
         o->rate = *r;
         given->rate = true;
         return absl::OkStatus();
       }},
      {kLoad, "timeout", "D", "per-RPC deadline (default 30s; 0 = none, slightly cheaper)",
       DurationFlag(&o->timeout_ns, true)},
      {kLoad, "connect-timeout", "D", "fail when an endpoint does not connect in D (default 5s)",
       DurationFlag(&o->connect_timeout_ns, false)},
      {kLoad, "transport", "grpc|h2",
       "put, range, txn-put, mixed: gRPC C++'s client (default) or the bench's own lean "
       "HTTP/2 client, which leaves the server more CPU; with h2 each thread owns its conns, "
       "so threads <= conns",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         if (v == "grpc") {
           o->transport = Transport::kGrpc;
         } else if (v == "h2") {
           o->transport = Transport::kH2;
         } else {
           return Bad(f, absl::StrCat("'", v, "' is not grpc or h2"));
         }
         return absl::OkStatus();
       }},
  };
}

std::vector<ValuedFlag> KeyAndReadFlags(BenchOptions* o) {
  return {
      {kKeys, "key-size", "N", "key bytes including the prefix (default 32)",
       IntFlag(&o->key_size, 1, kMaxKeySize)},
      {kKeys, "val-size", "N", "value bytes, random and incompressible (default 256)",
       IntFlag(&o->val_size, 1, kMaxValSize)},
      {kKeys, "key-space", "N", "distinct keys (default 10000)",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         auto n = ParseInt(f, v, 1, static_cast<int64_t>(kMaxKeySpace));
         if (!n.ok()) return n.status();
         o->key_space = static_cast<uint64_t>(*n);
         return absl::OkStatus();
       }},
      {kKeys, "key-prefix", "P", "(default bench/)",
       [o](const std::string& f, const std::string& v) {
         o->key_prefix = v;
         return absl::OkStatus();
       }},
      {kRange, "consistency", "linearizable|serializable",
       "(default linearizable; l and s also work)",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         if (v == "linearizable" || v == "l") {
           o->serializable = false;
         } else if (v == "serializable" || v == "s") {
           o->serializable = true;
         } else {
           return Bad(f, absl::StrCat("'", v, "' is not linearizable or serializable"));
         }
         return absl::OkStatus();
       }},
      {kRange, "metadata", "k=v",
       "gRPC metadata on every RPC (repeatable), e.g. for consistency levels chosen by "
       "metadata",
       [o](const std::string& f, const std::string& v) { return SetMetadata(f, v, o); }},
      {kRange, "read-ratio", "F", "mixed: fraction of ranges (default 0.9)",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         auto r = ParseDouble(f, v, 0, 1);
         if (!r.ok()) return r.status();
         o->read_ratio = *r;
         return absl::OkStatus();
       }},
  };
}

std::vector<ValuedFlag> WorkloadFlags(BenchOptions* o) {
  return {
      {kWatch, "watchers", "N", "(default 100)", IntFlag(&o->watchers, 1, kMaxClients)},
      {kWatch, "streams", "N", "(default 10)", IntFlag(&o->streams, 1, kMaxClients)},
      {kWatch, "watch-grace", "D", "wait this long for the last events (default 10s)",
       DurationFlag(&o->watch_grace_ns, true)},
      {kLease, "lease-ttl", "S", "(default 30)",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         auto n = ParseInt(f, v, 1, 1'000'000);
         if (!n.ok()) return n.status();
         o->lease_ttl_s = *n;
         return absl::OkStatus();
       }},
      {kRocksDb, "dir", "PATH", "(default a fresh temp dir)",
       [o](const std::string& f, const std::string& v) -> absl::Status {
         if (v.empty()) return Bad(f, "empty path");
         o->dir = v;
         return absl::OkStatus();
       }},
      {kRocksDb, "writers", "N", "(default 1)", IntFlag(&o->writers, 1, kMaxThreads)},
      {kRocksDb, "batch-size", "N", "keys per synced batch (default 1)",
       IntFlag(&o->batch_size, 1, 1'000'000)},
  };
}

std::vector<ValuedFlag> ValuedFlags(BenchOptions* o, Given* given) {
  std::vector<ValuedFlag> flags = LoadFlags(o, given);
  for (auto* group : {&KeyAndReadFlags, &WorkloadFlags}) {
    std::vector<ValuedFlag> more = (*group)(o);
    flags.insert(flags.end(), more.begin(), more.end());
  }
  return flags;
}

// Every flag declared to cxxopts, which reads the command line and writes --help from
// these declarations.
cxxopts::Options DeclareFlags(const std::vector<ValuedFlag>& valued) {
  cxxopts::Options options("geoetcd-bench", kIntro);
  options.custom_help("<workload> [flags]");
  options.set_width(kHelpColumns);
  // Unknown flags and stray arguments come back in unmatched(), reported in our words.
  options.allow_unrecognised_options();
  for (const ValuedFlag& flag : valued) {
    options.add_options(flag.group)(flag.name, flag.help, cxxopts::value<std::string>(), flag.arg);
  }
  for (const Switch& s : kSwitches) options.add_options(s.group)(s.name, s.help);
  options.add_options(kOutput)("h,help", "this help");
  return options;
}

bool IsSwitch(absl::string_view name) {
  for (const Switch& s : kSwitches) {
    if (name == s.name) return true;
  }
  return false;
}

// cxxopts could not read a switch's value as a bool: names the first switch given one.
absl::Status SwitchValueError(int argc, const char* const* argv, const std::string& what) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::ConsumePrefix(&arg, "--")) continue;
    std::vector<std::string> name_value = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    if (name_value.size() == 2 && IsSwitch(name_value[0]) && name_value[1] != "true" &&
        name_value[1] != "false") {
      return Bad(name_value[0],
                 absl::StrCat("takes no value (or =true, =false), got '", name_value[1], "'"));
    }
  }
  return absl::InvalidArgumentError(what);
}

absl::Status Unexpected(const std::string& arg) {
  if (absl::StartsWith(arg, "--") && arg.size() > 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag --", arg.substr(2, arg.find('=') - 2)));
  }
  return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
}

// Applies the flags in command-line order; argv[0] is the workload.
absl::Status ParseFlags(int argc, const char* const* argv, ParsedCommand* out, Given* given) {
  const std::vector<ValuedFlag> valued = ValuedFlags(&out->options, given);
  cxxopts::Options declared = DeclareFlags(valued);
  cxxopts::ParseResult result;
  try {
    result = declared.parse(argc, argv);
  } catch (const cxxopts::exceptions::missing_argument&) {
    // cxxopts reports a missing value only for the last argument.
    absl::string_view last = argv[argc - 1];
    while (absl::ConsumePrefix(&last, "-")) {
    }
    return Bad(std::string(last), "needs a value");
  } catch (const cxxopts::exceptions::incorrect_argument_type& e) {
    return SwitchValueError(argc, argv, e.what());  // Only switches have a typed value.
  } catch (const cxxopts::exceptions::exception& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (result.count("help") > 0) {
    out->help = true;
    out->help_text = declared.help(HelpGroups());
    return absl::OkStatus();
  }
  if (!result.unmatched().empty()) return Unexpected(result.unmatched().front());
  std::set<std::string> seen;
  for (const cxxopts::KeyValue& arg : result.arguments()) {
    const std::string& name = arg.key();
    if (IsSwitch(name)) {
      for (const Switch& s : kSwitches) {
        if (name == s.name) out->options.*s.field = arg.as<bool>();
      }
      continue;
    }
    if (name != "metadata" && !seen.insert(name).second) return Bad(name, "given twice");
    for (const ValuedFlag& flag : valued) {
      if (name != flag.name) continue;
      if (absl::Status s = flag.set(name, arg.value()); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// What one flag's value means for another, once all are read.
absl::Status CheckCombination(const Given& given, BenchOptions* o) {
  if (given.total && given.duration) {
    return absl::InvalidArgumentError("--total and --duration exclude each other; give one");
  }
  const bool watch = o->workload == Workload::kWatch;
  if (!given.total && !given.duration) o->total = watch ? kDefaultWatchPuts : kDefaultTotal;
  if (watch && !given.rate) o->rate = kDefaultWatchRate;
  if (watch && o->rate == 0) return Bad("rate", "the watch writer needs a rate above 0");
  if (watch && o->streams > o->watchers) {
    return Bad("streams", absl::StrCat(o->streams, " streams for ", o->watchers,
                                       " watchers: want at most one stream per watcher"));
  }
  if (watch && o->val_size < kWatchStampBytes) {
    return Bad("val-size", absl::StrCat("watch needs at least ", kWatchStampBytes,
                                        " bytes to carry the send time"));
  }
  if (o->transport == Transport::kH2 && o->workload != Workload::kPut &&
      o->workload != Workload::kRange && o->workload != Workload::kTxnPut &&
      o->workload != Workload::kMixed) {
    return Bad("transport", absl::StrCat("h2 runs only put, range, txn-put and mixed; ",
                                         WorkloadName(o->workload), " needs --transport grpc"));
  }
  if (o->no_progress) o->progress = false;
  const int needed = static_cast<int>(o->key_prefix.size()) + DecimalDigits(o->key_space - 1);
  if (o->key_size < needed) {
    return Bad("key-size", absl::StrCat(o->key_size, " bytes cannot hold prefix '", o->key_prefix,
                                        "' and ", o->key_space, " distinct keys; need ", needed,
                                        " (or a shorter --key-prefix)"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* WorkloadName(Workload w) {
  for (const auto& e : kWorkloads) {
    if (e.workload == w) return e.name;
  }
  return "?";
}

const char* TransportName(Transport t) { return t == Transport::kH2 ? "h2" : "grpc"; }

absl::StatusOr<int64_t> ParseDuration(const std::string& text) {
  double seconds = 0;
  absl::StatusOr<absl::Duration> duration = absl::InvalidArgumentError("");
  if (absl::SimpleAtod(text, &seconds) && std::isfinite(seconds)) {
    duration = absl::Seconds(seconds);  // The bench's own shorthand: a bare number is seconds.
  } else {
    duration = ParseGoDuration(text);
  }
  if (!duration.ok() || *duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a duration: '", text, "' (use e.g. 10s, 500ms, 2m)"));
  }
  if (*duration > absl::Nanoseconds(9'000'000'000'000'000'000)) {
    return absl::InvalidArgumentError(absl::StrCat("duration too long: ", text));
  }
  return absl::ToInt64Nanoseconds(*duration);
}

std::string UsageText() {
  BenchOptions unused;
  Given given;
  return DeclareFlags(ValuedFlags(&unused, &given)).help(HelpGroups());
}

absl::StatusOr<ParsedCommand> ParseCommandLine(int argc, const char* const* argv) {
  ParsedCommand out;
  if (argc < 2) {
    return absl::InvalidArgumentError(
        "missing workload (put, range, txn-put, mixed, watch, "
        "lease, rocksdb-sync, grpc-empty)");
  }
  const std::string workload = argv[1];
  if (workload == "help" || workload == "-h" || workload == "--help") {
    out.help = true;
    out.help_text = UsageText();
    return out;
  }
  bool known = false;
  for (const auto& e : kWorkloads) {
    if (workload == e.name) {
      out.options.workload = e.workload;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown workload '", workload,
                     "' (want put, range, txn-put, mixed, watch, lease, rocksdb-sync, "
                     "grpc-empty)"));
  }
  Given given;
  absl::Status status = ParseFlags(argc - 1, argv + 1, &out, &given);
  if (status.ok() && !out.help) status = CheckCombination(given, &out.options);
  if (!status.ok()) return status;
  return out;
}

}  // namespace geoetcd::bench
