// lease: each client grants a lease, then sends LeaseKeepAlive requests on its own stream,
// one round trip at a time. Grants and keep-alives are both requests; their latencies are
// also reported apart.
#include <optional>

#include "bench/engine.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd::bench {
namespace {

class LeaseClient final : public Client {
 public:
  LeaseClient(Worker* worker, etcdserverpb::Lease::Stub* stub, const BenchOptions& options)
      : worker_(worker),
        stub_(stub),
        options_(options),
        grant_done_(this),
        alarm_done_(this),
        start_done_(this),
        write_done_(this),
        read_done_(this),
        finish_done_(this) {
    grant_req_.set_ttl(options.lease_ttl_s);
  }

  void Start() override { Next(); }

 private:
  // Admits the next request: a grant when there is no stream, else a keep-alive.
  void Next() {
    int64_t send_at = 0;
    switch (worker_->Admit(NowNs(), &send_at, &measured_)) {
      case Worker::Admission::kStop:
        if (stream_) {
          stopping_ = true;
          ctx_->TryCancel();
          stream_->Finish(&status_, &finish_done_);
        } else {
          worker_->ClientFinished();
        }
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

  void Send() {
    send_ns_ = NowNs();
    if (stream_) {
      stream_->Write(keepalive_req_, &write_done_);
      return;
    }
    grant_call_.reset();
    ctx_.emplace();
    PrepareContext(options_, &*ctx_, /*with_deadline=*/true);
    grant_call_ = stub_->PrepareAsyncLeaseGrant(&*ctx_, grant_req_, worker_->cq());
    grant_call_->StartCall();
    grant_call_->Finish(&grant_resp_, &status_, &grant_done_);
  }

  void OnGrant(bool) {
    const int64_t done_ns = NowNs();
    if (!status_.ok()) {
      worker_->RecordError(status_.error_code(), done_ns, measured_);
      Next();
      return;
    }
    worker_->RecordOk(kOpGrant, send_ns_, done_ns, measured_);
    keepalive_req_.set_id(grant_resp_.id());
    grant_call_.reset();
    ctx_.emplace();
    // No deadline: the stream lives as long as the run.
    PrepareContext(options_, &*ctx_, /*with_deadline=*/false);
    stream_ = stub_->PrepareAsyncLeaseKeepAlive(&*ctx_, worker_->cq());
    stream_->StartCall(&start_done_);
  }

  void OnStart(bool ok) {
    if (!ok) {
      stream_->Finish(&status_, &finish_done_);
      return;
    }
    Next();
  }

  void OnWrite(bool ok) {
    if (!ok) {
      stream_->Finish(&status_, &finish_done_);
      return;
    }
    stream_->Read(&keepalive_resp_, &read_done_);
  }

  void OnRead(bool ok) {
    if (!ok) {
      stream_->Finish(&status_, &finish_done_);
      return;
    }
    const int64_t done_ns = NowNs();
    if (keepalive_resp_.ttl() <= 0) {
      worker_->RecordError(kErrorLeaseExpired, done_ns, measured_);
    } else {
      worker_->RecordOk(kOpKeepAlive, send_ns_, done_ns, measured_);
    }
    Next();
  }

  // The stream ended: by us at the end of the run, or by a failure (then grant anew).
  void OnFinish(bool) {
    stream_.reset();
    if (stopping_) {
      worker_->ClientFinished();
      return;
    }
    const int code = status_.ok() ? grpc::StatusCode::UNKNOWN : status_.error_code();
    worker_->RecordError(code, NowNs(), measured_);
    Next();
  }

  Worker* const worker_;
  etcdserverpb::Lease::Stub* const stub_;
  const BenchOptions& options_;
  MemberCompletion<LeaseClient, &LeaseClient::OnGrant> grant_done_;
  MemberCompletion<LeaseClient, &LeaseClient::OnAlarm> alarm_done_;
  MemberCompletion<LeaseClient, &LeaseClient::OnStart> start_done_;
  MemberCompletion<LeaseClient, &LeaseClient::OnWrite> write_done_;
  MemberCompletion<LeaseClient, &LeaseClient::OnRead> read_done_;
  MemberCompletion<LeaseClient, &LeaseClient::OnFinish> finish_done_;
  grpc::Alarm alarm_;

  std::optional<grpc::ClientContext> ctx_;
  grpc::Status status_;
  etcdserverpb::LeaseGrantRequest grant_req_;
  etcdserverpb::LeaseGrantResponse grant_resp_;
  etcdserverpb::LeaseKeepAliveRequest keepalive_req_;
  etcdserverpb::LeaseKeepAliveResponse keepalive_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::LeaseGrantResponse>> grant_call_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                                etcdserverpb::LeaseKeepAliveResponse>>
      stream_;

  int64_t send_ns_ = 0;
  bool measured_ = false;
  bool stopping_ = false;
};

}  // namespace

absl::StatusOr<RunResult> RunLeaseWorkload(const BenchOptions& options) {
  const int conn_count = std::min(options.conns, options.clients);
  auto conns = Connections::Open(options, conn_count);
  if (!conns.ok()) return conns.status();
  std::vector<std::unique_ptr<etcdserverpb::Lease::Stub>> stubs;
  for (int i = 0; i < conn_count; ++i) {
    stubs.push_back(etcdserverpb::Lease::NewStub(conns->channel(i)));
  }
  const int threads = std::min(options.threads, options.clients);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < threads; ++t) {
    workers.push_back(std::make_unique<Worker>(t, threads, options,
                                               ShareOf(options.total, threads, t),
                                               options.rate / threads, 0x1ea5e000 + t));
  }
  for (int i = 0; i < options.clients; ++i) {
    Worker* w = workers[i % threads].get();
    w->AddClient(std::make_unique<LeaseClient>(w, stubs[i % conn_count].get(), options));
  }
  WorkerPool pool(std::move(workers));
  RunResult result;
  RunWorkers(options, &pool, &result);
  return result;
}

}  // namespace geoetcd::bench
