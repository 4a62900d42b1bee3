#include "bench/options.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
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
  return R"(usage: geoetcd-bench <workload> [flags]

Load generator for any etcd v3 endpoint (geoetcd or etcd), plus two machine floors.

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

load:
  --endpoints host:port[,host:port...]  (default 127.0.0.1:2379; http:// is accepted)
  --conns N              distinct gRPC channels, each its own TCP connection (default 1)
  --clients N            concurrently outstanding requests over the conns (default 1)
  --threads N            completion-queue threads of this process (default 1)
  --total N              requests to measure (default 10000; watch: writer puts, 500)
  --duration D           measure for D instead (10s, 500ms, 2m); excludes --total
  --warmup D             run the load for D before measuring
  --rate R               requests/s over all clients, 0 = unlimited (watch: writer, 100)
  --timeout D            per-RPC deadline (default 30s; 0 = none, slightly cheaper)
  --connect-timeout D    fail when an endpoint does not connect in D (default 5s)
  --transport grpc|h2    put, range, txn-put, mixed: gRPC C++'s client (default) or the
                         bench's own lean HTTP/2 client, which leaves the server more CPU;
                         with h2 each thread owns its conns, so threads <= conns

keys and values:
  --key-size N           key bytes including the prefix (default 32)
  --val-size N           value bytes, random and incompressible (default 256)
  --key-space N          distinct keys (default 10000)
  --sequential-keys      walk the key space in order instead of uniformly at random
  --key-prefix P         (default bench/)

range and mixed:
  --consistency linearizable|serializable   (default linearizable; l and s also work)
  --metadata k=v         gRPC metadata on every RPC (repeatable), e.g. for consistency
                         levels chosen by metadata
  --read-ratio F         mixed: fraction of ranges (default 0.9)

watch:  --watchers N (default 100)  --streams N (default 10)  --watch-grace D (default 10s)
lease:  --lease-ttl S (default 30)
rocksdb-sync:  --dir PATH (default a fresh temp dir)  --writers N (default 1)
               --batch-size N keys per synced batch (default 1)

output:
  --json                 one JSON object on stdout
  --progress / --no-progress   progress bar on stderr (default: when stderr is a terminal)
)";
}

