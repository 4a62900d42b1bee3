// WatchHub: the watchers of one account, across all its watch streams — etcd's
// watchableStore and v3rpc serverWatchStream in one single-threaded, port-driven object.
//
// Event source. KvStore reports each commit's events as it stages them (CommitObserver,
// with prev_kv taken from the pre-image); the hub holds them until the Node reports their
// revision durable (OnDurable), then hands every revision, whole, to each synced watcher it
// matches: one response per revision, header.revision = that revision, as etcd's notify().
//
// Synced and unsynced. A watcher is synced when everything it wants below the durable
// revision has been handed to its stream. A watcher starting in the past, or whose stream
// refused a response because its buffer was full, is unsynced: it catches up from the
// storage event log (`a/<account>/r/`, see core/keyspace_codec.h) in steps of at most
// WatchHubOptions::catch_up_revisions_max revisions (etcd's watchBatchMaxRevs), prev_kv read
// from the keyspace at mod_revision - 1 (left out once compacted), and becomes synced when
// it reaches the durable revision. A catch-up response holds whole revisions and has
// header.revision = the durable revision, as etcd's syncWatchers(). An unsynced watcher
// below the compaction point is cancelled with compact_revision set and stays registered
// (its id stays taken) until the client cancels it, exactly as etcd.
//
// Guarantees per watcher: ordered, unique, reliable (no gap above the compaction point),
// atomic (a revision is never split, except into a fragment chain the client reassembles),
// resumable, and bookmarkable (a progress response at R follows every event <= R).
//
// Memory: events are held only from staging to durability (bounded by the Node's group
// commit) and only while the account has a watcher; a catch-up step reads a bounded slice;
// streams buffer behind a bounded sink and a full sink drops the watcher to catch-up.
//
// Threading: lives on the Node's thread. Time only through the Executor (catch-up steps
// are posted, progress ticks use PostAfter); the only randomness is the progress jitter,
// from the injected Random. Sinks run on this thread and must not call back into the hub
// or the Node synchronously.
#ifndef GEOETCD_CORE_WATCH_HUB_H_
#define GEOETCD_CORE_WATCH_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/injected_bugs.h"
#include "core/keyspace.h"
#include "core/kv_store.h"
#include "core/ports.h"
#include "core/random.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd {

// Receives one stream's responses, in order, on the Node's thread. Returns false to refuse
// a response because the stream's outbound buffer is full. It may refuse only a progress
// response (which is then dropped, as etcd drops it) or a response that carries events and
// does not continue a fragmented one (the previous response had fragment=true); created
// and canceled responses must be accepted. After refusing events the owner calls
// WatchHub::ResumeStream (Node::ResumeWatchStream) once the buffer has room again; until
// then the hub sends that stream no events. core/watch_buffer.h implements this contract.
using WatchSink = std::function<bool(etcdserverpb::WatchResponse)>;

// etcd's watchBatchMaxRevs.
inline constexpr int64_t kWatchCatchUpRevisionsMax = 1000;
// Bytes of history one catch-up step reads at most (it always finishes the revision it is
// in, so a single larger revision still goes out whole).
inline constexpr int64_t kWatchCatchUpBytesMax = 4LL << 20;
// etcd's minWatchProgressInterval; its jitter adds up to a tenth of the interval.
inline constexpr int64_t kWatchProgressNotifyIntervalMsMin = 100;
// How long a catch-up step waits before retrying after a storage read error.
inline constexpr int64_t kWatchCatchUpRetryMs = 100;

