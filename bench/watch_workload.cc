// watch: --watchers watchers on the key prefix over --streams Watch streams, then one writer
// putting at --rate. Every value starts with its send time, so each watcher's event gives
// one delivery latency: put sent -> event received (same process, same monotonic clock).
#include <cstring>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/engine.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd::bench {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(5);
constexpr auto kProgressRedraw = std::chrono::milliseconds(250);
// How long creating every watcher may take when --timeout 0 turns RPC deadlines off.
constexpr int64_t kCreateTimeoutNs = 60'000'000'000;

struct WatchTotals {
  std::atomic<int> created{0};
  std::atomic<int> streams_ended{0};
};

class WatchStream final : public Client {
 public:
  WatchStream(Worker* worker, etcdserverpb::Watch::Stub* stub, const BenchOptions& options,
              int watchers, const etcdserverpb::WatchRequest& create, WatchTotals* totals)
      : worker_(worker),
        stub_(stub),
        watchers_(watchers),
        create_(create),
        totals_(totals),
        start_done_(this),
        write_done_(this),
        read_done_(this),
        finish_done_(this) {
    // Made here, before the worker thread starts, so Cancel() may use it from any thread.
    PrepareContext(options, &ctx_, /*with_deadline=*/false);
  }

  void Start() override {
    call_ = stub_->PrepareAsyncWatch(&ctx_, worker_->cq());
    call_->StartCall(&start_done_);
  }

  // Ends the stream from any thread; pending operations then complete with ok == false.
  void Cancel() {
    cancelled_.store(true, std::memory_order_release);
    ctx_.TryCancel();
  }

 private:
  void OnStart(bool ok) {
    if (!ok) {
      Finish();
      return;
    }
    call_->Read(&resp_, &read_done_);
    WriteNextCreate();
  }

  // Create requests go one at a time: a stream allows one outstanding write.
  void WriteNextCreate() {
    if (finishing_ || created_sent_ == watchers_) return;
    ++created_sent_;
    call_->Write(create_, &write_done_);
  }

  void OnWrite(bool ok) {
    if (ok) WriteNextCreate();
    // A failed write means the stream broke; the pending read reports it.
  }

  void OnRead(bool ok) {
    if (!ok) {
      Finish();
      return;
    }
    const int64_t now_ns = NowNs();
    if (resp_.created()) {
      if (resp_.canceled()) {
        worker_->RecordError(kErrorWatchCanceled, now_ns, true);
      } else {
        totals_->created.fetch_add(1, std::memory_order_release);
      }
    } else if (resp_.canceled()) {
      worker_->RecordError(kErrorWatchCanceled, now_ns, true);
    }
    for (const auto& event : resp_.events()) {
      const std::string& value = event.kv().value();
      if (value.size() < sizeof(int64_t)) continue;  // not the writer's put
      int64_t sent_ns = 0;
      std::memcpy(&sent_ns, value.data(), sizeof(sent_ns));
      worker_->RecordOk(kOpEvent, sent_ns, now_ns, true);
    }
    call_->Read(&resp_, &read_done_);
  }

  void Finish() {
    finishing_ = true;
    call_->Finish(&status_, &finish_done_);
  }

  void OnFinish(bool) {
    if (!cancelled_.load(std::memory_order_acquire)) {
      const int code = status_.ok() ? grpc::StatusCode::UNKNOWN : status_.error_code();
      worker_->RecordError(code, NowNs(), true);
    }
    totals_->streams_ended.fetch_add(1, std::memory_order_release);
    worker_->ClientFinished();
  }

  Worker* const worker_;
  etcdserverpb::Watch::Stub* const stub_;
  const int watchers_;
  const etcdserverpb::WatchRequest& create_;
  WatchTotals* const totals_;
  MemberCompletion<WatchStream, &WatchStream::OnStart> start_done_;
  MemberCompletion<WatchStream, &WatchStream::OnWrite> write_done_;
  MemberCompletion<WatchStream, &WatchStream::OnRead> read_done_;
  MemberCompletion<WatchStream, &WatchStream::OnFinish> finish_done_;

