// WatchHub, the watchable store (etcd's watchableStore): watcher states and indexes, the
// event source (staged commits held until durable), matching and delivery to synced
// watchers, and catch-up of unsynced ones from the storage event log. The stream protocol
// is in watch_hub.cc.
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

// etcd's IsCreateEvent: such events never carry prev_kv.
bool IsCreateEvent(const mvccpb::Event& ev) {
  return ev.type() == mvccpb::Event::PUT && ev.kv().create_revision() == ev.kv().mod_revision();
}

size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// What one event adds to a WatchResponse: tag, length and the message.
size_t EventFieldBytes(const mvccpb::Event& ev) {
  const size_t n = ev.ByteSizeLong();
  return 1 + VarintBytes(n) + n;
}

// A stored key version as etcd's watch sees it; a delete carries key and mod_revision only.
mvccpb::Event ToEvent(const KeyRecord& rec, int64_t revision) {
  mvccpb::Event ev;
  mvccpb::KeyValue* kv = ev.mutable_kv();
  kv->set_key(rec.key());
  kv->set_mod_revision(revision);
  if (rec.tombstone()) {
    ev.set_type(mvccpb::Event::DELETE);
    return ev;
  }
  ev.set_type(mvccpb::Event::PUT);
  kv->set_create_revision(rec.create_revision());
  kv->set_version(rec.version());
  kv->set_value(rec.value());
  kv->set_lease(rec.lease());
  return ev;
}

}  // namespace

// --- Watcher states -------------------------------------------------------------------------

void WatchHub::AddWatcher(Stream* stream, Watcher w) {
  w.state = State::kUnsynced;
  const bool progress = w.progress_notify;
  auto [it, inserted] = stream->watchers.emplace(w.id, std::move(w));
  CHECK(inserted);
  ++active_watchers_;
  UpdateCapture();
  Watcher* added = &it->second;
  if (added->next_rev > durable_rev_ && CanSync()) {
    MakeSynced(added);
  } else {
    ScheduleCatchUp();
  }
  if (progress) ArmProgress(stream);
}

void WatchHub::MakeSynced(Watcher* w) {
  CHECK(w->state == State::kUnsynced);
  CHECK(w->next_rev > durable_rev_);
  w->state = State::kSynced;
  IndexSynced(*w);
}

void WatchHub::MakeUnsynced(Watcher* w, int64_t next_rev) {
  CHECK(w->state == State::kSynced);
  UnindexSynced(*w);
  w->state = State::kUnsynced;
  w->next_rev = next_rev;
}

void WatchHub::MakeCompacted(Watcher* w) {
  CHECK(w->state == State::kUnsynced);
  w->state = State::kCompacted;
  --active_watchers_;
  UpdateCapture();
}

void WatchHub::RemoveWatcher(Stream* stream, std::map<int64_t, Watcher>::iterator it) {
  Watcher& w = it->second;
  if (w.state == State::kSynced) UnindexSynced(w);
  if (w.state != State::kCompacted) --active_watchers_;
  stream->watchers.erase(it);
  UpdateCapture();
}

void WatchHub::IndexSynced(const Watcher& w) {
  const WatcherKey key{w.stream_id, w.id};
  if (w.range.single) {
    CHECK(synced_by_key_[w.range.begin].insert(key).second);
  } else {
    CHECK(synced_ranges_.insert(key).second);
  }
  ++synced_watchers_;
}

void WatchHub::UnindexSynced(const Watcher& w) {
  const WatcherKey key{w.stream_id, w.id};
  if (w.range.single) {
    auto it = synced_by_key_.find(w.range.begin);
    CHECK(it != synced_by_key_.end() && it->second.erase(key) == 1);
    if (it->second.empty()) synced_by_key_.erase(it);
  } else {
    CHECK(synced_ranges_.erase(key) == 1);
  }
  --synced_watchers_;
}