struct WatchHubOptions {
  // --experimental-watch-progress-notify-interval; raised to the minimum if below it.
  int64_t progress_notify_interval_ms = 10 * 60 * 1000;  // etcd's default, 10 minutes
  // A response of at least this many bytes with two or more events is split into fragments
  // when its watcher asked for it (etcd: --max-request-bytes + 512 KiB of gRPC overhead).
  int64_t fragment_bytes_min = 1572864 + 512 * 1024;
  int64_t catch_up_revisions_max = kWatchCatchUpRevisionsMax;
  int64_t catch_up_bytes_max = kWatchCatchUpBytesMax;
  // InjectedBugs::skip_watch_event (core/node.h): synced watchers lose the first event of
  // every revision divisible by 10. Only the simulator sets it.
  GEOETCD_BUG_FLAG bug_skip_event = false;
};

class WatchHub : public CommitObserver {
 public:
  using HeaderFiller = std::function<void(etcdserverpb::ResponseHeader*)>;

  // `storage` holds the account's event log, `kv` its keyspace (for prev_kv, the compaction
  // point and the head revision); both must outlive the hub. `durable_rev` is the account's
  // durable revision now. `fill_header` sets cluster_id, member_id and raft_term.
  WatchHub(WatchHubOptions options, Executor* executor, const Storage* storage,
           const KvStore* kv, int64_t durable_rev, HeaderFiller fill_header, Random random);
  ~WatchHub() override;
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // --- Streams. Ids are chosen by the caller and unique per hub.
  void OpenStream(uint64_t stream_id, WatchSink sink);
  // Removes the stream and its watchers; its sink is never called again.
  void CloseStream(uint64_t stream_id);
  bool HasStream(uint64_t stream_id) const { return streams_.count(stream_id) != 0; }
  // A create, cancel or progress request, answered through the sink at once (callers that
  // must not be answered inline post this). Unknown streams are ignored.
  void HandleRequest(uint64_t stream_id, const etcdserverpb::WatchRequest& req);
  // The stream's sink has room again: its watchers dropped to catch-up resume.
  void ResumeStream(uint64_t stream_id);

  // --- Event source.
  // Revisions up to `durable_rev` are durable: their events go out to synced watchers and
  // unsynced ones may read them from storage.
  void OnDurable(int64_t durable_rev);
  bool WantsEvents() const override { return capturing_; }
  // The keyspace was replaced by another region's state at `revision` (a Merkle repair,
  // core/node_repair.cc), its compaction point now `revision`: events captured before are
  // void, and every watcher that had not seen `revision` yet drops to catch-up, where one
  // below the new compaction point is cancelled with compact_revision set, as etcd cancels
  // a watcher that fell behind a compaction. Call before OnDurable(revision).
  // REQUIRES: the store is at `revision` already.
  void OnReset(int64_t revision);
  void OnCommit(int64_t revision, std::vector<mvccpb::Event> events) override;

  // --- Observability.
  int64_t durable_revision() const { return durable_rev_; }
  size_t stream_count() const { return streams_.size(); }
  // Watchers that are synced or catching up (not the compacted ones still registered).
  size_t active_watcher_count() const { return active_watchers_; }
  size_t unsynced_watcher_count() const { return active_watchers_ - synced_watchers_; }
  // Revisions whose events wait for durability.
  size_t pending_revision_count() const { return pending_.size(); }
  uint64_t catch_up_steps() const { return catch_up_steps_; }

  // Aborts if an index, a count or the pending event log is inconsistent.
  void CheckInvariants() const;

 private:
  enum class State { kSynced, kUnsynced, kCompacted };
  using WatcherKey = std::pair<uint64_t, int64_t>;  // (stream id, watch id)

  struct Watcher {
    uint64_t stream_id = 0;
    int64_t id = 0;
    KeyRange range;
    int64_t start_rev = 0;  // as requested; 0 means "from now"
    int64_t next_rev = 0;   // the first revision not yet handed to the stream
    bool prev_kv = false;
    bool progress_notify = false;
    bool fragment = false;
    bool no_put = false;
    bool no_delete = false;
    State state = State::kUnsynced;
    bool progress_due = true;  // no events went out since the last progress tick
  };
  struct Stream {
    uint64_t id = 0;
    WatchSink sink;
    bool blocked = false;  // the sink refused a response; waiting for ResumeStream
    int64_t next_watch_id = 0;
    std::map<int64_t, Watcher> watchers;
    int64_t progress_interval_ms = 0;  // interval plus this stream's jitter
    Executor::TimerId progress_timer = 0;
    bool progress_armed = false;
  };
  struct PendingRevision {
    int64_t revision;
    std::vector<mvccpb::Event> events;
  };

