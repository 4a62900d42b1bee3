// WatchHub, the watch stream protocol (etcd's v3rpc serverWatchStream): streams, create,
// cancel and progress requests, progress notifications, invariants. The watchable store's
// half (watcher states, the event source, matching and delivery, catch-up from history)
// is in watch_store.cc.
#include "core/watch_hub.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd {

using etcdserverpb::WatchCreateRequest;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

namespace {

constexpr int64_t kAutoWatchId = 0;       // clientv3.AutoWatchID
constexpr int64_t kInvalidWatchId = -1;   // clientv3.InvalidWatchID
// mvcc/watcher.go error texts, sent as cancel_reason.
constexpr const char* kDuplicateWatchId = "mvcc: duplicate watch ID provided on the WatchStream";
constexpr const char* kEmptyWatcherRange = "mvcc: watcher range is empty";

}  // namespace

WatchHub::WatchHub(WatchHubOptions options, Executor* executor, const Storage* storage,
                   const KvStore* kv, int64_t durable_rev, HeaderFiller fill_header,
                   Random random)
    : options_(options),
      executor_(executor),
      storage_(storage),
      kv_(kv),
      durable_rev_(durable_rev),
      fill_header_(std::move(fill_header)),
      random_(std::move(random)) {
  CHECK(executor_ != nullptr && storage_ != nullptr && kv_ != nullptr);
  CHECK(options_.catch_up_revisions_max > 0 && options_.catch_up_bytes_max > 0);
  options_.progress_notify_interval_ms =
      std::max(options_.progress_notify_interval_ms, kWatchProgressNotifyIntervalMsMin);
}

WatchHub::~WatchHub() {
  for (auto& [id, stream] : streams_) {
    if (stream.progress_armed) executor_->Cancel(stream.progress_timer);
  }
}

// --- Streams -------------------------------------------------------------------------------

void WatchHub::OpenStream(uint64_t stream_id, WatchSink sink) {
  CHECK(streams_.count(stream_id) == 0);
  Stream& stream = streams_[stream_id];
  stream.id = stream_id;
  stream.sink = std::move(sink);
  // Like etcd, each stream ticks at the interval plus up to 10% jitter, so watchers created
  // together (a client restarting) do not all get their notifications at once.
  const int64_t jitter_max = options_.progress_notify_interval_ms / 10;
  stream.progress_interval_ms =
      options_.progress_notify_interval_ms +
      (jitter_max > 0 ? static_cast<int64_t>(random_.Uniform(static_cast<uint64_t>(jitter_max)))
                      : 0);
}

void WatchHub::CloseStream(uint64_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& stream = it->second;
  if (stream.progress_armed) executor_->Cancel(stream.progress_timer);
  while (!stream.watchers.empty()) RemoveWatcher(&stream, stream.watchers.begin());
  streams_.erase(it);
}

void WatchHub::HandleRequest(uint64_t stream_id, const WatchRequest& req) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  switch (req.request_union_case()) {
    case WatchRequest::kCreateRequest:
      Create(&it->second, req.create_request());
      break;
    case WatchRequest::kCancelRequest:
      Cancel(&it->second, req.cancel_request().watch_id());
      break;
    case WatchRequest::kProgressRequest:
      RequestProgress(&it->second);
      break;
    default:
      break;  // etcd ignores a request it does not know
  }
}

void WatchHub::ResumeStream(uint64_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end() || !it->second.blocked) return;
  it->second.blocked = false;
  ScheduleCatchUp();
}

WatchResponse WatchHub::NewResponse(int64_t header_revision, int64_t watch_id) const {
  WatchResponse resp;
  fill_header_(resp.mutable_header());
  resp.mutable_header()->set_revision(header_revision);
  resp.set_watch_id(watch_id);
  return resp;
}

