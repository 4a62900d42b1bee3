// geoetcd-sim: runs the deterministic simulator for one seed (or a range of seeds) and
// prints a verdict. See docs/simulation.md.
//
//   geoetcd-sim --seed N [--ops N] [--clients N] [--watchers N] [--regions N]
//               [--faults none|crash|network|disk|all] [--inject-bug NAME]
//               [--buggify seed|on|off] [--replay] [--history-dir DIR] [--no-invariants]
//               [--no-leases]
//   geoetcd-sim --seeds A..B [same options]      (a sweep; one summary line at the end)
//
// The last line of a single run is exactly
//   seed=<n> ops=<n> events=<n> sim_seconds=<x> hash=<16 hex> result=ok
// or result=violation:<checker> (exit status 1). Usage errors exit with status 2.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cxxopts.hpp"
#include "sim/simulation.h"

namespace {

using geoetcd::sim::BuggifyMode;
using geoetcd::sim::FaultProfile;
using geoetcd::sim::SimConfig;
using geoetcd::sim::SimProgress;
using geoetcd::sim::SimResult;

constexpr int kExitViolation = 1;
constexpr int kExitUsage = 2;

struct Options {
  SimConfig config;
  uint64_t seed_first = 1;
  uint64_t seed_last = 1;
  bool sweep = false;
  std::string history_dir = "/tmp";
  std::string bug = "none";
  std::string buggify = "seed";
};

constexpr char kIntro[] =
    "Deterministic simulation of geoetcd: one seed (--seed) or a sweep (--seeds A..B).\n"
    "See docs/simulation.md.";

// Every flag, declared once: cxxopts reads the command line and writes the usage from these.
cxxopts::Options DeclareFlags() {
  cxxopts::Options options("geoetcd-sim", kIntro);
  options.custom_help("(--seed N | --seeds A..B) [flags]");
  options.set_width(100);
  // Unknown flags and stray arguments come back in unmatched(), reported in our words.
  options.allow_unrecognised_options();
  const auto value = [] { return cxxopts::value<std::string>(); };
  // clang-format off
  options.add_options()
      ("seed", "run one seed", value(), "N")
      ("seeds", "run every seed from A to B, one summary line at the end", value(), "A..B")
      ("ops", "client operations per run (default 2000)", value(), "N")
      ("clients", "KV clients (default 8)", value(), "N")
      ("watchers", "watch clients, besides the KV clients (default 3)", value(), "N")
      ("regions", "regions, each a Node (default 1)", value(), "N")
      ("faults", "fault profile: none|crash|network|disk|all (default none)", value(),
       "PROFILE")
      ("inject-bug", "run with a known bug switched on (see the list below)", value(), "NAME")
      ("buggify", "BUGGIFY sites: seed (chosen per seed), on or off (default seed)", value(),
       "MODE")
      ("replay", "print the run's trace")
      ("history-dir", "where a violating run's history is written (default /tmp)", value(),
       "DIR")
      ("no-invariants", "skip the components' CheckInvariants()")
      ("no-leases", "no lease requests in the clients' mix")
      ("h,help", "this help");
  // clang-format on
  return options;
}

void Usage(const char* why) {
  std::string bugs = "bugs: none";
  for (const std::string& b : geoetcd::sim::InjectedBugNames()) absl::StrAppend(&bugs, ", ", b);
  std::fprintf(stderr, "geoetcd-sim: %s\n%s\n%s\n", why, DeclareFlags().help().c_str(),
               bugs.c_str());
}

template <typename T>
bool ParseNumber(const std::string& text, T* out) {
  return absl::SimpleAtoi(text, out);
}

// Applies one flag's value; false when the value is bad. An --inject-bug the simulator does
// not know is reported here and ends the run with kExitUsage through *exit_status.
bool ApplyFlag(const std::string& flag, const std::string& v, Options* o, int* exit_status) {
  if (flag == "seed") {
    const bool ok = ParseNumber(v, &o->seed_first);
    o->seed_last = o->seed_first;
    return ok;
  }
  if (flag == "seeds") {
    std::vector<std::string> parts = absl::StrSplit(v, "..");
    o->sweep = true;
    return parts.size() == 2 && absl::SimpleAtoi(parts[0], &o->seed_first) &&
           absl::SimpleAtoi(parts[1], &o->seed_last) && o->seed_first <= o->seed_last;
  }
  if (flag == "ops") return ParseNumber(v, &o->config.ops);
  if (flag == "clients") return ParseNumber(v, &o->config.clients);
  if (flag == "watchers") return ParseNumber(v, &o->config.watchers);
  if (flag == "regions") return ParseNumber(v, &o->config.regions);
  if (flag == "faults") return geoetcd::sim::ParseFaultProfile(v, &o->config.faults);
  if (flag == "inject-bug") {
    o->bug = v;
    absl::Status s = geoetcd::sim::ParseInjectedBug(v, &o->config.bugs);
    if (!s.ok()) {
      std::fprintf(stderr, "geoetcd-sim: %s\n", std::string(s.message()).c_str());
      *exit_status = kExitUsage;
    }
    return true;
  }
  if (flag == "buggify") {
    o->buggify = v;
    if (v == "seed") {
      o->config.buggify = BuggifyMode::kSeed;
    } else if (v == "on") {
      o->config.buggify = BuggifyMode::kOn;
    } else if (v == "off") {
      o->config.buggify = BuggifyMode::kOff;
    } else {
      return false;
    }
    return true;
  }
  if (flag == "history-dir") {
    o->history_dir = v;
    return true;
  }
  return true;  // A switch, read after all flags.
}

// Returns 0 on success, else the exit status.
int Parse(int argc, char** argv, Options* o) {
  cxxopts::ParseResult result;
  try {
    result = DeclareFlags().parse(argc, argv);
  } catch (const cxxopts::exceptions::missing_argument&) {
    // cxxopts reports a missing value only for the last argument.
    Usage(absl::StrCat("bad or incomplete flag: ", argv[argc - 1]).c_str());
    return kExitUsage;
  } catch (const cxxopts::exceptions::exception& e) {
    Usage(absl::StrCat("bad flag: ", e.what()).c_str());
    return kExitUsage;
  }
  if (result.count("help") > 0) {
    Usage("deterministic simulation of geoetcd");
    return kExitUsage;
  }
  if (!result.unmatched().empty()) {
    Usage(absl::StrCat("bad or incomplete flag: ", result.unmatched().front()).c_str());
    return kExitUsage;
  }
  for (const cxxopts::KeyValue& arg : result.arguments()) {
    int exit_status = 0;
    const bool ok = ApplyFlag(arg.key(), arg.value(), o, &exit_status);
    if (exit_status != 0) return exit_status;
    if (!ok) {
      Usage(absl::StrCat("bad or incomplete flag: --", arg.key()).c_str());
      return kExitUsage;
    }
  }
  if (result["replay"].as<bool>()) {
    o->config.trace = [](const std::string& line) { std::printf("%s\n", line.c_str()); };
  }
  if (result["no-invariants"].as<bool>()) o->config.check_invariants = false;
  if (result["no-leases"].as<bool>()) o->config.leases = false;
  if (absl::Status s = geoetcd::sim::ValidateConfig(o->config); !s.ok()) {
    std::fprintf(stderr, "geoetcd-sim: %s\n", std::string(s.message()).c_str());
    return kExitUsage;
  }
  return 0;
}

std::string ReproduceCommand(const Options& o, uint64_t seed) {
  std::string cmd =
      absl::StrCat("build/geoetcd-sim --seed ", seed, " --ops ", o.config.ops, " --clients ",
                   o.config.clients, " --watchers ", o.config.watchers, " --regions ",
                   o.config.regions, " --faults ", geoetcd::sim::FaultProfileName(o.config.faults));
  if (o.bug != "none") absl::StrAppend(&cmd, " --inject-bug ", o.bug);
  if (o.buggify != "seed") absl::StrAppend(&cmd, " --buggify ", o.buggify);
  if (!o.config.check_invariants) absl::StrAppend(&cmd, " --no-invariants");
  if (!o.config.leases) absl::StrAppend(&cmd, " --no-leases");
  return cmd;
}

std::string FinalLine(uint64_t seed, const SimResult& r) {
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(r.hash));
  char sim_seconds[32];
  std::snprintf(sim_seconds, sizeof(sim_seconds), "%.3f", r.sim_seconds);
  return absl::StrCat("seed=", seed, " ops=", r.ops, " events=", r.events,
                      " sim_seconds=", sim_seconds, " hash=", hash,
                      " result=", r.ok ? "ok" : absl::StrCat("violation:", r.checker));
}