// Events are captured only while someone watches; turning capture on starts a fresh log at
// the next revision, and watchers cannot be synced until the uncaptured revisions before it
// are durable (they then read them from storage).
void WatchHub::UpdateCapture() {
  const bool want = active_watchers_ > 0;
  if (want == capturing_) return;
  capturing_ = want;
  pending_.clear();
  if (capturing_) {
    capture_from_rev_ = kv_->revision() + 1;
    last_captured_rev_ = kv_->revision();
  }
}

bool WatchHub::CanSync() const { return capturing_ && capture_from_rev_ <= durable_rev_ + 1; }

WatchHub::Watcher* WatchHub::Find(const WatcherKey& key) {
  auto s = streams_.find(key.first);
  if (s == streams_.end()) return nullptr;
  auto w = s->second.watchers.find(key.second);
  return w == s->second.watchers.end() ? nullptr : &w->second;
}


// --- Event source --------------------------------------------------------------------------

void WatchHub::OnCommit(int64_t revision, std::vector<mvccpb::Event> events) {
  CHECK(capturing_);
  CHECK(revision == last_captured_rev_ + 1);  // revisions are dense and staged in order
  CHECK(revision > durable_rev_);
  last_captured_rev_ = revision;
  pending_.push_back({revision, std::move(events)});
}

void WatchHub::OnReset(int64_t revision) {
  CHECK(kv_->revision() == revision);
  pending_.clear();
  if (capturing_) {
    capture_from_rev_ = revision + 1;
    last_captured_rev_ = revision;
  }
  for (auto& [sid, stream] : streams_) {
    for (auto& [wid, w] : stream.watchers) {
      if (w.state == State::kSynced && w.next_rev <= revision) MakeUnsynced(&w, w.next_rev);
    }
  }
}

void WatchHub::OnDurable(int64_t durable_rev) {
  CHECK(durable_rev >= durable_rev_);  // durable revisions never go back
  durable_rev_ = durable_rev;
  while (!pending_.empty() && pending_.front().revision <= durable_rev_) {
    Publish(pending_.front());
    pending_.pop_front();
  }
  if (active_watchers_ > synced_watchers_) ScheduleCatchUp();
}

bool WatchHub::Matches(const Watcher& w, const mvccpb::Event& ev) const {
  return w.range.Contains(ev.kv().key());
}

void WatchHub::Publish(const PendingRevision& rev) {
  if (synced_by_key_.empty() && synced_ranges_.empty()) return;
  // (watcher, event index) pairs, sorted so sinks are called in a deterministic order, by
  // (stream, watch id), each watcher's events in commit order. A flat vector rather than a
  // map of vectors: a fan-out to 10,000 watchers built 10,000 map nodes per commit.
  std::vector<std::pair<WatcherKey, size_t>> matched;
  for (size_t i = 0; i < rev.events.size(); ++i) {
    if (options_.bug_skip_event && i == 0 && rev.revision % 10 == 0) continue;
    const mvccpb::Event& ev = rev.events[i];
    auto by_key = synced_by_key_.find(ev.kv().key());
    if (by_key != synced_by_key_.end()) {
      for (const WatcherKey& key : by_key->second) matched.emplace_back(key, i);
    }
    for (const WatcherKey& key : synced_ranges_) {
      if (Matches(*Find(key), ev)) matched.emplace_back(key, i);
    }
  }
  std::sort(matched.begin(), matched.end());
  std::vector<const mvccpb::Event*> events;
  for (size_t begin = 0; begin < matched.size();) {
    const WatcherKey key = matched[begin].first;
    events.clear();
    size_t end = begin;
    for (; end < matched.size() && matched[end].first == key; ++end) {
      events.push_back(&rev.events[matched[end].second]);
    }
    begin = end;
    Watcher* w = Find(key);
    Stream* stream = &streams_.at(key.first);
    if (rev.revision < w->next_rev) continue;  // it starts at a future revision
    if (stream->blocked || !SendEvents(stream, w, rev.revision, events)) {
      stream->blocked = true;
      MakeUnsynced(w, rev.revision);
    }
  }
}

