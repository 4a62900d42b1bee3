// WatchWorkload: simulated etcd watch clients. Each watcher keeps one watch stream open on
// a range (the whole keyspace, one key or a sub-range), asks for progress now and then
// (bookmarks), reconnects when its stream breaks (the server crashed, a message was lost,
// nothing arrived for too long) or on a whim, and resumes from the revision after the last
// one it saw, as etcd's clients do. A watch canceled by compaction resumes from the
// compaction point. Every session and every response it received go into the History.
//
// At the end of a run the simulation calls Finish(R): watchers stop reconnecting on a whim
// and ask for progress until they hold a bookmark at or above R, so the checkers can hold
// each watch to every event up to the end.
#ifndef GEOETCD_SIM_WATCH_WORKLOAD_H_
#define GEOETCD_SIM_WATCH_WORKLOAD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/random.h"
#include "sim/history.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {

// How a watcher reaches the cluster: a stream connection to its region.
class WatchEndpoint {
 public:
  struct Callbacks {
    // Each response with its sequence number on the connection (1, 2, ...). A gap means a
    // message was lost: the connection is broken.
    std::function<void(uint64_t seq, etcdserverpb::WatchResponse response)> on_response;
    // The connection broke (the server died or refused it).
    std::function<void()> on_broken;
  };
  virtual ~WatchEndpoint() = default;
  // Opens a connection with a watch stream on it; returns the connection id.
  virtual uint64_t OpenWatchConnection(int32_t client, Callbacks callbacks) = 0;
  virtual void SendWatchRequest(uint64_t connection, const etcdserverpb::WatchRequest& req) = 0;
  // Closes the connection; its callbacks never run again.
  virtual void CloseWatchConnection(uint64_t connection) = 0;
};

struct WatchConfig {
  int32_t watchers = 3;
  int32_t keys = 16;  // the KV workload's keyspace
  int64_t progress_request_interval_us = 300'000;
  int64_t reconnect_interval_us = 3'000'000;  // mean time between voluntary reconnects
  int64_t reconnect_backoff_us_max = 50'000;
  int64_t idle_timeout_us = 3'000'000;  // nothing arrived for this long: the stream is dead
};

class WatchWorkload {
 public:
  // Watchers are clients first_client, first_client + 1, ...
  WatchWorkload(SimWorld* world, History* history, WatchEndpoint* endpoint, WatchConfig config,
                int32_t first_client, Random random);
  WatchWorkload(const WatchWorkload&) = delete;
  WatchWorkload& operator=(const WatchWorkload&) = delete;

  void Start();
  // From now on, watchers ask for progress until each holds a bookmark >= revision.
  void Finish(int64_t revision);
  bool finished() const;
  // Closes every stream.
  void Stop();

 private:
  struct Watcher {
    int32_t client = 0;
    Random random{0};
    etcdserverpb::WatchCreateRequest create;  // the range and options; start set per session
    int64_t next_start = 0;                   // where the next session starts (0: from now)
    int64_t session = -1;                     // index in History::watches of the open session
    uint64_t connection = 0;
    uint64_t epoch = 0;  // bumped per session: stale callbacks and timers do nothing
    uint64_t expected_seq = 1;
    int64_t last_response_us = 0;
    int64_t bookmark = 0;  // the highest progress revision seen
    bool connected = false;
  };

  void Connect(Watcher& w);
  void OnResponse(int32_t index, uint64_t epoch, uint64_t seq, etcdserverpb::WatchResponse r);
  void OnBroken(int32_t index, uint64_t epoch);
  // Ends the open session and, unless stopped, reconnects after a backoff.
  void Reconnect(Watcher& w, const char* why);
  void EndSession(Watcher& w, const char* why);
  void ScheduleTick(Watcher& w);
  void Tick(int32_t index, uint64_t epoch);

  SimWorld* world_;
  History* history_;
  WatchEndpoint* endpoint_;
  WatchConfig config_;
  std::vector<Watcher> watchers_;
  bool finishing_ = false;
  int64_t finish_revision_ = 0;
  bool stopped_ = false;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_WATCH_WORKLOAD_H_