absl::StatusOr<ParsedCommand> ParseCommandLine(int argc, const char* const* argv) {
  ParsedCommand out;
  BenchOptions& o = out.options;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "missing workload (put, range, txn-put, mixed, watch, "
        "lease, rocksdb-sync, grpc-empty)");
  }
  if (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
    out.help = true;
    out.help_text = UsageText();
    return out;
  }
  bool known = false;
  for (const auto& e : kWorkloads) {
    if (args[0] == e.name) {
      o.workload = e.workload;
      known = true;
    }
  }
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown workload '", args[0],
                     "' (want put, range, txn-put, mixed, watch, lease, rocksdb-sync, "
                     "grpc-empty)"));
  }

  bool total_set = false;
  bool duration_set = false;
  bool rate_set = false;
  using Setter = std::function<absl::Status(const std::string& flag, const std::string& value)>;
  auto int_flag = [](int* field, int64_t min, int64_t max) -> Setter {
    return [=](const std::string& flag, const std::string& v) -> absl::Status {
      auto n = ParseInt(flag, v, min, max);
      if (!n.ok()) return n.status();
      *field = static_cast<int>(*n);
      return absl::OkStatus();
    };
  };
  auto duration_flag = [](int64_t* field, bool allow_zero) -> Setter {
    return [=](const std::string& flag, const std::string& v) -> absl::Status {
      auto d = ParseDuration(v);
      if (!d.ok()) return Bad(flag, std::string(d.status().message()));
      if (*d == 0 && !allow_zero) return Bad(flag, "must be greater than zero");
      *field = *d;
      return absl::OkStatus();
    };
  };

  const std::map<std::string, Setter> valued = {
      {"endpoints",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         o.endpoints.clear();
         for (absl::string_view e : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
           e = absl::StripAsciiWhitespace(e);
           absl::ConsumePrefix(&e, "http://");
           const size_t colon = e.rfind(':');
           if (colon == absl::string_view::npos || colon == 0 || colon + 1 == e.size()) {
             return Bad(flag, absl::StrCat("'", e, "' is not host:port"));
           }
           o.endpoints.emplace_back(e);
         }
         if (o.endpoints.empty()) return Bad(flag, "no endpoint given");
         return absl::OkStatus();
       }},
      {"conns", int_flag(&o.conns, 1, kMaxConns)},
      {"clients", int_flag(&o.clients, 1, kMaxClients)},
      {"threads", int_flag(&o.threads, 1, kMaxThreads)},
      {"total",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         auto n = ParseInt(flag, v, 1, INT64_MAX);
         if (!n.ok()) return n.status();
         o.total = static_cast<uint64_t>(*n);
         total_set = true;
         return absl::OkStatus();
       }},
      {"duration",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         duration_set = true;
         return duration_flag(&o.duration_ns, false)(flag, v);
       }},
      {"warmup", duration_flag(&o.warmup_ns, true)},
      {"timeout", duration_flag(&o.timeout_ns, true)},
      {"connect-timeout", duration_flag(&o.connect_timeout_ns, false)},
      {"watch-grace", duration_flag(&o.watch_grace_ns, true)},
      {"transport",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         if (v == "grpc") {
           o.transport = Transport::kGrpc;
         } else if (v == "h2") {
           o.transport = Transport::kH2;
         } else {
           return Bad(flag, absl::StrCat("'", v, "' is not grpc or h2"));
         }
         return absl::OkStatus();
       }},
      {"rate",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         auto r = ParseDouble(flag, v, 0, 1e9);
         if (!r.ok()) return r.status();
         o.rate = *r;
         rate_set = true;
         return absl::OkStatus();
       }},
      {"key-size", int_flag(&o.key_size, 1, kMaxKeySize)},
      {"val-size", int_flag(&o.val_size, 1, kMaxValSize)},
      {"key-space",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         auto n = ParseInt(flag, v, 1, static_cast<int64_t>(kMaxKeySpace));
         if (!n.ok()) return n.status();
         o.key_space = static_cast<uint64_t>(*n);
         return absl::OkStatus();
       }},
      {"key-prefix",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         o.key_prefix = v;
         return absl::OkStatus();
       }},
      {"consistency",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         if (v == "linearizable" || v == "l") {
           o.serializable = false;
         } else if (v == "serializable" || v == "s") {
           o.serializable = true;
         } else {
           return Bad(flag, absl::StrCat("'", v, "' is not linearizable or serializable"));
         }
         return absl::OkStatus();
       }},
      {"metadata",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         const size_t eq = v.find('=');
         if (eq == std::string::npos) return Bad(flag, absl::StrCat("'", v, "' is not k=v"));
         std::string key = v.substr(0, eq);
         if (!ValidMetadataKey(key)) {
           return Bad(flag, absl::StrCat("'", key,
                                         "' is not a gRPC metadata key (lowercase a-z 0-9 - _ .)"));
         }
         o.metadata.emplace_back(std::move(key), v.substr(eq + 1));
         return absl::OkStatus();
       }},
      {"read-ratio",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         auto r = ParseDouble(flag, v, 0, 1);
         if (!r.ok()) return r.status();
         o.read_ratio = *r;
         return absl::OkStatus();
       }},
      {"watchers", int_flag(&o.watchers, 1, kMaxClients)},
      {"streams", int_flag(&o.streams, 1, kMaxClients)},
      {"lease-ttl",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         auto n = ParseInt(flag, v, 1, 1'000'000);
         if (!n.ok()) return n.status();
         o.lease_ttl_s = *n;
         return absl::OkStatus();
       }},
      {"dir",
       [&](const std::string& flag, const std::string& v) -> absl::Status {
         if (v.empty()) return Bad(flag, "empty path");
         o.dir = v;
         return absl::OkStatus();
       }},
      {"writers", int_flag(&o.writers, 1, kMaxThreads)},
      {"batch-size", int_flag(&o.batch_size, 1, 1'000'000)},
  };
  const std::map<std::string, bool*> booleans = {
      {"sequential-keys", &o.sequential_keys},
      {"json", &o.json},
      {"progress", &o.progress},
      {"no-progress", &o.no_progress},
  };

  std::set<std::string> seen;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      out.help_text = UsageText();
      return out;
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (auto b = booleans.find(name); b != booleans.end()) {
      if (has_value) return Bad(name, "takes no value");
      *b->second = true;
      continue;
    }
    auto setter = valued.find(name);
    if (setter == valued.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return Bad(name, "needs a value");
      value = args[++i];
    }
    if (name != "metadata" && !seen.insert(name).second) return Bad(name, "given twice");
    if (absl::Status s = setter->second(name, value); !s.ok()) return s;
  }

  if (total_set && duration_set) {
    return absl::InvalidArgumentError("--total and --duration exclude each other; give one");
  }
  const bool watch = o.workload == Workload::kWatch;
  if (!total_set && !duration_set) o.total = watch ? kDefaultWatchPuts : kDefaultTotal;
  if (watch && !rate_set) o.rate = kDefaultWatchRate;
  if (watch && o.rate == 0) return Bad("rate", "the watch writer needs a rate above 0");
  if (watch && o.streams > o.watchers) {
    return Bad("streams", absl::StrCat(o.streams, " streams for ", o.watchers,
                                       " watchers: want at most one stream per watcher"));
  }
  if (watch && o.val_size < kWatchStampBytes) {
    return Bad("val-size", absl::StrCat("watch needs at least ", kWatchStampBytes,
                                        " bytes to carry the send time"));
  }
  if (o.transport == Transport::kH2 && o.workload != Workload::kPut &&
      o.workload != Workload::kRange && o.workload != Workload::kTxnPut &&
      o.workload != Workload::kMixed) {
    return Bad("transport", absl::StrCat("h2 runs only put, range, txn-put and mixed; ",
                                         WorkloadName(o.workload), " needs --transport grpc"));
  }
  if (o.no_progress) o.progress = false;
  const int needed = static_cast<int>(o.key_prefix.size()) + DecimalDigits(o.key_space - 1);
  if (o.key_size < needed) {
    return Bad("key-size", absl::StrCat(o.key_size, " bytes cannot hold prefix '", o.key_prefix,
                                        "' and ", o.key_space, " distinct keys; need ", needed,
                                        " (or a shorter --key-prefix)"));
  }
  return out;
}

}  // namespace geoetcd::bench
