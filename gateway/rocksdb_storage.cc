#include "gateway/rocksdb_storage.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "gateway/metrics.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace geoetcd {
namespace {

absl::Status FromRocksDb(const rocksdb::Status& s) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat("rocksdb: ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsNotSupported()) return absl::UnimplementedError(message);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

// RocksDB reports a held LOCK file as an IOError: "lock hold by current process" when this
// process has the dir open, "While lock file: <dir>/LOCK: Resource temporarily unavailable"
// when another process does.
absl::Status OpenError(const std::string& dir, const rocksdb::Status& s) {
  const std::string text = s.ToString();
  if (s.IsIOError() && absl::StrContains(text, "/LOCK")) {
    const std::string lock = absl::StrCat(dir, "/LOCK");
    if (absl::StrContains(text, "lock hold by current process")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data dir ", dir, " is already open in this process (lock held on ", lock, ")"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", dir, " is in use by another geoetcd process (lock held on ", lock, ")"));
  }
  const absl::Status status = FromRocksDb(s);
  return absl::Status(status.code(), absl::StrCat("opening data dir ", dir, ": ", text));
}

rocksdb::CompressionType ChooseCompression(bool compress) {
  if (!compress) return rocksdb::kNoCompression;
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  const bool has_lz4 =
      std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end();
  return has_lz4 ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
}

rocksdb::Options MakeOptions(const RocksDbOptions& opts) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(opts.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(opts.bloom_bits_per_key));

  rocksdb::Options options;
  options.create_if_missing = true;
  options.max_background_jobs = opts.max_background_jobs;
  options.write_buffer_size = opts.write_buffer_bytes;
  options.compression = ChooseCompression(opts.compress);
  options.keep_log_file_num = opts.info_log_files_max;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return options;
}

void AppendTo(const WriteBatch& batch, rocksdb::WriteBatch* out) {
  for (const WriteBatch::Op& op : batch.ops()) {
    switch (op.type) {
      case WriteBatch::OpType::kPut:
        out->Put(op.key, op.value);
        break;
      case WriteBatch::OpType::kDelete:
        out->Delete(op.key);
        break;
      case WriteBatch::OpType::kDeleteRange:
        // An empty range deletes nothing; RocksDB would reject the whole write.
        if (op.key < op.value) out->DeleteRange(op.key, op.value);
        break;
    }
  }
}

rocksdb::Status WriteMerged(rocksdb::DB* db, const rocksdb::WriteOptions& options,
                            rocksdb::WriteBatch* merged) {
  if (merged->Count() > 0) return db->Write(options, merged);
  // An empty write may not touch the WAL, so a sync request needs an explicit WAL sync.
  return options.sync ? db->FlushWAL(/*sync=*/true) : rocksdb::Status::OK();
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStorage>> RocksDbStorage::Open(const std::string& dir,
                                                                     Executor* executor,
                                                                     const RocksDbOptions& opts) {
  CHECK(executor != nullptr);
  CHECK(opts.queue_batches_max > 0);
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(MakeOptions(opts), dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  return std::unique_ptr<RocksDbStorage>(
      new RocksDbStorage(std::unique_ptr<rocksdb::DB>(raw), executor, opts));
}

RocksDbStorage::RocksDbStorage(std::unique_ptr<rocksdb::DB> db, Executor* executor,
                               const RocksDbOptions& opts)
    : db_(std::move(db)),
      executor_(executor),
      queue_batches_max_(opts.queue_batches_max),
      group_bytes_max_(opts.group_bytes_max),
      sync_duration_seconds_(opts.sync_duration_seconds),
      writer_([this] { WriterLoop(); }) {}

RocksDbStorage::~RocksDbStorage() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
  db_->Close().PermitUncheckedError();
}

void RocksDbStorage::Write(WriteBatch batch, bool sync, Done done) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    space_cv_.wait(lock, [this] { return queue_.size() < queue_batches_max_; });
    queue_.push_back({std::move(batch), sync, std::move(done)});
  }
  work_cv_.notify_one();
}

void RocksDbStorage::WriterLoop() {
  for (;;) {
    std::vector<Pending> group = TakeGroup();
    if (group.empty()) return;
    CommitGroup(std::move(group));
  }
}

std::vector<RocksDbStorage::Pending> RocksDbStorage::TakeGroup() {
  std::vector<Pending> group;
  {
    std::unique_lock<std::mutex> lock(mu_);
    work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    size_t group_bytes = 0;
    while (!queue_.empty()) {
      const size_t next_bytes = queue_.front().batch.size_bytes();
      if (!group.empty() && group_bytes + next_bytes > group_bytes_max_) break;
      group_bytes += next_bytes;
      group.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  space_cv_.notify_all();
  return group;
}

void RocksDbStorage::CommitGroup(std::vector<Pending> group) {
  rocksdb::WriteBatch merged;
  rocksdb::WriteOptions write_options;
  std::vector<Done> dones;
  dones.reserve(group.size());
  for (Pending& pending : group) {
    AppendTo(pending.batch, &merged);
    write_options.sync = write_options.sync || pending.sync;
    dones.push_back(std::move(pending.done));
  }
  const auto start = std::chrono::steady_clock::now();
  const rocksdb::Status s = WriteMerged(db_.get(), write_options, &merged);
  if (write_options.sync && sync_duration_seconds_ != nullptr) {
    sync_duration_seconds_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const absl::Status status = FromRocksDb(s);
  batches_written_.fetch_add(group.size(), std::memory_order_relaxed);
  groups_written_.fetch_add(1, std::memory_order_relaxed);
  if (write_options.sync) synced_groups_.fetch_add(1, std::memory_order_relaxed);
  executor_->Post([dones = std::move(dones), status] {
    for (const Done& done : dones) done(status);
  });
}

absl::Status RocksDbStorage::Get(std::string_view key, std::string* value) const {
  return FromRocksDb(db_->Get(rocksdb::ReadOptions(), ToSlice(key), value));
}

absl::Status RocksDbStorage::Scan(std::string_view begin, std::string_view end,
                                  const Visitor& visit) const {
  const rocksdb::Slice upper = ToSlice(end);
  rocksdb::ReadOptions read_options;
  if (!end.empty()) read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  for (it->Seek(ToSlice(begin)); it->Valid(); it->Next()) {
    if (!visit(ToView(it->key()), ToView(it->value()))) break;
  }
  return FromRocksDb(it->status());
}

int64_t RocksDbStorage::ApproximateSizeBytes() const {
  uint64_t sst_bytes = 0;
  uint64_t memtable_bytes = 0;
  db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst_bytes);
  db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtable_bytes);
  return static_cast<int64_t>(sst_bytes + memtable_bytes);
}

absl::Status RocksDbStorage::CompactRange(std::string_view begin, std::string_view end) {
  const rocksdb::Slice begin_slice = ToSlice(begin);
  const rocksdb::Slice end_slice = ToSlice(end);
  return FromRocksDb(db_->CompactRange(rocksdb::CompactRangeOptions(), &begin_slice,
                                       end.empty() ? nullptr : &end_slice));
}

absl::Status RocksDbStorage::Checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return FromRocksDb(s);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocksDb(checkpoint->CreateCheckpoint(dir));
}

RocksDbStorage::Stats RocksDbStorage::stats() const {
  Stats stats;
  stats.batches_written = batches_written_.load(std::memory_order_relaxed);
  stats.groups_written = groups_written_.load(std::memory_order_relaxed);
  stats.synced_groups = synced_groups_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace geoetcd