  void Create(Stream* stream, const etcdserverpb::WatchCreateRequest& req);
  void Cancel(Stream* stream, int64_t watch_id);
  void RequestProgress(Stream* stream);
  etcdserverpb::WatchResponse NewResponse(int64_t header_revision, int64_t watch_id) const;

  // Watcher state changes keep the synced indexes and the capture switch in step.
  void AddWatcher(Stream* stream, Watcher w);
  void MakeSynced(Watcher* w);
  void MakeUnsynced(Watcher* w, int64_t next_rev);
  void MakeCompacted(Watcher* w);
  void RemoveWatcher(Stream* stream, std::map<int64_t, Watcher>::iterator it);
  void IndexSynced(const Watcher& w);
  void UnindexSynced(const Watcher& w);
  void UpdateCapture();
  // True when revisions after the durable one are all in pending_, so a watcher caught up
  // to the durable revision may become synced.
  bool CanSync() const;

  void Publish(const PendingRevision& rev);
  // Filters `events` for `w` and sends them as one logical response; false if refused.
  bool SendEvents(Stream* stream, Watcher* w, int64_t header_revision,
                  const std::vector<const mvccpb::Event*>& events);
  bool Deliver(Stream* stream, const Watcher& w, etcdserverpb::WatchResponse resp);
  bool Matches(const Watcher& w, const mvccpb::Event& ev) const;

  void ScheduleCatchUp();
  // One catch-up step: collect the unsynced watchers it can serve, read one bounded slice
  // of the event log for them, add prev_kv where asked, and hand each its events.
  void CatchUpStep();
  struct CatchUpSlice {
    std::vector<WatcherKey> readers;
    int64_t from = 0;
    int64_t to = 0;
    std::vector<mvccpb::Event> events;
  };
  // Cancels watchers below the compaction point, syncs those that caught up, and lists the
  // rest as readers from the lowest revision any of them needs.
  void CollectReaders(int64_t compact_rev, CatchUpSlice* slice, bool* wants_prev_kv);
  // Reads [from, to] (to bounded by revisions and bytes) keeping only wanted events.
  absl::Status ReadSlice(CatchUpSlice* slice);
  void AttachPrevKvs(int64_t compact_rev, std::vector<mvccpb::Event>* events) const;
  // Returns whether some reader needs another step.
  bool HandOut(const CatchUpSlice& slice);
  void ArmProgress(Stream* stream);
  void ProgressTick(uint64_t stream_id);

  Watcher* Find(const WatcherKey& key);

  WatchHubOptions options_;
  Executor* executor_;
  const Storage* storage_;
  const KvStore* kv_;
  int64_t durable_rev_;
  HeaderFiller fill_header_;
  Random random_;

  std::map<uint64_t, Stream> streams_;
  size_t active_watchers_ = 0;
  size_t synced_watchers_ = 0;
  // Synced watchers: single-key ones by key, the others in one set.
  std::map<std::string, std::set<WatcherKey>, std::less<>> synced_by_key_;
  std::set<WatcherKey> synced_ranges_;

  // Captured events of revisions staged but not yet durable, ascending and contiguous.
  bool capturing_ = false;
  int64_t capture_from_rev_ = 0;  // the first revision captured since capturing_ turned on
  int64_t last_captured_rev_ = 0;
  std::deque<PendingRevision> pending_;

  bool catch_up_scheduled_ = false;
  uint64_t catch_up_steps_ = 0;
  // Posted callbacks and timers hold a weak reference; they do nothing once the hub is gone.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_WATCH_HUB_H_