  grpc::ClientContext ctx_;
  grpc::Status status_;
  etcdserverpb::WatchResponse resp_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      call_;
  int created_sent_ = 0;
  bool finishing_ = false;
  std::atomic<bool> cancelled_{false};
};

// The single writer: blocking Puts from the calling thread at options.rate, each value
// stamped with its send time.
struct WriterResult {
  uint64_t puts_ok = 0;
  uint64_t puts_failed = 0;
  LatencyHistogram latency;
  int64_t first_send_ns = 0;
  int64_t last_send_ns = 0;
};

WriterResult RunWriter(const BenchOptions& options, const std::shared_ptr<grpc::Channel>& channel,
                       const std::function<void(uint64_t)>& on_put) {
  auto stub = etcdserverpb::KV::NewStub(channel);
  const KeyFormat keys(options.key_prefix, options.key_size);
  FastRandom rng(0x3a7c4);
  etcdserverpb::PutRequest req;
  req.set_value(RandomValue(&rng, options.val_size));
  etcdserverpb::PutResponse resp;
  WriterResult out;
  const int64_t interval_ns = static_cast<int64_t>(1e9 / options.rate);
  const int64_t start_ns = NowNs();
  const int64_t end_ns = options.duration_ns > 0 ? start_ns + options.duration_ns : INT64_MAX;
  int64_t next_ns = start_ns;
  out.first_send_ns = start_ns;
  for (uint64_t i = 0;; ++i) {
    if (options.duration_ns == 0 && i >= options.total) break;
    const int64_t now_ns = NowNs();
    if (next_ns >= end_ns) break;
    if (next_ns > now_ns) std::this_thread::sleep_for(std::chrono::nanoseconds(next_ns - now_ns));
    next_ns += interval_ns;
    keys.Write(options.sequential_keys ? i % options.key_space : rng.Next() % options.key_space,
               req.mutable_key());
    grpc::ClientContext ctx;
    PrepareContext(options, &ctx, /*with_deadline=*/true);
    const int64_t sent_ns = NowNs();
    std::memcpy(req.mutable_value()->data(), &sent_ns, sizeof(sent_ns));
    const grpc::Status status = stub->Put(&ctx, req, &resp);
    const int64_t done_ns = NowNs();
    out.last_send_ns = sent_ns;
    if (status.ok()) {
      ++out.puts_ok;
      out.latency.Record(done_ns - sent_ns);
    } else {
      ++out.puts_failed;
    }
    on_put(i + 1);
  }
  return out;
}

double Ms(int64_t ns) { return ns / 1e6; }

}  // namespace

