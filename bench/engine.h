// The load engine shared by every network workload: a few completion-queue threads, each
// driving a slice of the clients with gRPC's async API. A client's state is touched only by
// its own thread, requests and responses are reused, and admission (quota, deadline, rate)
// is per thread, so the hot path takes no lock and allocates only what gRPC itself does.
#ifndef GEOETCD_BENCH_ENGINE_H_
#define GEOETCD_BENCH_ENGINE_H_

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/histogram.h"
#include "bench/options.h"
#include "bench/report.h"

namespace geoetcd::bench {

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A gRPC deadline `delta_ns` from now, on gRPC's monotonic clock.
gpr_timespec DeadlineIn(int64_t delta_ns);

// splitmix64: tiny, fast, and good enough to pick keys.
class FastRandom {
 public:
  explicit FastRandom(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double NextDouble() { return (Next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t state_;
};

// Keys are key_prefix + the zero-padded decimal key index, key_size bytes in all.
class KeyFormat {
 public:
  KeyFormat(const std::string& prefix, int key_size) : prefix_(prefix), key_size_(key_size) {}
  // Overwrites *key with key `index`; reuses its buffer once it has the right size.
  void Write(uint64_t index, std::string* key) const;
  std::string Make(uint64_t index) const;
  // The smallest key after every key with the prefix (a watch's or range's range_end).
  std::string PrefixEnd() const;

 private:
  std::string prefix_;
  int key_size_;
};

// `size` random printable bytes: incompressible enough that RocksDB's block compression
// gains nothing a bbolt-backed etcd would not.
std::string RandomValue(FastRandom* rng, int size);

// The operations whose latencies are kept apart.
enum Op { kOpPut, kOpRange, kOpTxn, kOpGrant, kOpKeepAlive, kOpEvent, kOpCount };
const char* OpName(int op);

// Workload counters beyond requests and errors.
enum Counter { kCasOk, kCasConflict, kRangeMiss, kCounterCount };

// A completion-queue tag: every pending async operation points at one of these.
class Completion {
 public:
  virtual void Done(bool ok) = 0;

 protected:
  ~Completion() = default;
};

// Binds a tag to a member function, so one object can own several pending operations.
template <class T, void (T::*Method)(bool)>
class MemberCompletion final : public Completion {
 public:
  explicit MemberCompletion(T* self) : self_(self) {}
  void Done(bool ok) override { (self_->*Method)(ok); }

 private:
  T* self_;
};

// Pseudo status codes for failures that are not a gRPC status.
constexpr int kErrorMissingEvent = 17;
constexpr int kErrorWatchCanceled = 18;
constexpr int kErrorLeaseExpired = 19;
constexpr int kErrorCodeCount = 20;
const char* ErrorCodeName(int code);

// When measurement starts and ends; shared read-only by every worker.
struct RunClock {
  int64_t start_ns = 0;          // load starts (warmup begins)
  int64_t measure_start_ns = 0;  // start + warmup
  int64_t measure_end_ns = 0;    // duration mode: no request is sent at or after this
};

class Client {
 public:
  virtual ~Client() = default;
  // Called once on the worker's thread; the client then lives on completions.
  virtual void Start() = 0;
};

// An event loop a Worker runs instead of its completion queue, for clients that do not use
// gRPC (the h2 transport, bench/h2_client.h). Both methods run on the worker's thread.
class WorkerLoop {
 public:
  virtual ~WorkerLoop() = default;
  // Dispatches the clients' events until Stop().
  virtual void Run() = 0;
  // Called when the last client finished; Run() returns soon after.
  virtual void Stop() = 0;
};

// One thread and its completion queue, with a slice of the clients, the quota and rate.
class Worker {
 public:
  Worker(int index, int thread_count, const BenchOptions& options, uint64_t quota,
         double rate_per_s, uint64_t seed);

  grpc::CompletionQueue* cq() { return &cq_; }
  // Run `loop` instead of the completion queue; set before Run().
  void set_loop(WorkerLoop* loop) { loop_ = loop; }
  int index() const { return index_; }
  FastRandom* rng() { return &rng_; }
  void AddClient(std::unique_ptr<Client> client) { clients_.push_back(std::move(client)); }

  // Runs the clients until each has called ClientFinished(). Call on the worker thread.
  void Run(const RunClock* clock);

  enum class Admission { kSend, kWaitUntil, kStop };
  // Whether a client may send a request now. kWaitUntil sets *send_at_ns (set an alarm);
  // *measured says whether the request counts (false during warmup).
  Admission Admit(int64_t now_ns, int64_t* send_at_ns, bool* measured);
  // The next key index: uniform, or this thread's next in the sequential walk.
  uint64_t NextKeyIndex();

  void RecordOk(int op, int64_t send_ns, int64_t done_ns, bool measured) {
    if (!measured) return;
    ops_[op].Record(done_ns - send_ns);
    if (done_ns > last_done_ns_) last_done_ns_ = done_ns;
    completed_.store(completed_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void RecordError(int code, int64_t done_ns, bool measured) {
    if (!measured) return;
    errors_by_code_[code]++;
    if (done_ns > last_done_ns_) last_done_ns_ = done_ns;
    errors_.store(errors_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void Count(int counter, uint64_t n = 1) { counters_[counter] += n; }
  // A client sends no more and has nothing pending; the last one ends Run().
  void ClientFinished();

  // Progress, readable from any thread.
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }

  // Results; read after Run() returned.
  const std::array<LatencyHistogram, kOpCount>& ops() const { return ops_; }
  const std::array<uint64_t, kErrorCodeCount>& errors_by_code() const { return errors_by_code_; }
  const std::array<uint64_t, kCounterCount>& counters() const { return counters_; }
  int64_t last_done_ns() const { return last_done_ns_; }

 private:
  const int index_;
  const int thread_count_;
  const BenchOptions& options_;
  const RunClock* clock_ = nullptr;
  grpc::CompletionQueue cq_;
  WorkerLoop* loop_ = nullptr;
  std::vector<std::unique_ptr<Client>> clients_;
  int active_clients_ = 0;
  uint64_t quota_;           // total mode: measured requests left to admit
  int64_t interval_ns_ = 0;  // rate limit: time between admissions on this thread
  int64_t next_slot_ns_ = 0;
  uint64_t sequence_ = 0;
  FastRandom rng_;
  std::array<LatencyHistogram, kOpCount> ops_;
  std::array<uint64_t, kErrorCodeCount> errors_by_code_{};
  std::array<uint64_t, kCounterCount> counters_{};
  int64_t last_done_ns_ = 0;
  std::atomic<uint64_t> completed_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<bool> finished_{false};
};

// gRPC channels to the endpoints, one TCP connection each.
class Connections {
 public:
  // Creates `count` channels round-robin over the endpoints and waits until each is
  // connected; fails with Unavailable naming the endpoint that is not reachable.
  static absl::StatusOr<Connections> Open(const BenchOptions& options, int count);
  const std::shared_ptr<grpc::Channel>& channel(int i) const {
    return channels_[i % channels_.size()];
  }
  int size() const { return static_cast<int>(channels_.size()); }

 private:
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
};

// The workers' threads. Start, then either Wait (progress bar on stderr until all finish)
// or drive the load from the calling thread and Join; then Collect.
class WorkerPool {
 public:
  explicit WorkerPool(std::vector<std::unique_ptr<Worker>> workers)
      : workers_(std::move(workers)) {}
  ~WorkerPool() { Join(); }

  void Start(const RunClock* clock);
  bool AllFinished() const;
  // Redraws `bar` with fraction `progress(completed + errors)` until every worker ends.
  void Wait(ProgressBar* bar, const std::function<double(uint64_t)>& progress);
  void Join();
  uint64_t completed() const;
  uint64_t errors() const;
  // Fills requests, errors, latency (and per-op breakdown) and seconds, counting time from
  // `measure_start_ns` to the last measured completion.
  void Collect(int64_t measure_start_ns, RunResult* result) const;
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

// Start + Wait + Join + Collect for the workloads driven only by admission (put, range,
// txn-put, mixed, lease): times the run by `clock` from options (warmup, duration).
void RunWorkers(const BenchOptions& options, WorkerPool* pool, RunResult* result);

// Splits `total` over `parts` as evenly as possible; part i gets the i-th share.
uint64_t ShareOf(uint64_t total, int parts, int i);

// The ClientContext of one RPC: deadline and --metadata.
void PrepareContext(const BenchOptions& options, grpc::ClientContext* ctx, bool with_deadline);

// The workloads (each in its own file).
absl::StatusOr<RunResult> RunKvWorkload(const BenchOptions& options);
absl::StatusOr<RunResult> RunLeaseWorkload(const BenchOptions& options);
absl::StatusOr<RunResult> RunWatchWorkload(const BenchOptions& options);
absl::StatusOr<RunResult> RunRocksDbSync(const BenchOptions& options);
absl::StatusOr<RunResult> RunGrpcEmpty(const BenchOptions& options);

}  // namespace geoetcd::bench

#endif  // GEOETCD_BENCH_ENGINE_H_