bool WatchHub::SendEvents(Stream* stream, Watcher* w, int64_t header_revision,
                          const std::vector<const mvccpb::Event*>& events) {
  WatchResponse resp = NewResponse(header_revision, w->id);
  for (const mvccpb::Event* ev : events) {
    if (w->no_put && ev->type() == mvccpb::Event::PUT) continue;
    if (w->no_delete && ev->type() == mvccpb::Event::DELETE) continue;
    mvccpb::Event* out = resp.add_events();
    out->set_type(ev->type());
    *out->mutable_kv() = ev->kv();
    if (w->prev_kv && ev->has_prev_kv()) *out->mutable_prev_kv() = ev->prev_kv();
  }
  if (resp.events_size() == 0) return true;  // everything filtered: etcd sends nothing
  if (!Deliver(stream, *w, std::move(resp))) return false;
  w->progress_due = false;
  return true;
}

// etcd's sendFragments: every part holds at least one event and stays below the limit
// unless a single event is bigger; all parts but the last have fragment=true.
bool WatchHub::Deliver(Stream* stream, const Watcher& w, WatchResponse resp) {
  const size_t limit = static_cast<size_t>(options_.fragment_bytes_min);
  if (!w.fragment || resp.events_size() < 2 || resp.ByteSizeLong() < limit) {
    return stream->sink(std::move(resp));
  }
  google::protobuf::RepeatedPtrField<mvccpb::Event> events;
  events.Swap(resp.mutable_events());
  resp.set_fragment(true);
  const size_t base_bytes = resp.ByteSizeLong();
  const int n = events.size();
  int next = 0;
  while (next < n) {
    WatchResponse part = resp;
    size_t bytes = base_bytes;
    const int begin = next;
    while (next < n) {
      const size_t add = EventFieldBytes(events.Get(next));
      if (next > begin && bytes + add >= limit) break;
      bytes += add;
      part.add_events()->Swap(events.Mutable(next));
      ++next;
    }
    if (next == n) part.set_fragment(false);
    const bool accepted = stream->sink(std::move(part));
    if (begin == 0 && !accepted) return false;  // nothing went out; the watcher catches up
    CHECK(accepted);  // the sink contract: a fragment chain is never cut
  }
  return true;
}

// --- Catch-up from history ------------------------------------------------------------------

void WatchHub::ScheduleCatchUp() {
  if (catch_up_scheduled_) return;
  catch_up_scheduled_ = true;
  executor_->Post([this, life = std::weak_ptr<int>(alive_)] {
    if (life.expired()) return;
    catch_up_scheduled_ = false;
    CatchUpStep();
  });
}

void WatchHub::CatchUpStep() {
  ++catch_up_steps_;
  const int64_t compact_rev = kv_->compact_revision();
  CatchUpSlice slice;
  bool wants_prev_kv = false;
  CollectReaders(compact_rev, &slice, &wants_prev_kv);
  if (slice.readers.empty()) return;
  if (absl::Status s = ReadSlice(&slice); !s.ok()) {
    // A storage read error: try again later rather than skip history.
    executor_->PostAfter(kWatchCatchUpRetryMs, [this, life = std::weak_ptr<int>(alive_)] {
      if (!life.expired()) ScheduleCatchUp();
    });
    return;
  }
  if (wants_prev_kv) AttachPrevKvs(compact_rev, &slice.events);
  if (HandOut(slice)) ScheduleCatchUp();
}

