// RocksDbStorage: the production Storage port, one RocksDB database per data dir.
//
// Writes go through ONE writer thread with a bounded queue. The thread commits groups: it
// merges consecutive queued batches (up to group_bytes_max) into one RocksDB write, synced
// if any of them asked for sync, then posts their `done` callbacks to the executor in
// Write() order. Reads (Get, Scan) go straight to RocksDB on the caller's thread.
#ifndef GEOETCD_GATEWAY_ROCKSDB_STORAGE_H_
#define GEOETCD_GATEWAY_ROCKSDB_STORAGE_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/ports.h"

namespace rocksdb {
class DB;
}  // namespace rocksdb

namespace geoetcd {

class Histogram;

// Batches waiting for the writer thread. Beyond this Write() blocks its caller: the bound
// is the back-pressure that keeps a slow disk from turning into unbounded memory.
inline constexpr size_t kQueueBatchesMax = 4096;
// Bytes of batches merged into one RocksDB write. A single larger batch is written alone.
inline constexpr size_t kGroupBytesMax = size_t{16} << 20;

struct RocksDbOptions {
  size_t queue_batches_max = kQueueBatchesMax;
  size_t group_bytes_max = kGroupBytesMax;
  // Reads are served from the Node's in-memory index; RocksDB is read at startup and by
  // watchers replaying history, so its cache stays small. Memtables hold recent writes
  // that the index holds too: 16 MiB keeps flushes infrequent without doubling memory.
  size_t block_cache_bytes = size_t{8} << 20;
  size_t write_buffer_bytes = size_t{16} << 20;
  int max_background_jobs = 2;
  double bloom_bits_per_key = 10;
  // LZ4 when the RocksDB build supports it; otherwise no compression.
  bool compress = true;
  // Info LOG files kept in the data dir.
  size_t info_log_files_max = 5;
  // When set, observes the seconds each synced write takes (the WAL write and its fsync):
  // etcd_disk_wal_fsync_duration_seconds. Not owned; must outlive the storage.
  Histogram* sync_duration_seconds = nullptr;
};

// Thread-safety: Write(), Get(), Scan(), ApproximateSizeBytes(), CompactRange() and
// Checkpoint() may be called from any thread. Write() order is the order in which callers
// enter Write(). The executor's Post() must be thread-safe (it is called from the writer
// thread).
//
// Beyond the Storage contract:
// - DeleteRange(begin, end) with end <= begin (including an empty end) deletes nothing.
//   (RocksDB itself rejects such a range and may then have applied part of the batch.)
// - A failed RocksDB write fails every batch of its group with the same status.
class RocksDbStorage : public Storage {
 public:
  struct Stats {
    uint64_t batches_written = 0;
    uint64_t groups_written = 0;
    uint64_t synced_groups = 0;
  };

  // Opens (creating if missing) the database in `dir`. Fails with FailedPrecondition when
  // another process, or another RocksDbStorage in this process, holds the dir's LOCK.
  // `executor` must outlive the returned object.
  static absl::StatusOr<std::unique_ptr<RocksDbStorage>> Open(const std::string& dir,
                                                              Executor* executor,
                                                              const RocksDbOptions& opts);

  RocksDbStorage(const RocksDbStorage&) = delete;
  RocksDbStorage& operator=(const RocksDbStorage&) = delete;
  // Writes everything still queued (posting each `done`), joins the writer thread and
  // closes the database. REQUIRES: no Write() is running or will start.
  ~RocksDbStorage() override;

  // Storage. Write() blocks while queue_batches_max batches are already queued.
  void Write(WriteBatch batch, bool sync, Done done) override;
  absl::Status Get(std::string_view key, std::string* value) const override;
  absl::Status Scan(std::string_view begin, std::string_view end,
                    const Visitor& visit) const override;
  // SST files plus the memtables.
  int64_t ApproximateSizeBytes() const override;
  absl::Status CompactRange(std::string_view begin, std::string_view end) override;

  // Writes an openable copy of the database to `dir`, which must not exist yet (SST files
  // are hard-linked when on the same filesystem). It holds at least every batch whose
  // `done` has run.
  absl::Status Checkpoint(const std::string& dir);

  Stats stats() const;

 private:
  struct Pending {
    WriteBatch batch;
    bool sync;
    Done done;
  };

  RocksDbStorage(std::unique_ptr<rocksdb::DB> db, Executor* executor, const RocksDbOptions& opts);

  void WriterLoop();
  // Blocks until work arrives. Returns the next group; empty once stopping and drained.
  std::vector<Pending> TakeGroup();
  void CommitGroup(std::vector<Pending> group);

  const std::unique_ptr<rocksdb::DB> db_;
  Executor* const executor_;
  const size_t queue_batches_max_;
  const size_t group_bytes_max_;
  Histogram* const sync_duration_seconds_;

  std::mutex mu_;
  std::condition_variable work_cv_;   // Signalled when queue_ grows or stopping_ is set.
  std::condition_variable space_cv_;  // Signalled when queue_ shrinks.
  std::deque<Pending> queue_;         // Guarded by mu_.
  bool stopping_ = false;             // Guarded by mu_.

  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> groups_written_{0};
  std::atomic<uint64_t> synced_groups_{0};

  std::thread writer_;  // Last: starts after every other member is constructed.
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_ROCKSDB_STORAGE_H_
