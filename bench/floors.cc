// The two floors every server number should be read against, measured on the same machine
// the same day: what a synced RocksDB write costs, and what an RPC that does nothing costs.
#include <grpcpp/grpcpp.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/engine.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd::bench {
namespace {

// ---- rocksdb-sync ------------------------------------------------------------------------

struct SyncWriter {
  LatencyHistogram latency;
  uint64_t errors = 0;
  int64_t last_done_ns = 0;
  std::atomic<uint64_t> done{0};
  std::string first_error;
};

// One writer thread: synced WriteBatches of batch_size keys until its quota or the clock
// runs out. Writers of the same DB overlap, so RocksDB's own group commit can merge them.
void WriteLoop(const BenchOptions& o, rocksdb::DB* db, int index, uint64_t quota,
               const RunClock& clock, SyncWriter* out) {
  FastRandom rng(0xdb000000 + index);
  const KeyFormat keys(o.key_prefix, o.key_size);
  const std::string value = RandomValue(&rng, o.val_size);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  rocksdb::WriteBatch batch;
  std::string key;
  uint64_t sequence = 0;
  for (;;) {
    const int64_t now_ns = NowNs();
    if (now_ns >= clock.measure_end_ns) break;
    const bool measured = now_ns >= clock.measure_start_ns;
    if (measured && o.duration_ns == 0) {
      if (quota == 0) break;
      --quota;
    }
    batch.Clear();
    for (int k = 0; k < o.batch_size; ++k) {
      const uint64_t i = o.sequential_keys ? (sequence++ * o.writers + index) % o.key_space
                                           : rng.Next() % o.key_space;
      keys.Write(i, &key);
      batch.Put(key, value);
    }
    const int64_t send_ns = NowNs();
    const rocksdb::Status s = db->Write(write_options, &batch);
    const int64_t done_ns = NowNs();
    if (!measured) continue;
    out->last_done_ns = done_ns;
    if (s.ok()) {
      out->latency.Record(done_ns - send_ns);
    } else {
      if (out->errors++ == 0) out->first_error = s.ToString();
    }
    out->done.store(out->done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

// ---- grpc-empty --------------------------------------------------------------------------

// A KV service whose Range answers at once with an empty response: the cost of an RPC and
// nothing else.
class EmptyKv final : public etcdserverpb::KV::CallbackService {
 public:
  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* context,
                                  const etcdserverpb::RangeRequest*,
                                  etcdserverpb::RangeResponse*) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

absl::StatusOr<RunResult> RunRocksDbSync(const BenchOptions& o) {
  std::string base = o.dir;
  bool remove_base = false;
  if (base.empty()) {
    const char* tmp = getenv("TMPDIR");
    std::string templ = absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/geoetcd-bench-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a temp dir from ", templ));
    }
    base = templ;
    remove_base = true;
  }
  // A subdirectory of its own, so --dir may name any existing directory safely.
  const std::string path = base + "/geoetcd-bench-rocksdb";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " already exists; remove it or pick another --dir"));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.write_buffer_size = size_t{64} << 20;
  options.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status open = rocksdb::DB::Open(options, path, &raw);
  if (!open.ok()) {
    if (remove_base) std::filesystem::remove_all(base, ec);
    return absl::UnavailableError(absl::StrCat("opening RocksDB in ", path, ": ", open.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  RunClock clock;
  clock.start_ns = NowNs();
  clock.measure_start_ns = clock.start_ns + o.warmup_ns;
  clock.measure_end_ns = o.duration_ns > 0 ? clock.measure_start_ns + o.duration_ns : INT64_MAX;
  std::vector<SyncWriter> writers(o.writers);
  std::vector<std::thread> threads;
  ProgressBar bar(o.progress);
  const double cpu_start = ProcessCpuSeconds();
  for (int i = 0; i < o.writers; ++i) {
    threads.emplace_back(WriteLoop, std::cref(o), db.get(), i, ShareOf(o.total, o.writers, i),
                         std::cref(clock), &writers[i]);
  }
  std::atomic<bool> stop_bar{false};
  std::thread drawer([&] {
    while (!stop_bar.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      uint64_t done = 0;
      for (const auto& w : writers) done += w.done.load(std::memory_order_relaxed);
      const double elapsed_s = (NowNs() - clock.measure_start_ns) / 1e9;
      bar.Update(
          o.duration_ns > 0 ? elapsed_s * 1e9 / o.duration_ns : static_cast<double>(done) / o.total,
          done, 0, elapsed_s);
    }
  });
  for (auto& t : threads) t.join();
  stop_bar = true;
  drawer.join();
  bar.Finish();

  RunResult result;
  result.client_cpu_seconds = ProcessCpuSeconds() - cpu_start;
  int64_t last_done = 0;
  std::string first_error;
  for (const auto& w : writers) {
    result.latency.Merge(w.latency);
    result.errors += w.errors;
    last_done = std::max(last_done, w.last_done_ns);
    if (first_error.empty()) first_error = w.first_error;
  }
  if (result.errors > 0) result.errors_by_code["ROCKSDB_ERROR"] = result.errors;
  result.requests = result.latency.count();
  result.seconds =
      last_done > clock.measure_start_ns ? (last_done - clock.measure_start_ns) / 1e9 : 0;
  result.extras.emplace_back("batches_per_sec",
                             result.seconds > 0 ? result.requests / result.seconds : 0);
  result.extras.emplace_back(
      "keys_per_sec", result.seconds > 0 ? result.requests * o.batch_size / result.seconds : 0);
  db.reset();
  std::filesystem::remove_all(remove_base ? base : path, ec);
  if (!first_error.empty()) {
    std::fprintf(stderr, "geoetcd-bench: first RocksDB error: %s\n", first_error.c_str());
  }
  return result;
}

absl::StatusOr<RunResult> RunGrpcEmpty(const BenchOptions& options) {
  EmptyKv service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return absl::InternalError("cannot start the loopback gRPC server");

  BenchOptions client = options;
  client.endpoints = {absl::StrCat("127.0.0.1:", port)};
  absl::StatusOr<RunResult> result = RunKvWorkload(client);
  server->Shutdown(DeadlineIn(1'000'000'000));
  return result;
}

}  // namespace geoetcd::bench