void WatchHub::CollectReaders(int64_t compact_rev, CatchUpSlice* slice, bool* wants_prev_kv) {
  slice->from = std::numeric_limits<int64_t>::max();
  for (auto& [sid, stream] : streams_) {
    if (stream.blocked) continue;
    for (auto& [wid, w] : stream.watchers) {
      if (w.state != State::kUnsynced) continue;
      if (w.next_rev < compact_rev) {
        // etcd sends this from the store with no revision: header.revision is 0.
        WatchResponse resp = NewResponse(0, w.id);
        resp.set_compact_revision(compact_rev);
        resp.set_canceled(true);
        stream.sink(std::move(resp));
        MakeCompacted(&w);
        continue;
      }
      if (w.next_rev > durable_rev_) {
        if (CanSync()) MakeSynced(&w);
        continue;  // otherwise it waits for the uncaptured revisions to become durable
      }
      slice->readers.push_back({sid, wid});
      slice->from = std::min(slice->from, w.next_rev);
      *wants_prev_kv = *wants_prev_kv || w.prev_kv;
    }
  }
}

absl::Status WatchHub::ReadSlice(CatchUpSlice* slice) {
  // One bounded slice of the log, [from, to], keeping only events some reader wants.
  slice->to = std::min(durable_rev_, slice->from + options_.catch_up_revisions_max - 1);
  const std::string& account = kv_->account();
  int64_t bytes = 0;
  int64_t revision_seen = 0;
  bool corrupt = false;
  absl::Status s = storage_->Scan(
      codec::VersionKey(account, {slice->from, 0}), codec::VersionKey(account, {slice->to + 1, 0}),
      [&](std::string_view k, std::string_view v) {
        VersionId id;
        KeyRecord rec;
        if (!codec::ParseVersionKey(account, k, &id) ||
            !rec.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
          corrupt = true;
          return false;
        }
        if (id.revision != revision_seen) {
          if (revision_seen != 0 && bytes >= options_.catch_up_bytes_max) {
            slice->to = revision_seen;  // stop at a revision boundary
            return false;
          }
          revision_seen = id.revision;
        }
        bytes += static_cast<int64_t>(k.size() + v.size());
        const bool wanted =
            std::any_of(slice->readers.begin(), slice->readers.end(),
                        [&](const WatcherKey& r) { return Find(r)->range.Contains(rec.key()); });
        if (wanted) slice->events.push_back(ToEvent(rec, id.revision));
        return true;
      });
  CHECK(!corrupt);  // the log is written only by KvStore: a bad record is corruption
  return s;
}

void WatchHub::AttachPrevKvs(int64_t compact_rev, std::vector<mvccpb::Event>* events) const {
  for (mvccpb::Event& ev : *events) {
    const int64_t prev_rev = ev.kv().mod_revision() - 1;
    if (IsCreateEvent(ev) || prev_rev < compact_rev) continue;  // etcd leaves it out
    const KeyVersion* prev = kv_->keyspace().Get(ev.kv().key(), prev_rev);
    if (prev == nullptr) continue;
    mvccpb::KeyValue* out = ev.mutable_prev_kv();
    out->set_key(ev.kv().key());
    out->set_create_revision(prev->create_revision);
    out->set_mod_revision(prev->mod_revision);
    out->set_version(prev->version);
    out->set_value(prev->value.data(), prev->value.size());
    out->set_lease(prev->lease);
  }
}

bool WatchHub::HandOut(const CatchUpSlice& slice) {
  bool more = false;
  for (const WatcherKey& key : slice.readers) {
    Watcher* w = Find(key);
    Stream* stream = &streams_.at(key.first);
    if (stream->blocked || w->next_rev > slice.to) {
      more = more || !stream->blocked;
      continue;
    }
    std::vector<const mvccpb::Event*> mine;
    for (const mvccpb::Event& ev : slice.events) {
      if (ev.kv().mod_revision() >= w->next_rev && Matches(*w, ev)) mine.push_back(&ev);
    }
    if (!SendEvents(stream, w, durable_rev_, mine)) {
      stream->blocked = true;
      continue;
    }
    w->next_rev = slice.to + 1;
    if (w->next_rev <= durable_rev_) {
      more = true;
    } else if (CanSync()) {
      MakeSynced(w);
    }
  }
  return more;
}

}  // namespace geoetcd
