// put, range, txn-put and mixed: one unary RPC outstanding per client, over gRPC C++'s
// async client or over the bench's own HTTP/2 client (--transport h2, bench/h2_client.h).
#include <optional>

#include "absl/strings/str_cat.h"
#include "bench/engine.h"
#include "bench/h2_client.h"
#include "bench/kv_wire.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd::bench {
namespace {

// The newest mod_revision seen per key, shared by every txn-put client. Stale entries are
// harmless: a failed compare returns the current revision and the client retries.
class RevisionTable {
 public:
  explicit RevisionTable(uint64_t keys) : revisions_(new std::atomic<int64_t>[keys]()) {}
  int64_t Get(uint64_t key) const { return revisions_[key].load(std::memory_order_relaxed); }
  void Set(uint64_t key, int64_t rev) { revisions_[key].store(rev, std::memory_order_relaxed); }

 private:
  std::unique_ptr<std::atomic<int64_t>[]> revisions_;
};

// What a KV client does around each RPC, whatever carries it: admission, choosing the
// operation and key, filling the request, and recording the outcome.
class KvClientBase : public Client {
 public:
  KvClientBase(Worker* worker, const BenchOptions& options, const KeyFormat& keys,
               RevisionTable* revisions)
      : worker_(worker), options_(options), keys_(keys), revisions_(revisions) {
    const std::string value = RandomValue(worker->rng(), options.val_size);
    put_req_.set_value(value);
    range_req_.set_serializable(options.serializable);
    if (options.workload == Workload::kTxnPut) {
      auto* cmp = txn_req_.add_compare();
      cmp->set_result(etcdserverpb::Compare::EQUAL);
      cmp->set_target(etcdserverpb::Compare::MOD);
      txn_req_.add_success()->mutable_request_put()->set_value(value);
      // The failure branch reads the key, so a lost race costs no extra round trip.
      txn_req_.add_failure()->mutable_request_range();
    }
  }

  void Start() override { Next(); }

 protected:
  // Sends the next request now, later (WaitUntil), or finishes the client.
  void Next() {
    int64_t send_at = 0;
    switch (worker_->Admit(NowNs(), &send_at, &measured_)) {
      case Worker::Admission::kStop:
        worker_->ClientFinished();
        return;
      case Worker::Admission::kWaitUntil:
        WaitUntil(send_at);
        return;
      case Worker::Admission::kSend:
        Send();
        return;
    }
  }

  // Calls Send() at `at_ns`.
  virtual void WaitUntil(int64_t at_ns) = 0;
  virtual void Send() = 0;

  // Chooses op_ and key_ and writes them into that operation's request.
  void PrepareRequest() {
    op_ = ChooseOp();
    if (op_ == kOpTxn && retry_key_) {
      key_ = *retry_key_;
      retry_key_.reset();
    } else {
      key_ = worker_->NextKeyIndex();
    }
    switch (op_) {
      case kOpPut:
        keys_.Write(key_, put_req_.mutable_key());
        break;
      case kOpRange:
        keys_.Write(key_, range_req_.mutable_key());
        break;
      case kOpTxn: {
        auto* cmp = txn_req_.mutable_compare(0);
        keys_.Write(key_, cmp->mutable_key());
        cmp->set_mod_revision(revisions_->Get(key_));
        *txn_req_.mutable_success(0)->mutable_request_put()->mutable_key() = cmp->key();
        *txn_req_.mutable_failure(0)->mutable_request_range()->mutable_key() = cmp->key();
        break;
      }
    }
  }

  // Records the RPC that ended at `done_ns` with gRPC status `code`; `fields` are read
  // only when it succeeded.
  void Record(int code, const KvResponseFields& fields, int64_t done_ns) {
    if (code != 0) {
      worker_->RecordError(code, done_ns, measured_);
      return;
    }
    worker_->RecordOk(op_, send_ns_, done_ns, measured_);
    if (op_ == kOpTxn) OnTxnResponse(fields);
    // A miss is cheaper than a hit: counted so a forgotten preload shows in the result.
    if (op_ == kOpRange && measured_ && fields.range_kvs == 0) worker_->Count(kRangeMiss);
  }

  Worker* const worker_;
  const BenchOptions& options_;
  etcdserverpb::PutRequest put_req_;
  etcdserverpb::RangeRequest range_req_;
  etcdserverpb::TxnRequest txn_req_;
  int op_ = kOpPut;
  int64_t send_ns_ = 0;

 private:
  int ChooseOp() {
    switch (options_.workload) {
      case Workload::kPut:
        return kOpPut;
      case Workload::kTxnPut:
        return kOpTxn;
      case Workload::kMixed:
        return worker_->rng()->NextDouble() < options_.read_ratio ? kOpRange : kOpPut;
      default:
        return kOpRange;  // range, grpc-empty
    }
  }

  void OnTxnResponse(const KvResponseFields& fields) {
    if (fields.txn_succeeded) {
      // The Put is the txn's only write: its mod_revision is the response revision.
      revisions_->Set(key_, fields.txn_revision);
      if (measured_) worker_->Count(kCasOk);
      return;
    }
    revisions_->Set(key_, fields.txn_current_mod);
    retry_key_ = key_;
    if (measured_) worker_->Count(kCasConflict);
  }

