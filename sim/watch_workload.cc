#include "sim/watch_workload.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "sim/workload.h"

namespace geoetcd::sim {

using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;

WatchWorkload::WatchWorkload(SimWorld* world, History* history, WatchEndpoint* endpoint,
                             WatchConfig config, int32_t first_client, Random random)
    : world_(world), history_(history), endpoint_(endpoint), config_(config) {
  CHECK(config_.keys >= 1);
  for (int32_t i = 0; i < config_.watchers; ++i) {
    Watcher w;
    w.client = first_client + i;
    w.random = random.Fork();
    auto& c = w.create;
    switch (i % 3) {
      case 0:  // everything, from the first revision: replays history, then follows
        c.set_key(KvWorkload::KeyPrefix());
        c.set_range_end(KvWorkload::KeyPrefixEnd());
        c.set_prev_kv(true);
        c.set_progress_notify(true);
        w.next_start = 1;
        break;
      case 1:  // one key
        c.set_key(KvWorkload::KeyName(
            static_cast<int32_t>(w.random.Uniform(static_cast<uint64_t>(config_.keys)))));
        c.set_prev_kv(w.random.Chance(0.5));
        break;
      default: {  // a sub-range
        const int32_t a =
            static_cast<int32_t>(w.random.Uniform(static_cast<uint64_t>(config_.keys)));
        const int32_t b = static_cast<int32_t>(w.random.Range(a + 1, config_.keys));
        c.set_key(KvWorkload::KeyName(a));
        c.set_range_end(KvWorkload::KeyName(b));
        c.set_prev_kv(w.random.Chance(0.5));
        c.set_progress_notify(w.random.Chance(0.5));
        break;
      }
    }
    watchers_.push_back(std::move(w));
  }
}

void WatchWorkload::Start() {
  for (Watcher& w : watchers_) Connect(w);
}

void WatchWorkload::Connect(Watcher& w) {
  if (stopped_) return;
  ++w.epoch;
  WatchSession session;
  session.index = static_cast<int64_t>(history_->watches.size());
  session.client = w.client;
  session.create = w.create;
  session.create.set_start_revision(w.next_start);
  session.open_us = world_->now_us();
  history_->watches.push_back(session);
  w.session = session.index;
  w.expected_seq = 1;
  w.last_response_us = world_->now_us();
  w.connected = true;
  const int32_t index = w.client - watchers_.front().client;
  WatchEndpoint::Callbacks callbacks;
  callbacks.on_response = [this, index, epoch = w.epoch](uint64_t seq, WatchResponse r) {
    OnResponse(index, epoch, seq, std::move(r));
  };
  callbacks.on_broken = [this, index, epoch = w.epoch] { OnBroken(index, epoch); };
  w.connection = endpoint_->OpenWatchConnection(w.client, std::move(callbacks));
  WatchRequest req;
  *req.mutable_create_request() = session.create;
  endpoint_->SendWatchRequest(w.connection, req);
  if (world_->tracing()) world_->TraceNote("watch open " + FormatWatchSession(session));
  ScheduleTick(w);
}

void WatchWorkload::OnResponse(int32_t index, uint64_t epoch, uint64_t seq, WatchResponse r) {
  Watcher& w = watchers_[index];
  if (epoch != w.epoch || !w.connected) return;
  if (seq != w.expected_seq) return Reconnect(w, "lost message");
  ++w.expected_seq;
  w.last_response_us = world_->now_us();
  WatchSession& session = history_->watches[w.session];
  world_->Fold(static_cast<uint64_t>(r.header().revision()) * 31 +
               static_cast<uint64_t>(r.events_size()));
  if (world_->tracing()) {
    world_->TraceNote(absl::StrCat("watch#", session.index, " ", FormatWatchResponse(r)));
  }
  // Where a resumed watch would start: after every revision this stream has accounted for.
  int64_t seen = 0;
  if (r.created() && session.create.start_revision() == 0) seen = r.header().revision();
  for (const auto& ev : r.events()) seen = std::max(seen, ev.kv().mod_revision());
  const bool progress = r.events_size() == 0 && !r.created() && !r.canceled();
  if (progress) {
    seen = r.header().revision();
    w.bookmark = std::max(w.bookmark, seen);
  }
  if (seen > 0) w.next_start = std::max(w.next_start, seen + 1);
  const bool canceled = r.canceled();
  const int64_t compact_revision = r.compact_revision();
  session.responses.push_back({world_->now_us(), std::move(r)});
  if (canceled) {
    // Compacted: resume from the compaction point, the oldest revision still readable.
    if (compact_revision > 0) w.next_start = compact_revision;
    Reconnect(w, compact_revision > 0 ? "compacted" : "canceled");
  }
}

void WatchWorkload::OnBroken(int32_t index, uint64_t epoch) {
  Watcher& w = watchers_[index];
  if (epoch != w.epoch || !w.connected) return;
  Reconnect(w, "connection broken");
}

void WatchWorkload::EndSession(Watcher& w, const char* why) {
  if (!w.connected) return;
  w.connected = false;
  ++w.epoch;
  WatchSession& session = history_->watches[w.session];
  session.close_us = world_->now_us();
  session.end_reason = why;
  endpoint_->CloseWatchConnection(w.connection);
  if (world_->tracing()) world_->TraceNote("watch close " + FormatWatchSession(session));
}

void WatchWorkload::Reconnect(Watcher& w, const char* why) {
  EndSession(w, why);
  if (stopped_) return;
  const int32_t index = w.client - watchers_.front().client;
  world_->Schedule(w.random.Range(1, config_.reconnect_backoff_us_max), EventType::kClientInvoke,
                   kNoNode, [this, index, epoch = w.epoch] {
                     Watcher& watcher = watchers_[index];
                     if (epoch == watcher.epoch && !watcher.connected) Connect(watcher);
                   });
}

void WatchWorkload::ScheduleTick(Watcher& w) {
  const int32_t index = w.client - watchers_.front().client;
  const int64_t interval = config_.progress_request_interval_us;
  world_->Schedule(w.random.Range(interval / 2, interval * 3 / 2), EventType::kClientInvoke,
                   kNoNode, [this, index, epoch = w.epoch] { Tick(index, epoch); });
}

void WatchWorkload::Tick(int32_t index, uint64_t epoch) {
  Watcher& w = watchers_[index];
  if (stopped_ || epoch != w.epoch || !w.connected) return;
  if (world_->now_us() - w.last_response_us > config_.idle_timeout_us) {
    return Reconnect(w, "idle");
  }
  const double reconnect_p = static_cast<double>(config_.progress_request_interval_us) /
                             static_cast<double>(config_.reconnect_interval_us);
  if (!finishing_ && w.random.Chance(reconnect_p)) return Reconnect(w, "voluntary reconnect");
  WatchRequest req;
  req.mutable_progress_request();
  endpoint_->SendWatchRequest(w.connection, req);
  ScheduleTick(w);
}

void WatchWorkload::Finish(int64_t revision) {
  finishing_ = true;
  finish_revision_ = revision;
}

bool WatchWorkload::finished() const {
  return std::all_of(watchers_.begin(), watchers_.end(),
                     [this](const Watcher& w) { return w.bookmark >= finish_revision_; });
}

void WatchWorkload::Stop() {
  for (Watcher& w : watchers_) EndSession(w, "end of run");
  stopped_ = true;
}

}  // namespace geoetcd::sim
