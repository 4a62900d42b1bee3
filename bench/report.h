// What a benchmark run measured, and how it is printed: a human summary or one JSON object.
#ifndef GEOETCD_BENCH_REPORT_H_
#define GEOETCD_BENCH_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/histogram.h"
#include "bench/options.h"

namespace geoetcd::bench {

struct RunResult {
  uint64_t requests = 0;  // measured requests that succeeded (watch: events delivered)
  uint64_t errors = 0;    // measured requests that failed, also broken down below
  std::map<std::string, uint64_t> errors_by_code;  // gRPC code name (or a bench reason) -> n
  double seconds = 0;  // from the start of measurement to the last measured completion
  LatencyHistogram latency;
  // Per-operation breakdown when a workload mixes operations (mixed, lease, watch).
  std::vector<std::pair<std::string, LatencyHistogram>> ops;
  // Workload-specific numbers, printed after the standard fields (cas_conflicts, ...).
  std::vector<std::pair<std::string, double>> extras;
  // CPU this process used while measuring; near threads x seconds means the client, not
  // the server, was the limit.
  double client_cpu_seconds = 0;
  // The whole process, connecting and warmup included: what it took from the machine.
  double process_cpu_seconds = 0;
  double process_wall_seconds = 0;
};

// One line of JSON (ends with a newline) with the fields README/docs promise: requests,
// errors, seconds, requests_per_sec, p50_ms ... max_ms, plus the configuration.
std::string ToJson(const BenchOptions& options, const RunResult& result);
// A few lines for humans.
std::string ToText(const BenchOptions& options, const RunResult& result);

// A one-line progress bar redrawn in place on stderr.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  // fraction in [0, 1]; `done` measured requests; `errors` so far.
  void Update(double fraction, uint64_t done, uint64_t errors, double elapsed_s);
  void Finish();

 private:
  bool enabled_;
  bool drawn_ = false;
};

// Process CPU time (user + system) in seconds.
double ProcessCpuSeconds();

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_REPORT_H_