// --- A CHECK failure inside the Node (an invariant) aborts the process. The handler prints
// the verdict line from the last progress snapshot, using only async-signal-safe calls.
SimProgress g_progress;
uint64_t g_seed = 0;
char g_reproduce[512];

void AppendText(char* buf, size_t* len, size_t cap, const char* text) {
  while (*text != '\0' && *len + 1 < cap) buf[(*len)++] = *text++;
}

void AppendUnsigned(char* buf, size_t* len, size_t cap, uint64_t x, int base, int width) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[x % base];
    x /= base;
  } while (x != 0 && n < 24);
  while (n < width) digits[n++] = '0';
  while (n > 0 && *len + 1 < cap) buf[(*len)++] = digits[--n];
}

void OnAbort(int) {
  char line[1024];
  size_t len = 0;
  const size_t cap = sizeof(line);
  AppendText(line, &len, cap, "violation: invariants: a CHECK failed (see above)\nreproduce: ");
  AppendText(line, &len, cap, g_reproduce);
  AppendText(line, &len, cap, "\nseed=");
  AppendUnsigned(line, &len, cap, g_seed, 10, 1);
  AppendText(line, &len, cap, " ops=");
  AppendUnsigned(line, &len, cap, static_cast<uint64_t>(g_progress.ops), 10, 1);
  AppendText(line, &len, cap, " events=");
  AppendUnsigned(line, &len, cap, static_cast<uint64_t>(g_progress.events), 10, 1);
  AppendText(line, &len, cap, " sim_seconds=");
  const uint64_t ms = static_cast<uint64_t>(g_progress.now_us) / 1000;
  AppendUnsigned(line, &len, cap, ms / 1000, 10, 1);
  AppendText(line, &len, cap, ".");
  AppendUnsigned(line, &len, cap, ms % 1000, 10, 3);
  AppendText(line, &len, cap, " hash=");
  AppendUnsigned(line, &len, cap, g_progress.hash, 16, 16);
  AppendText(line, &len, cap, " result=violation:invariants\n");
  std::fflush(stdout);
  (void)!write(STDOUT_FILENO, line, len);
  _exit(kExitViolation);
}

