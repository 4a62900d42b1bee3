#include "gateway/snapshot_stream.h"

#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/grpc_status.h"
#include "gateway/rocksdb_storage.h"
#include "gateway/snapshot_archive.h"

namespace geoetcd {
namespace {

namespace fs = std::filesystem;

class Refused final : public grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse> {
 public:
  explicit Refused(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

// One Snapshot call. Every step runs on the streamer's worker; gRPC's reactions (OnWriteDone)
// only queue the next one. Only the worker calls Finish, as the last thing it does with the
// stream, so OnDone (which deletes it) never races a step.
class SnapshotStreamer::Stream final
    : public grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse> {
 public:
  Stream(SnapshotStreamer* owner, uint64_t id)
      : owner_(owner), dir_(absl::StrCat(owner->scratch_dir_, "/", id)) {
    owner_->Post([this] { Begin(); });
  }

  void OnWriteDone(bool ok) override {
    owner_->Post([this, ok] { Next(ok); });
  }
  void OnCancel() override { cancelled_.store(true); }
  void OnDone() override {
    owner_->active_.fetch_sub(1);
    delete this;
  }

 private:
  void Begin() {
    if (cancelled_.load()) return End(absl::CancelledError("geoetcd: snapshot cancelled"));
    absl::Status status = owner_->storage_->Checkpoint(dir_);
    if (status.ok()) {
      auto reader = ArchiveReader::Open(dir_);
      status = reader.status();
      if (reader.ok()) reader_ = *std::move(reader);
    }
    if (!status.ok()) return End(status);
    Next(true);
  }

  void Next(bool ok) {
    // A failed write means the call is over (client cancelled, deadline, shutdown).
    if (!ok || cancelled_.load()) return End(absl::CancelledError("geoetcd: snapshot cancelled"));
    if (digest_sent_) return End(absl::OkStatus());
    response_.Clear();
    if (!reader_->body_done()) {
      std::string blob;
      if (auto s = reader_->Read(kSnapshotBlobBytes, &blob); !s.ok()) return End(s);
      sent_bytes_ += blob.size();
      response_.set_remaining_bytes(reader_->body_bytes() - sent_bytes_);
      response_.set_blob(std::move(blob));
    } else {
      // As etcd: the digest travels alone, last, with remaining_bytes 0.
      response_.set_blob(reader_->Digest());
      digest_sent_ = true;
    }
    StartWrite(&response_);
  }

  void End(const absl::Status& status) {
    reader_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    Finish(ToGrpcStatus(status));
  }

  SnapshotStreamer* const owner_;
  const std::string dir_;
  std::atomic<bool> cancelled_{false};
  std::unique_ptr<ArchiveReader> reader_;
  etcdserverpb::SnapshotResponse response_;  // in flight until OnWriteDone
  uint64_t sent_bytes_ = 0;
  bool digest_sent_ = false;
};

SnapshotStreamer::SnapshotStreamer(RocksDbStorage* storage, std::string scratch_dir,
                                   int streams_max)
    : storage_(storage),
      scratch_dir_(std::move(scratch_dir)),
      streams_max_(streams_max),
      worker_([this] { WorkerLoop(); }) {
  std::error_code ignored;
  fs::remove_all(scratch_dir_, ignored);
}

SnapshotStreamer::~SnapshotStreamer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  worker_.join();
}

grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* SnapshotStreamer::Start(
    grpc::CallbackServerContext* ctx) {
  if (active_.fetch_add(1) >= streams_max_) {
    active_.fetch_sub(1);
    return new Refused(absl::UnavailableError(absl::StrCat(
        "geoetcd: too many snapshots in progress (at most ", streams_max_, "); retry later")));
  }
  std::error_code ec;
  fs::create_directories(scratch_dir_, ec);
  if (ec) {
    active_.fetch_sub(1);
    return new Refused(absl::InternalError(
        absl::StrCat("geoetcd: cannot create ", scratch_dir_, ": ", ec.message())));
  }
  return new Stream(this, next_id_.fetch_add(1));
}

void SnapshotStreamer::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void SnapshotStreamer::WorkerLoop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace geoetcd
