// put, range, txn-put and mixed: one unary RPC outstanding per client.
#include <optional>

#include "absl/strings/str_cat.h"
#include "bench/engine.h"
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

class KvClient final : public Client {
 public:
  KvClient(Worker* worker, etcdserverpb::KV::Stub* stub, const BenchOptions& options,
           const KeyFormat& keys, RevisionTable* revisions)
      : worker_(worker),
        stub_(stub),
        options_(options),
        keys_(keys),
        revisions_(revisions),
        rpc_done_(this),
        alarm_done_(this) {
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

 private:
  void Next() {
    int64_t send_at = 0;
    switch (worker_->Admit(NowNs(), &send_at, &measured_)) {
      case Worker::Admission::kStop:
        worker_->ClientFinished();
        return;
      case Worker::Admission::kWaitUntil:
        alarm_.Set(worker_->cq(), DeadlineIn(send_at - NowNs()), &alarm_done_);
        return;
      case Worker::Admission::kSend:
        Send();
        return;
    }
  }

  void OnAlarm(bool) { Send(); }

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

  void Send() {
    op_ = ChooseOp();
    if (op_ == kOpTxn && retry_key_) {
      key_ = *retry_key_;
      retry_key_.reset();
    } else {
      key_ = worker_->NextKeyIndex();
    }
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
        keys_.Write(key_, put_req_.mutable_key());
        put_call_ = stub_->PrepareAsyncPut(&*ctx_, put_req_, cq);
        put_call_->StartCall();
        put_call_->Finish(&put_resp_, &status_, &rpc_done_);
        break;
      case kOpRange:
        keys_.Write(key_, range_req_.mutable_key());
        range_call_ = stub_->PrepareAsyncRange(&*ctx_, range_req_, cq);
        range_call_->StartCall();
        range_call_->Finish(&range_resp_, &status_, &rpc_done_);
        break;
      case kOpTxn: {
        auto* cmp = txn_req_.mutable_compare(0);
        keys_.Write(key_, cmp->mutable_key());
        cmp->set_mod_revision(revisions_->Get(key_));
        *txn_req_.mutable_success(0)->mutable_request_put()->mutable_key() = cmp->key();
        *txn_req_.mutable_failure(0)->mutable_request_range()->mutable_key() = cmp->key();
        txn_call_ = stub_->PrepareAsyncTxn(&*ctx_, txn_req_, cq);
        txn_call_->StartCall();
        txn_call_->Finish(&txn_resp_, &status_, &rpc_done_);
        break;
      }
    }
  }

  void OnRpc(bool) {
    const int64_t done_ns = NowNs();
    if (!status_.ok()) {
      worker_->RecordError(status_.error_code(), done_ns, measured_);
    } else {
      worker_->RecordOk(op_, send_ns_, done_ns, measured_);
      if (op_ == kOpTxn) OnTxnResponse();
      // A miss is cheaper than a hit: counted so a forgotten preload shows in the result.
      if (op_ == kOpRange && measured_ && range_resp_.kvs_size() == 0) worker_->Count(kRangeMiss);
    }
    Next();
  }

  void OnTxnResponse() {
    if (txn_resp_.succeeded()) {
      // The Put is the txn's only write: its mod_revision is the response revision.
      revisions_->Set(key_, txn_resp_.header().revision());
      if (measured_) worker_->Count(kCasOk);
      return;
    }
    int64_t current = 0;
    if (txn_resp_.responses_size() > 0) {
      const auto& range = txn_resp_.responses(0).response_range();
      if (range.kvs_size() > 0) current = range.kvs(0).mod_revision();
    }
    revisions_->Set(key_, current);
    retry_key_ = key_;
    if (measured_) worker_->Count(kCasConflict);
  }

  Worker* const worker_;
  etcdserverpb::KV::Stub* const stub_;
  const BenchOptions& options_;
  const KeyFormat& keys_;
  RevisionTable* const revisions_;
  MemberCompletion<KvClient, &KvClient::OnRpc> rpc_done_;
  MemberCompletion<KvClient, &KvClient::OnAlarm> alarm_done_;
  grpc::Alarm alarm_;

  std::optional<grpc::ClientContext> ctx_;
  grpc::Status status_;
  etcdserverpb::PutRequest put_req_;
  etcdserverpb::PutResponse put_resp_;
  etcdserverpb::RangeRequest range_req_;
  etcdserverpb::RangeResponse range_resp_;
  etcdserverpb::TxnRequest txn_req_;
  etcdserverpb::TxnResponse txn_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> put_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::RangeResponse>> range_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::TxnResponse>> txn_call_;

  int op_ = kOpPut;
  uint64_t key_ = 0;
  std::optional<uint64_t> retry_key_;
  int64_t send_ns_ = 0;
  bool measured_ = false;
};

}  // namespace

absl::StatusOr<RunResult> RunKvWorkload(const BenchOptions& options) {
  const int conn_count = std::min(options.conns, options.clients);
  auto conns = Connections::Open(options, conn_count);
  if (!conns.ok()) return conns.status();
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  for (int i = 0; i < conn_count; ++i) {
    stubs.push_back(etcdserverpb::KV::NewStub(conns->channel(i)));
  }

  const KeyFormat keys(options.key_prefix, options.key_size);
  std::unique_ptr<RevisionTable> revisions;
  if (options.workload == Workload::kTxnPut) {
    revisions = std::make_unique<RevisionTable>(options.key_space);
  }
  const int threads = std::min(options.threads, options.clients);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(t, threads, options,
                                               ShareOf(options.total, threads, t),
                                               options.rate / threads, 0x5eed0000 + t));
  }
  // Client i uses connection i % conns and thread i % threads.
  for (int i = 0; i < options.clients; ++i) {
    Worker* w = workers[i % threads].get();
    w->AddClient(
        std::make_unique<KvClient>(w, stubs[i % conn_count].get(), options, keys, revisions.get()));
  }
  WorkerPool pool(std::move(workers));
  RunResult result;
  RunWorkers(options, &pool, &result);
  if (options.workload == Workload::kRange || options.workload == Workload::kMixed) {
    uint64_t misses = 0;
    for (const auto& w : pool.workers()) misses += w->counters()[kRangeMiss];
    result.extras.emplace_back("range_misses", misses);
  }
  if (options.workload == Workload::kTxnPut) {
    uint64_t ok = 0;
    uint64_t conflicts = 0;
    for (const auto& w : pool.workers()) {
      ok += w->counters()[kCasOk];
      conflicts += w->counters()[kCasConflict];
    }
    result.extras.emplace_back("cas_ok", ok);
    result.extras.emplace_back("cas_conflicts", conflicts);
    result.extras.emplace_back("cas_ok_per_sec", result.seconds > 0 ? ok / result.seconds : 0);
  }
  return result;
}

}  // namespace geoetcd::bench