absl::StatusOr<RunResult> RunWatchWorkload(const BenchOptions& options) {
  const int stream_count = options.streams;
  const int conn_count = std::min(options.conns, stream_count);
  // One more connection for the writer, so its puts never queue behind event floods.
  auto conns = Connections::Open(options, conn_count + 1);
  if (!conns.ok()) return conns.status();
  std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>> stubs;
  for (int i = 0; i < conn_count; ++i) {
    stubs.push_back(etcdserverpb::Watch::NewStub(conns->channel(i)));
  }

  const KeyFormat keys(options.key_prefix, options.key_size);
  etcdserverpb::WatchRequest create;
  create.mutable_create_request()->set_key(options.key_prefix);
  create.mutable_create_request()->set_range_end(keys.PrefixEnd());

  const int threads = std::min(options.threads, stream_count);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(t, threads, options, 0, 0, 0x3a7c0000 + t));
  }
  WatchTotals totals;
  std::vector<WatchStream*> streams;
  for (int s = 0; s < stream_count; ++s) {
    Worker* w = workers[s % threads].get();
    const int watchers = static_cast<int>(ShareOf(options.watchers, stream_count, s));
    auto stream = std::make_unique<WatchStream>(w, stubs[s % conn_count].get(), options, watchers,
                                                create, &totals);
    streams.push_back(stream.get());
    w->AddClient(std::move(stream));
  }
  auto cancel_all = [&] {
    for (WatchStream* s : streams) s->Cancel();
  };

  RunClock clock;  // streams are not admitted: only the clock's start matters
  clock.start_ns = NowNs();
  clock.measure_start_ns = clock.start_ns;
  clock.measure_end_ns = INT64_MAX;
  WorkerPool pool(std::move(workers));
  pool.Start(&clock);

  // Phase 1: every watcher created before the first put.
  const int64_t create_timeout_ns = options.timeout_ns > 0 ? options.timeout_ns : kCreateTimeoutNs;
  const int64_t create_deadline_ns = NowNs() + create_timeout_ns;
  while (totals.created.load(std::memory_order_acquire) < options.watchers) {
    if (totals.streams_ended.load(std::memory_order_acquire) > 0 || pool.errors() > 0 ||
        NowNs() > create_deadline_ns) {
      cancel_all();
      pool.Join();
      return absl::UnavailableError(absl::StrCat(
          "only ", totals.created.load(), " of ", options.watchers, " watchers were created (",
          pool.errors(), " stream errors, timeout ", create_timeout_ns / 1e9, "s)"));
    }
    std::this_thread::sleep_for(kPoll);
  }
  const double create_seconds = (NowNs() - clock.start_ns) / 1e9;

  // Phase 2: the writer; the watchers count events on their threads meanwhile.
  ProgressBar bar(options.progress);
  const double cpu_start = ProcessCpuSeconds();
  auto last_draw = std::chrono::steady_clock::now();
  const int64_t writer_start_ns = NowNs();
  WriterResult writer = RunWriter(options, conns->channel(conn_count), [&](uint64_t puts) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw < kProgressRedraw) return;
    last_draw = now;
    const double elapsed_s = (NowNs() - writer_start_ns) / 1e9;
    const double fraction = options.duration_ns > 0 ? elapsed_s * 1e9 / options.duration_ns
                                                    : static_cast<double>(puts) / options.total;
    bar.Update(fraction, pool.completed(), pool.errors(), elapsed_s);
  });

  // Phase 3: wait for the last events, at most --watch-grace after the last put.
  const uint64_t expected = writer.puts_ok * static_cast<uint64_t>(options.watchers);
  const int64_t grace_end_ns = NowNs() + options.watch_grace_ns;
  while (pool.completed() < expected && NowNs() < grace_end_ns && !pool.AllFinished()) {
    std::this_thread::sleep_for(kPoll);
  }
  bar.Finish();
  cancel_all();
  pool.Join();

  RunResult result;
  result.client_cpu_seconds = ProcessCpuSeconds() - cpu_start;
  pool.Collect(writer.first_send_ns, &result);
  const uint64_t received = result.requests;
  if (received < expected) {
    result.errors_by_code[ErrorCodeName(kErrorMissingEvent)] += expected - received;
    result.errors += expected - received;
  }
  if (writer.puts_failed > 0) {
    result.errors_by_code["PUT_FAILED"] += writer.puts_failed;
    result.errors += writer.puts_failed;
  }
  result.extras.emplace_back("puts", writer.puts_ok);
  result.extras.emplace_back("put_rate", writer.last_send_ns > writer.first_send_ns
                                             ? (writer.puts_ok + writer.puts_failed - 1) * 1e9 /
                                                   (writer.last_send_ns - writer.first_send_ns)
                                             : 0);
  result.extras.emplace_back("put_p50_ms", Ms(writer.latency.ValueAtQuantile(0.5)));
  result.extras.emplace_back("put_p99_ms", Ms(writer.latency.ValueAtQuantile(0.99)));
  result.extras.emplace_back("events_expected", expected);
  result.extras.emplace_back("events_missing", received < expected ? expected - received : 0);
  result.extras.emplace_back("events_extra", received > expected ? received - expected : 0);
  result.extras.emplace_back("watch_create_seconds", create_seconds);
  return result;
}

}  // namespace geoetcd::bench
