// geoetcd-bench: a lean async gRPC load generator for any etcd v3 endpoint, and two machine
// floors. `geoetcd-bench --help` lists workloads and flags; docs/performance.md shows how
// bench/compare.sh uses it.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "bench/engine.h"
#include "bench/options.h"
#include "bench/report.h"

namespace {

absl::StatusOr<geoetcd::bench::RunResult> Run(const geoetcd::bench::BenchOptions& options) {
  using geoetcd::bench::Workload;
  switch (options.workload) {
    case Workload::kPut:
    case Workload::kRange:
    case Workload::kTxnPut:
    case Workload::kMixed:
      return geoetcd::bench::RunKvWorkload(options);
    case Workload::kLease:
      return geoetcd::bench::RunLeaseWorkload(options);
    case Workload::kWatch:
      return geoetcd::bench::RunWatchWorkload(options);
    case Workload::kRocksDbSync:
      return geoetcd::bench::RunRocksDbSync(options);
    case Workload::kGrpcEmpty:
      return geoetcd::bench::RunGrpcEmpty(options);
  }
  return absl::InternalError("unhandled workload");
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t start_ns = geoetcd::bench::NowNs();
  // Debian's abseil is built without NDEBUG, which leaves absl::Mutex deadlock detection on:
  // a global graph update on every lock of gRPC's mutexes, a few percent of this client's CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto parsed = geoetcd::bench::ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "geoetcd-bench: %s\nRun 'geoetcd-bench --help' for usage.\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->help) {
    std::fputs(parsed->help_text.c_str(), stdout);
    return 0;
  }
  geoetcd::bench::BenchOptions& options = parsed->options;
  if (!options.no_progress && isatty(STDERR_FILENO)) options.progress = true;

  auto result = Run(options);
  if (!result.ok()) {
    std::fprintf(stderr, "geoetcd-bench: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  result->process_cpu_seconds = geoetcd::bench::ProcessCpuSeconds();
  result->process_wall_seconds = (geoetcd::bench::NowNs() - start_ns) / 1e9;
  const std::string out = options.json ? geoetcd::bench::ToJson(options, *result)
                                       : geoetcd::bench::ToText(options, *result);
  std::fputs(out.c_str(), stdout);
  return 0;
}
