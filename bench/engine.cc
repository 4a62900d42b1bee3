#include "bench/engine.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace geoetcd::bench {
namespace {

// After a stall the rate limiter sends at most this many slots back to back to catch up.
constexpr int64_t kMaxBurstSlots = 8;
constexpr auto kProgressRedraw = std::chrono::milliseconds(250);
constexpr auto kFinishPoll = std::chrono::milliseconds(5);

const char* const kGrpcCodeNames[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

}  // namespace

gpr_timespec DeadlineIn(int64_t delta_ns) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(delta_ns, GPR_TIMESPAN));
}

void KeyFormat::Write(uint64_t index, std::string* key) const {
  if (key->size() != static_cast<size_t>(key_size_)) {
    key->assign(prefix_);
    key->resize(key_size_, '0');
  }
  char* p = key->data() + key_size_;
  char* const stop = key->data() + prefix_.size();
  while (p > stop) {
    *--p = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

std::string KeyFormat::Make(uint64_t index) const {
  std::string key;
  Write(index, &key);
  return key;
}

std::string KeyFormat::PrefixEnd() const {
  std::string end = prefix_;
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) != 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // empty prefix: every key (etcd's "from key" range)
}

std::string RandomValue(FastRandom* rng, int size) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
  std::string v(size, ' ');
  for (char& c : v) c = kAlphabet[rng->Next() & 63];
  return v;
}

const char* OpName(int op) {
  static const char* const kNames[kOpCount] = {"put",   "range",     "txn",
                                               "grant", "keepalive", "event"};
  return op >= 0 && op < kOpCount ? kNames[op] : "?";
}

const char* ErrorCodeName(int code) {
  if (code >= 0 && code <= 16) return kGrpcCodeNames[code];
  switch (code) {
    case kErrorMissingEvent:
      return "MISSING_EVENT";
    case kErrorWatchCanceled:
      return "WATCH_CANCELED";
    case kErrorLeaseExpired:
      return "LEASE_EXPIRED";
    default:
      return "?";
  }
}

uint64_t ShareOf(uint64_t total, int parts, int i) {
  return total / parts + (static_cast<uint64_t>(i) < total % parts ? 1 : 0);
}

void PrepareContext(const BenchOptions& options, grpc::ClientContext* ctx, bool with_deadline) {
  if (with_deadline && options.timeout_ns > 0) {
    ctx->set_deadline(DeadlineIn(options.timeout_ns));
  }
  for (const auto& [k, v] : options.metadata) ctx->AddMetadata(k, v);
}

Worker::Worker(int index, int thread_count, const BenchOptions& options, uint64_t quota,
               double rate_per_s, uint64_t seed)
    : index_(index), thread_count_(thread_count), options_(options), quota_(quota), rng_(seed) {
  if (rate_per_s > 0) interval_ns_ = std::max<int64_t>(1, static_cast<int64_t>(1e9 / rate_per_s));
}

void Worker::Run(const RunClock* clock) {
  clock_ = clock;
  next_slot_ns_ = clock->start_ns;
  // One extra count until every client has started, so a client that finishes at once
  // cannot shut the queue down under the others.
  active_clients_ = static_cast<int>(clients_.size()) + 1;
  for (auto& c : clients_) c->Start();
  ClientFinished();
  if (loop_ != nullptr) {
    loop_->Run();
    cq_.Shutdown();  // unused, but a queue must be shut down before it is destroyed
  }
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) static_cast<Completion*>(tag)->Done(ok);
  finished_.store(true, std::memory_order_release);
}

void Worker::ClientFinished() {
  CHECK(active_clients_ > 0);
  if (--active_clients_ > 0) return;
  if (loop_ != nullptr) {
    loop_->Stop();
  } else {
    cq_.Shutdown();
  }
}

Worker::Admission Worker::Admit(int64_t now_ns, int64_t* send_at_ns, bool* measured) {
  int64_t at = now_ns;
  if (interval_ns_ > 0) {
    at = std::max(next_slot_ns_, now_ns - kMaxBurstSlots * interval_ns_);
  }
  if (at >= clock_->measure_end_ns) return Admission::kStop;
  *measured = at >= clock_->measure_start_ns;
  if (*measured && options_.duration_ns == 0) {
    if (quota_ == 0) return Admission::kStop;
    --quota_;
  }
  if (interval_ns_ > 0) next_slot_ns_ = at + interval_ns_;
  if (at > now_ns) {
    *send_at_ns = at;
    return Admission::kWaitUntil;
  }
  return Admission::kSend;
}

uint64_t Worker::NextKeyIndex() {
  if (options_.sequential_keys) {
    // Thread i takes keys i, i + threads, ...: together the threads walk the key space.
    return (sequence_++ * thread_count_ + index_) % options_.key_space;
  }
  return rng_.Next() % options_.key_space;
}

