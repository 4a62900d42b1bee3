// geoetcd-bench's command line: `geoetcd-bench <workload> [flags]`, validated up front so a
// typo fails in milliseconds instead of after a ten-minute run.
#ifndef GEOETCD_BENCH_OPTIONS_H_
#define GEOETCD_BENCH_OPTIONS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace geoetcd::bench {

enum class Workload { kPut, kRange, kTxnPut, kMixed, kWatch, kLease, kRocksDbSync, kGrpcEmpty };

const char* WorkloadName(Workload w);

// How the unary KV workloads reach the server: gRPC C++'s async client, or geoetcd-bench's
// own HTTP/2 client (bench/h2_client.h), which costs the shared CPU far less per call.
enum class Transport { kGrpc, kH2 };

const char* TransportName(Transport t);

struct BenchOptions {
  Workload workload = Workload::kPut;

  // Where and how much.
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  int conns = 1;       // distinct gRPC channels (TCP connections)
  int clients = 1;     // concurrently outstanding requests, spread over conns
  int threads = 1;     // worker threads: completion-queue pollers, or h2 epoll loops
  uint64_t total = 0;  // requests to measure; 0 when duration_ns is set
  int64_t duration_ns = 0;
  int64_t warmup_ns = 0;                // load before measuring, not counted
  double rate = 0;                      // requests/s over all clients; 0 = as fast as possible
  int64_t timeout_ns = 30'000'000'000;  // per unary RPC; 0 = no deadline
  int64_t connect_timeout_ns = 5'000'000'000;  // per channel, before the run
  Transport transport = Transport::kGrpc;      // put, range, txn-put, mixed only

  // Keys and values.
  int key_size = 32;   // bytes, including key_prefix
  int val_size = 256;  // bytes
  uint64_t key_space = 10'000;
  bool sequential_keys = false;
  std::string key_prefix = "bench/";

  // range / mixed.
  bool serializable = false;
  double read_ratio = 0.9;  // mixed: fraction of requests that are ranges
  std::vector<std::pair<std::string, std::string>> metadata;  // sent with every RPC

  // watch.
  int watchers = 100;
  int streams = 10;
  double watch_rate = 100;                  // writer puts/s
  int64_t watch_grace_ns = 10'000'000'000;  // wait this long for the last events

  // lease.
  int64_t lease_ttl_s = 30;

  // rocksdb-sync.
  std::string dir;  // empty: a fresh temp dir, removed afterwards
  int writers = 1;
  int batch_size = 1;

  // Output.
  bool json = false;
  bool progress = false;  // also forced on when stderr is a terminal (unless --no-progress)
  bool no_progress = false;
};

// Result of parsing: either options to run, or help text to print (exit 0).
struct ParsedCommand {
  bool help = false;
  std::string help_text;
  BenchOptions options;
};

// argv[0] is the program name. Errors are InvalidArgument with a one-line message naming
// the flag and what is wrong with it.
absl::StatusOr<ParsedCommand> ParseCommandLine(int argc, const char* const* argv);

// A duration in Go's syntax ("10s", "500ms", "2m", "1h30m", gateway/go_duration.h), or a bare
// number of seconds ("1.5"), in nanoseconds. Negative durations are refused.
absl::StatusOr<int64_t> ParseDuration(const std::string& text);

std::string UsageText();

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_OPTIONS_H_
