// One simulation run: builds a SimWorld with N regions (each the production Node over
// simulated ports), simulated clients running the KV workload, and a fault injector for
// the chosen profile; runs until the workload is done; quiesces (heals every fault,
// restarts what is down, crashes once more under crash faults, and audits the keyspace);
// then judges the history with every checker.
//
// Faults by profile (BUGGIFY, from the seed, randomizes their rates and the tunables):
//   none     no faults (tunables such as disk latency and client think time still vary)
//   crash    process crashes at random times; the disk keeps only what was synced (or, at
//            times, an extra prefix of unsynced batches); restart from the durable state
//   network  client links: loss, jitter, partitions, clogging; clock jumps; peer links
//            also duplicate and reorder once there are several regions
//   disk     fsync latency spikes and write errors (the node fail-stops and is restarted)
//   all      all of the above
//
// Deterministic: the same config (seed included) and build give the same events, trace
// hash and history.
#ifndef GEOETCD_SIM_SIMULATION_H_
#define GEOETCD_SIM_SIMULATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/node.h"
#include "sim/checkers.h"
#include "sim/history.h"

namespace geoetcd::sim {

enum class FaultProfile { kNone, kCrash, kNetwork, kDisk, kAll };

bool ParseFaultProfile(std::string_view name, FaultProfile* profile);
const char* FaultProfileName(FaultProfile profile);

// Sets the InjectedBugs flag named by `name` ("ack-before-fsync", ...). Errors name the
// valid choices, or say when a bug cannot be injected yet.
absl::Status ParseInjectedBug(std::string_view name, InjectedBugs* bugs);
// The --inject-bug names, in order.
const std::vector<std::string>& InjectedBugNames();

enum class BuggifyMode { kSeed, kOn, kOff };

// Updated after every event, for a crash handler to report how far a run got.
struct SimProgress {
  volatile int64_t events = 0;
  volatile int64_t now_us = 0;
  volatile int64_t ops = 0;
  volatile uint64_t hash = 0;
};

struct SimConfig {
  uint64_t seed = 1;
  int64_t ops = 2000;
  int32_t clients = 8;
  int32_t watchers = 3;  // watch clients, besides the KV clients
  bool leases = true;    // lease requests in the KV clients' mix
  int32_t regions = 1;
  FaultProfile faults = FaultProfile::kNone;
  InjectedBugs bugs;
  BuggifyMode buggify = BuggifyMode::kSeed;
  // Node::CheckInvariants() after every event (the invariant checker).
  bool check_invariants = true;
  // --replay: every event, invocation and completion is printed through this.
  std::function<void(const std::string& line)> trace;
  SimProgress* progress = nullptr;
  CheckOptions check;
};

struct SimStats {
  bool buggified = false;
  int64_t crashes = 0;
  int64_t fail_stops = 0;
  int64_t disk_error_windows = 0;
  int64_t partitions = 0;
  int64_t clogs = 0;
  int64_t clock_jumps = 0;
  int64_t ops_ok = 0;
  int64_t ops_failed = 0;
  int64_t ops_unknown = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_lost = 0;
  int64_t final_revision = 0;
  int64_t repairs = 0;  // Merkle repairs installed by any region
  std::vector<std::string> buggify_sites_active;
};

struct SimResult {
  bool ok = true;
  std::string checker;  // when !ok: "revision", "durability", "watch", "linearizability",
                        // "wgl", "lease", "recovery", "liveness", "convergence" or
                        // "read-your-writes"
  std::string detail;
  std::vector<std::string> notes;
  int64_t ops = 0;
  uint64_t events = 0;
  double sim_seconds = 0;
  uint64_t hash = 0;
  double run_wall_seconds = 0;
  double check_wall_seconds = 0;
  SimStats stats;
  History history;
};

inline constexpr int32_t kRegionsMax = 5;

// Rejects nonsense: regions outside 1..kRegionsMax, ops < 0, clients < 1.
absl::Status ValidateConfig(const SimConfig& config);
absl::StatusOr<SimResult> RunSimulation(const SimConfig& config);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_SIMULATION_H_