absl::StatusOr<Connections> Connections::Open(const BenchOptions& options, int count) {
  Connections out;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    // A private subchannel pool and a distinct argument keep gRPC from sharing one TCP
    // connection among channels to the same address.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("geoetcd_bench.channel_index", i);
    args.SetMaxReceiveMessageSize(-1);
    const std::string& endpoint = options.endpoints[i % options.endpoints.size()];
    out.channels_.push_back(
        grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args));
  }
  for (auto& ch : out.channels_) ch->GetState(/*try_to_connect=*/true);
  const gpr_timespec deadline = DeadlineIn(options.connect_timeout_ns);
  for (int i = 0; i < count; ++i) {
    const auto& ch = out.channels_[i];
    const std::string& endpoint = options.endpoints[i % options.endpoints.size()];
    for (;;) {
      const grpc_connectivity_state state = ch->GetState(/*try_to_connect=*/true);
      if (state == GRPC_CHANNEL_READY) break;
      if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
        return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint, " (connection ",
                                                   i + 1, " of ", count,
                                                   " failed; is the server running?)"));
      }
      if (!ch->WaitForStateChange(state, deadline)) {
        return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint, " within ",
                                                   options.connect_timeout_ns / 1e9, "s"));
      }
    }
  }
  return out;
}

void WorkerPool::Start(const RunClock* clock) {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    threads_.emplace_back([worker, clock] { worker->Run(clock); });
  }
}

bool WorkerPool::AllFinished() const {
  return std::all_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->finished(); });
}

uint64_t WorkerPool::completed() const {
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->completed();
  return n;
}

uint64_t WorkerPool::errors() const {
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->errors();
  return n;
}

void WorkerPool::Wait(ProgressBar* bar, const std::function<double(uint64_t)>& progress) {
  auto last_draw = std::chrono::steady_clock::now();
  const int64_t start_ns = NowNs();
  while (!AllFinished()) {
    std::this_thread::sleep_for(kFinishPoll);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw < kProgressRedraw) continue;
    last_draw = now;
    const uint64_t done = completed();
    const uint64_t failed = errors();
    bar->Update(progress(done + failed), done, failed, (NowNs() - start_ns) / 1e9);
  }
  bar->Finish();
}

void WorkerPool::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void WorkerPool::Collect(int64_t measure_start_ns, RunResult* result) const {
  std::array<LatencyHistogram, kOpCount> ops;
  int64_t last_done = 0;
  for (const auto& w : workers_) {
    for (int op = 0; op < kOpCount; ++op) ops[op].Merge(w->ops()[op]);
    for (int code = 0; code < kErrorCodeCount; ++code) {
      if (w->errors_by_code()[code] == 0) continue;
      result->errors_by_code[ErrorCodeName(code)] += w->errors_by_code()[code];
      result->errors += w->errors_by_code()[code];
    }
    last_done = std::max(last_done, w->last_done_ns());
  }
  int kinds = 0;
  for (int op = 0; op < kOpCount; ++op) {
    result->latency.Merge(ops[op]);
    if (ops[op].count() > 0) ++kinds;
  }
  result->requests = result->latency.count();
  if (kinds > 1) {
    for (int op = 0; op < kOpCount; ++op) {
      if (ops[op].count() > 0) result->ops.emplace_back(OpName(op), ops[op]);
    }
  }
  result->seconds = last_done > measure_start_ns ? (last_done - measure_start_ns) / 1e9 : 0;
}

void RunWorkers(const BenchOptions& options, WorkerPool* pool, RunResult* result) {
  RunClock clock;
  clock.start_ns = NowNs();
  clock.measure_start_ns = clock.start_ns + options.warmup_ns;
  clock.measure_end_ns =
      options.duration_ns > 0 ? clock.measure_start_ns + options.duration_ns : INT64_MAX;
  ProgressBar bar(options.progress);
  // CPU is sampled after the warmup, when the progress loop first sees measurement begin.
  double cpu_start = ProcessCpuSeconds();
  bool measuring = options.warmup_ns == 0;
  pool->Start(&clock);
  pool->Wait(&bar, [&](uint64_t done) {
    const int64_t now = NowNs();
    if (!measuring && now >= clock.measure_start_ns) {
      measuring = true;
      cpu_start = ProcessCpuSeconds();
    }
    if (options.duration_ns > 0) {
      return static_cast<double>(now - clock.measure_start_ns) / options.duration_ns;
    }
    return static_cast<double>(done) / options.total;
  });
  pool->Join();
  result->client_cpu_seconds = ProcessCpuSeconds() - cpu_start;
  pool->Collect(clock.measure_start_ns, result);
}

}  // namespace geoetcd::bench
