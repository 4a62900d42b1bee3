// Serves etcdserverpb.Maintenance/Snapshot. Each call takes a RocksDB checkpoint into its own
// scratch dir, streams it as a geoetcd snapshot archive (gateway/snapshot_archive.h) and
// removes the dir when the call ends, however it ends (finished, failed, cancelled by the
// client, or cut off by shutdown).
//
// Threading: the file work (checkpoint, reads) runs on one worker thread owned by this
// object, never on the Node's thread and never blocking a gRPC thread; gRPC's reactions only
// hand the next step to the worker. Each stream has at most one step queued or running, so
// the worker's queue is bounded by the number of streams.
#ifndef GEOETCD_GATEWAY_SNAPSHOT_STREAM_H_
#define GEOETCD_GATEWAY_SNAPSHOT_STREAM_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "etcd/etcdserverpb/rpc.grpc.pb.h"

namespace geoetcd {

class RocksDbStorage;

// Snapshot calls served at once; more are refused with Unavailable (each holds a checkpoint
// on disk while it streams).
inline constexpr int kSnapshotStreamsMax = 4;

class SnapshotStreamer {
 public:
  // `scratch_dir` holds the checkpoints; it must be on the data dir's filesystem so that SST
  // files are hard-linked, not copied. Whatever it holds is removed now: leftovers of a
  // process that died mid-snapshot.
  SnapshotStreamer(RocksDbStorage* storage, std::string scratch_dir,
                   int streams_max = kSnapshotStreamsMax);
  // REQUIRES: every stream has ended (the gRPC server is shut down). Joins the worker.
  ~SnapshotStreamer();
  SnapshotStreamer(const SnapshotStreamer&) = delete;
  SnapshotStreamer& operator=(const SnapshotStreamer&) = delete;

  grpc::ServerWriteReactor<etcdserverpb::SnapshotResponse>* Start(
      grpc::CallbackServerContext* ctx);

  const std::string& scratch_dir() const { return scratch_dir_; }
  int active_streams() const { return active_.load(); }

 private:
  class Stream;

  void Post(std::function<void()> task);
  void WorkerLoop();

  RocksDbStorage* const storage_;
  const std::string scratch_dir_;
  const int streams_max_;
  std::atomic<int> active_{0};
  std::atomic<uint64_t> next_id_{1};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // Guarded by mu_.
  bool stopping_ = false;                    // Guarded by mu_.
  std::thread worker_;                       // Last: starts after the members above.
};

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_SNAPSHOT_STREAM_H_