  const KeyFormat& keys_;
  RevisionTable* const revisions_;
  uint64_t key_ = 0;
  std::optional<uint64_t> retry_key_;
  bool measured_ = false;
};

// Over gRPC C++'s async API: completions arrive on the worker's completion queue.
class KvClient final : public KvClientBase {
 public:
  KvClient(Worker* worker, etcdserverpb::KV::Stub* stub, const BenchOptions& options,
           const KeyFormat& keys, RevisionTable* revisions)
      : KvClientBase(worker, options, keys, revisions),
        stub_(stub),
        rpc_done_(this),
        alarm_done_(this) {}

 private:
  void WaitUntil(int64_t at_ns) override {
    alarm_.Set(worker_->cq(), DeadlineIn(at_ns - NowNs()), &alarm_done_);
  }

  void OnAlarm(bool) { Send(); }

  void Send() override {
    PrepareRequest();
    // The reader lives in the call's arena, which the context releases: drop it first.
    put_call_.reset();
    range_call_.reset();
    txn_call_.reset();
    ctx_.emplace();
    PrepareContext(options_, &*ctx_, /*with_deadline=*/true);
    grpc::CompletionQueue* cq = worker_->cq();
    send_ns_ = NowNs();
    switch (op_) {
      case kOpPut:
        put_call_ = stub_->PrepareAsyncPut(&*ctx_, put_req_, cq);
        put_call_->StartCall();
        put_call_->Finish(&put_resp_, &status_, &rpc_done_);
        break;
      case kOpRange:
        range_call_ = stub_->PrepareAsyncRange(&*ctx_, range_req_, cq);
        range_call_->StartCall();
        range_call_->Finish(&range_resp_, &status_, &rpc_done_);
        break;
      case kOpTxn:
        txn_call_ = stub_->PrepareAsyncTxn(&*ctx_, txn_req_, cq);
        txn_call_->StartCall();
        txn_call_->Finish(&txn_resp_, &status_, &rpc_done_);
        break;
    }
  }

  void OnRpc(bool) {
    const int64_t done_ns = NowNs();
    KvResponseFields fields;
    if (status_.ok()) {
      if (op_ == kOpRange) fields.range_kvs = range_resp_.kvs_size();
      if (op_ == kOpTxn) {
        fields.txn_succeeded = txn_resp_.succeeded();
        fields.txn_revision = txn_resp_.header().revision();
        if (txn_resp_.responses_size() > 0) {
          const auto& range = txn_resp_.responses(0).response_range();
          if (range.kvs_size() > 0) fields.txn_current_mod = range.kvs(0).mod_revision();
        }
      }
    }
    Record(status_.error_code(), fields, done_ns);
    Next();
  }

  etcdserverpb::KV::Stub* const stub_;
  MemberCompletion<KvClient, &KvClient::OnRpc> rpc_done_;
  MemberCompletion<KvClient, &KvClient::OnAlarm> alarm_done_;
  grpc::Alarm alarm_;

  std::optional<grpc::ClientContext> ctx_;
  grpc::Status status_;
  etcdserverpb::PutResponse put_resp_;
  etcdserverpb::RangeResponse range_resp_;
  etcdserverpb::TxnResponse txn_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> put_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::RangeResponse>> range_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::TxnResponse>> txn_call_;
};

// The h2 transport's methods, indexes into H2ChannelOptions::paths.
enum H2Method { kH2Put, kH2Range, kH2Txn };

// Over the bench's HTTP/2 client: the worker runs the H2Loop that owns `channel`.
class KvH2Client final : public KvClientBase, public H2Call, public H2Timer {
 public:
  KvH2Client(Worker* worker, H2Loop* loop, H2Channel* channel, const BenchOptions& options,
             const KeyFormat& keys, RevisionTable* revisions)
      : KvClientBase(worker, options, keys, revisions), loop_(loop), channel_(channel) {}

 private:
  void WaitUntil(int64_t at_ns) override { loop_->AddTimer(at_ns, this); }
  void OnTimer() override { Send(); }

  void Send() override {
    PrepareRequest();
    switch (op_) {
      case kOpPut:
        SetRequest(kH2Put, put_req_);
        break;
      case kOpRange:
        SetRequest(kH2Range, range_req_);
        break;
      case kOpTxn:
        SetRequest(kH2Txn, txn_req_);
        break;
    }
    send_ns_ = NowNs();
    channel_->Start(this);
  }

  void OnDone(int code, std::string_view) override {
    const int64_t done_ns = NowNs();
    KvResponseFields fields;
    if (code == 0) {
      bool ok = true;
      switch (op_) {
        case kOpPut:
          ok = ScanMessage(response());
          break;
        case kOpRange:
          ok = ScanRangeResponse(response(), &fields);
          break;
        case kOpTxn:
          ok = ScanTxnResponse(response(), &fields);
          break;
      }
      if (!ok) code = kGrpcInternal;  // gRPC fails a response it cannot parse the same way
    }
    Record(code, fields, done_ns);
    Next();
  }