// The checks and their order are etcd's (v3rpc/watch.go recvLoop, mvcc watchStream.Watch).
void WatchHub::Create(Stream* stream, const WatchCreateRequest& req) {
  WatchResponse resp = NewResponse(durable_rev_, kInvalidWatchId);
  resp.set_created(true);
  auto refuse = [&](const std::string& reason) {
    resp.set_canceled(true);
    resp.set_cancel_reason(reason);
    stream->sink(std::move(resp));
  };
  if (req.start_revision() < 0) return refuse(std::string(errors::Compacted().message()));
  // An empty key is the smallest key, "\0".
  const std::string key = req.key().empty() ? std::string(1, '\0') : req.key();
  const KeyRange range = KeyRange::FromEtcd(key, req.range_end());
  if (range.Empty()) return refuse(kEmptyWatcherRange);
  int64_t id = req.watch_id();
  if (id == kAutoWatchId) {
    while (stream->watchers.count(stream->next_watch_id) != 0) ++stream->next_watch_id;
    id = stream->next_watch_id++;
  } else if (stream->watchers.count(id) != 0) {
    return refuse(kDuplicateWatchId);
  }

  Watcher w;
  w.stream_id = stream->id;
  w.id = id;
  w.range = range;
  w.start_rev = req.start_revision();
  w.prev_kv = req.prev_kv();
  w.progress_notify = req.progress_notify();
  w.fragment = req.fragment();
  for (int filter : req.filters()) {
    if (filter == WatchCreateRequest::NOPUT) w.no_put = true;
    if (filter == WatchCreateRequest::NODELETE) w.no_delete = true;
  }
  // etcd: start 0 means "after the current revision"; a past start replays history.
  w.next_rev = w.start_rev == 0 ? durable_rev_ + 1 : w.start_rev;
  // The created response goes out before any event of the watcher.
  resp.set_watch_id(id);
  stream->sink(std::move(resp));
  AddWatcher(stream, std::move(w));
}

void WatchHub::Cancel(Stream* stream, int64_t watch_id) {
  auto it = stream->watchers.find(watch_id);
  if (it == stream->watchers.end()) return;  // etcd answers an unknown id with nothing
  RemoveWatcher(stream, it);
  WatchResponse resp = NewResponse(durable_rev_, watch_id);
  resp.set_canceled(true);
  stream->sink(std::move(resp));
}

// etcd's progressIfSync: one response, watch_id -1, only when every watcher of the stream is
// synced (a compacted one still registered counts as not synced); with no watcher, nothing.
void WatchHub::RequestProgress(Stream* stream) {
  if (stream->watchers.empty()) return;
  for (const auto& [id, w] : stream->watchers) {
    if (w.state != State::kSynced) return;
  }
  stream->sink(NewResponse(durable_rev_, kInvalidWatchId));
}

// --- Progress notifications -----------------------------------------------------------------

void WatchHub::ArmProgress(Stream* stream) {
  if (stream->progress_armed) return;
  stream->progress_armed = true;
  const uint64_t id = stream->id;
  std::weak_ptr<int> life = alive_;
  stream->progress_timer = executor_->PostAfter(stream->progress_interval_ms, [this, id, life] {
    if (!life.expired()) ProgressTick(id);
  });
}

// etcd's progress ticker: a watcher that asked for progress_notify and got no event since
// the last tick is told the current revision, if it is synced and has reached its start.
void WatchHub::ProgressTick(uint64_t stream_id) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  Stream& stream = it->second;
  stream.progress_armed = false;
  bool any = false;
  for (auto& [wid, w] : stream.watchers) {
    if (!w.progress_notify) continue;
    any = true;
    if (w.progress_due && w.state == State::kSynced && durable_rev_ >= w.start_rev) {
      stream.sink(NewResponse(durable_rev_, w.id));
    }
    w.progress_due = true;
  }
  if (any) ArmProgress(&stream);
}

// --- Invariants -----------------------------------------------------------------------------

void WatchHub::CheckInvariants() const {
  size_t active = 0;
  size_t synced = 0;
  for (const auto& [sid, stream] : streams_) {
    CHECK(stream.id == sid);
    for (const auto& [wid, w] : stream.watchers) {
      CHECK(w.id == wid && w.stream_id == sid);
      if (w.state != State::kCompacted) ++active;
      if (w.state != State::kSynced) continue;
      ++synced;
      const WatcherKey key{sid, wid};
      if (w.range.single) {
        auto it = synced_by_key_.find(w.range.begin);
        CHECK(it != synced_by_key_.end() && it->second.count(key) == 1);
      } else {
        CHECK(synced_ranges_.count(key) == 1);
      }
    }
  }
  size_t indexed = synced_ranges_.size();
  for (const auto& [k, set] : synced_by_key_) {
    CHECK(!set.empty());
    indexed += set.size();
  }
  CHECK(indexed == synced);
  CHECK(active == active_watchers_);
  CHECK(capturing_ == (active > 0));
  // A synced watcher relies on pending_ holding every revision after the durable one.
  if (synced > 0) CHECK(CanSync());
  CHECK(synced == synced_watchers_);
  for (size_t i = 0; i < pending_.size(); ++i) {
    CHECK(pending_[i].revision > durable_rev_);
    if (i > 0) CHECK(pending_[i].revision == pending_[i - 1].revision + 1);
  }
  if (!pending_.empty()) CHECK(pending_.back().revision == last_captured_rev_);
}

}  // namespace geoetcd