void ArmAbortHandler(const Options& o, uint64_t seed) {
  g_seed = seed;
  std::snprintf(g_reproduce, sizeof(g_reproduce), "%s", ReproduceCommand(o, seed).c_str());
  g_progress = SimProgress();
  std::signal(SIGABRT, OnAbort);
}

// Runs one seed; prints details (everything when `verbose`). Returns the result.
SimResult RunOne(Options& o, uint64_t seed, bool verbose) {
  o.config.seed = seed;
  o.config.progress = &g_progress;
  ArmAbortHandler(o, seed);
  absl::StatusOr<SimResult> run = geoetcd::sim::RunSimulation(o.config);
  if (!run.ok()) {
    std::fprintf(stderr, "geoetcd-sim: %s\n", std::string(run.status().message()).c_str());
    std::exit(kExitUsage);
  }
  SimResult& r = *run;
  if (verbose) {
    const auto& s = r.stats;
    std::printf("config: seed=%llu faults=%s bug=%s buggify=%s clients=%d regions=%d\n",
                static_cast<unsigned long long>(seed),
                geoetcd::sim::FaultProfileName(o.config.faults), o.bug.c_str(),
                s.buggified ? "on" : "off", o.config.clients, o.config.regions);
    std::string sites;
    for (const std::string& site : s.buggify_sites_active) absl::StrAppend(&sites, " ", site);
    if (!sites.empty()) std::printf("buggify sites active:%s\n", sites.c_str());
    std::printf(
        "stats: ok=%lld failed=%lld unknown=%lld crashes=%lld fail_stops=%lld "
        "disk_error_windows=%lld partitions=%lld clogs=%lld clock_jumps=%lld "
        "messages=%llu lost=%llu final_revision=%lld repairs=%lld\n",
        static_cast<long long>(s.ops_ok), static_cast<long long>(s.ops_failed),
        static_cast<long long>(s.ops_unknown), static_cast<long long>(s.crashes),
        static_cast<long long>(s.fail_stops), static_cast<long long>(s.disk_error_windows),
        static_cast<long long>(s.partitions), static_cast<long long>(s.clogs),
        static_cast<long long>(s.clock_jumps), static_cast<unsigned long long>(s.messages_sent),
        static_cast<unsigned long long>(s.messages_lost), static_cast<long long>(s.final_revision),
        static_cast<long long>(s.repairs));
    for (const std::string& note : r.notes) std::printf("note: %s\n", note.c_str());
    const double wall = r.run_wall_seconds > 0 ? r.run_wall_seconds : 1e-9;
    std::printf(
        "speed: ops_per_wall_second=%.0f events_per_wall_second=%.0f compression=%.0fx "
        "compression_with_checks=%.0fx run_wall_ms=%.1f check_wall_ms=%.1f\n",
        static_cast<double>(r.ops) / wall, static_cast<double>(r.events) / wall,
        r.sim_seconds / wall, r.sim_seconds / (wall + r.check_wall_seconds),
        r.run_wall_seconds * 1e3, r.check_wall_seconds * 1e3);
  }
  if (!r.ok) {
    const std::string path = absl::StrCat(o.history_dir, "/geoetcd-sim-", seed, ".history");
    const bool written = geoetcd::sim::WriteHistory(r.history, path);
    std::printf("violation: %s: %s\n", r.checker.c_str(), r.detail.c_str());
    std::printf("history: %s\n", written ? path.c_str() : "(could not be written)");
    std::printf("reproduce: %s --replay\n", ReproduceCommand(o, seed).c_str());
  }
  return std::move(r);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int status = Parse(argc, argv, &o); status != 0) return status;
  if (!o.sweep) {
    const SimResult r = RunOne(o, o.seed_first, /*verbose=*/true);
    std::printf("%s\n", FinalLine(o.seed_first, r).c_str());
    return r.ok ? 0 : kExitViolation;
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t runs = 0;
  int64_t violations = 0;
  int64_t inconclusive = 0;  // runs where a search gave up (noted, not a violation)
  int64_t ops = 0;
  int64_t repairs = 0;
  double sim_seconds = 0;
  for (uint64_t seed = o.seed_first;; ++seed) {
    const SimResult r = RunOne(o, seed, /*verbose=*/false);
    ++runs;
    ops += r.ops;
    repairs += r.stats.repairs;
    sim_seconds += r.sim_seconds;
    for (const std::string& note : r.notes) {
      std::printf("seed=%llu note: %s\n", static_cast<unsigned long long>(seed), note.c_str());
    }
    inconclusive += r.notes.empty() ? 0 : 1;
    if (!r.ok) {
      ++violations;
      std::printf("%s\n", FinalLine(seed, r).c_str());
    }
    std::fflush(stdout);
    if (seed == o.seed_last) break;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "sweep: seeds=%llu..%llu faults=%s bug=%s runs=%lld violations=%lld inconclusive=%lld "
      "ops=%lld repairs=%lld "
      "sim_seconds=%.1f wall_seconds=%.2f ops_per_wall_second=%.0f compression=%.0fx "
      "result=%s\n",
      static_cast<unsigned long long>(o.seed_first), static_cast<unsigned long long>(o.seed_last),
      geoetcd::sim::FaultProfileName(o.config.faults), o.bug.c_str(), static_cast<long long>(runs),
      static_cast<long long>(violations), static_cast<long long>(inconclusive),
      static_cast<long long>(ops), static_cast<long long>(repairs), sim_seconds, wall, static_cast<double>(ops) / wall,
      sim_seconds / wall, violations == 0 ? "ok" : "violation");
  return violations == 0 ? 0 : kExitViolation;
}