  H2Loop* const loop_;
  H2Channel* const channel_;
};

// The workload's counters as result extras.
void AddExtras(const BenchOptions& options, const WorkerPool& pool, RunResult* result) {
  if (options.workload == Workload::kRange || options.workload == Workload::kMixed) {
    uint64_t misses = 0;
    for (const auto& w : pool.workers()) misses += w->counters()[kRangeMiss];
    result->extras.emplace_back("range_misses", misses);
  }
  if (options.workload == Workload::kTxnPut) {
    uint64_t ok = 0;
    uint64_t conflicts = 0;
    for (const auto& w : pool.workers()) {
      ok += w->counters()[kCasOk];
      conflicts += w->counters()[kCasConflict];
    }
    result->extras.emplace_back("cas_ok", ok);
    result->extras.emplace_back("cas_conflicts", conflicts);
    result->extras.emplace_back("cas_ok_per_sec",
                                result->seconds > 0 ? ok / result->seconds : 0);
  }
}

std::vector<std::unique_ptr<Worker>> MakeWorkers(const BenchOptions& options, int threads) {
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(t, threads, options,
                                               ShareOf(options.total, threads, t),
                                               options.rate / threads, 0x5eed0000 + t));
  }
  return workers;
}

absl::Status RunOverGrpc(const BenchOptions& options, const KeyFormat& keys,
                         RevisionTable* revisions, RunResult* result) {
  const int conn_count = std::min(options.conns, options.clients);
  auto conns = Connections::Open(options, conn_count);
  if (!conns.ok()) return conns.status();
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  for (int i = 0; i < conn_count; ++i) {
    stubs.push_back(etcdserverpb::KV::NewStub(conns->channel(i)));
  }
  const int threads = std::min(options.threads, options.clients);
  std::vector<std::unique_ptr<Worker>> workers = MakeWorkers(options, threads);
  // Client i uses connection i % conns and thread i % threads.
  for (int i = 0; i < options.clients; ++i) {
    Worker* w = workers[i % threads].get();
    w->AddClient(
        std::make_unique<KvClient>(w, stubs[i % conn_count].get(), options, keys, revisions));
  }
  WorkerPool pool(std::move(workers));
  RunWorkers(options, &pool, result);
  AddExtras(options, pool, result);
  return absl::OkStatus();
}

absl::Status RunOverH2(const BenchOptions& options, const KeyFormat& keys,
                       RevisionTable* revisions, RunResult* result) {
  const int conn_count = std::min(options.conns, options.clients);
  auto sockets = ConnectH2(options, conn_count);
  if (!sockets.ok()) return sockets.status();
  H2ChannelOptions channel_options;
  channel_options.paths = {"/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range",
                           "/etcdserverpb.KV/Txn"};
  channel_options.metadata = options.metadata;
  channel_options.timeout_ns = options.timeout_ns;
  channel_options.connect_timeout_ns = options.connect_timeout_ns;
  // A connection belongs to one thread, so there are at most as many threads as conns.
  const int threads = std::min({options.threads, options.clients, conn_count});
  std::vector<std::unique_ptr<H2Loop>> loops;
  for (int t = 0; t < threads; ++t) loops.push_back(std::make_unique<H2Loop>());
  // Connection j belongs to thread j % threads.
  std::vector<H2Channel*> channels;
  for (int j = 0; j < conn_count; ++j) {
    channels.push_back(loops[j % threads]->AddChannel(&channel_options, (*sockets)[j]));
  }
  std::vector<std::unique_ptr<Worker>> workers = MakeWorkers(options, threads);
  // Client i runs on thread t = i % threads and spreads over that thread's connections.
  for (int i = 0; i < options.clients; ++i) {
    const int t = i % threads;
    const int thread_conns = (conn_count - t + threads - 1) / threads;
    H2Channel* channel = channels[t + threads * ((i / threads) % thread_conns)];
    workers[t]->AddClient(std::make_unique<KvH2Client>(workers[t].get(), loops[t].get(),
                                                       channel, options, keys, revisions));
  }
  for (int t = 0; t < threads; ++t) workers[t]->set_loop(loops[t].get());
  WorkerPool pool(std::move(workers));
  RunWorkers(options, &pool, result);
  AddExtras(options, pool, result);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunResult> RunKvWorkload(const BenchOptions& options) {
  const KeyFormat keys(options.key_prefix, options.key_size);
  std::unique_ptr<RevisionTable> revisions;
  if (options.workload == Workload::kTxnPut) {
    revisions = std::make_unique<RevisionTable>(options.key_space);
  }
  RunResult result;
  const absl::Status run = options.transport == Transport::kH2
                               ? RunOverH2(options, keys, revisions.get(), &result)
                               : RunOverGrpc(options, keys, revisions.get(), &result);
  if (!run.ok()) return run;
  return result;
}

}  // namespace geoetcd::bench
