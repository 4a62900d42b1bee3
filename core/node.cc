#include "core/node.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "core/node_internal.h"

namespace geoetcd {

using etcdserverpb::CompactionRequest;
using etcdserverpb::CompactionResponse;
using etcdserverpb::DeleteRangeRequest;
using etcdserverpb::DeleteRangeResponse;
using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

Node::Node(NodeOptions options, Ports ports, Random random)
    : options_(std::move(options)), ports_(ports), random_(std::move(random)) {
  CHECK(ports_.clock != nullptr && ports_.executor != nullptr && ports_.storage != nullptr);
  if (!options_.on_fatal) {
    options_.on_fatal = [](const absl::Status& s) {
      std::fprintf(stderr, "geoetcd: fatal storage error: %s\n", std::string(s.message()).c_str());
      std::abort();
    };
  }
}

Node::~Node() {
  if (lease_timer_ != 0) ports_.executor->Cancel(lease_timer_);
  if (compaction_timer_ != 0) ports_.executor->Cancel(compaction_timer_);
  if (tick_timer_ != 0) ports_.executor->Cancel(tick_timer_);
}

absl::Status Node::Start() {
  CHECK(!started_);
  KvLimits limits;
  limits.txn_ops_max = options_.txn_ops_max;
  auto account =
      std::make_unique<Account>(kDefaultAccount, limits, options_.lease_ttl_min_s);
  auto loaded =
      account->kv.Recover(*ports_.storage, options_.bugs.reuse_revision_after_crash);
  if (!loaded.ok()) return loaded.status();
  account->durable_rev = account->sealed_rev = account->kv.revision();
  GEOETCD_RETURN_IF_ERROR(RecoverLeases(account.get()));
  GEOETCD_RETURN_IF_ERROR(RecoverAlarms(account.get()));
  GEOETCD_RETURN_IF_ERROR(RecoverLog(account.get()));
  GEOETCD_RETURN_IF_ERROR(RecoverForwardMarkers());
  account->write_region =
      options_.write_region != 0 ? options_.write_region : options_.member_id;
  account->write_quorum = options_.write_quorum;
  // Regions compare register trees in their gossip; one region alone keeps none.
  if (options_.regions.size() > 1) account->kv.EnableMerkle(options_.merkle_depth);
  AttachWatchHub(account.get());
  accounts_[kDefaultAccount] = std::move(account);
  hlc_.Now(ports_.clock->WallMs());
  started_ = true;
  lease_timer_ = ports_.executor->PostAfter(options_.lease_tick_ms, [this] { ExpireLeases(); });
  if (options_.regions.size() > 1) {
    CHECK(ports_.transport != nullptr);
    // Ids unique per incarnation: an answer to the previous process's request may still
    // arrive after a restart, and must match nothing.
    next_forward_id_ = random_.Next() & ~uint64_t{0xffffffff};
    next_read_index_id_ = read_index_id_base_ = random_.Next() & ~uint64_t{0xffffffff};
    ports_.transport->SetReceiver(
        [this](uint64_t from, std::string payload) { OnPeerMessage(from, std::move(payload)); });
    tick_timer_ =
        ports_.executor->PostAfter(options_.replication_tick_ms, [this] { Tick(); });
  }
  if (options_.auto_compaction.enabled()) {
    int64_t tick_ms = 0;
    for (auto& [name, a] : accounts_) {
      a->auto_compactor = std::make_unique<AutoCompactor>(
          options_.auto_compaction, ports_.clock->MonotonicMs(), a->durable_rev);
      tick_ms = a->auto_compactor->tick_ms();
    }
    compaction_timer_ = ports_.executor->PostAfter(tick_ms, [this] { AutoCompact(); });
  }
  return absl::OkStatus();
}

void Node::AutoCompact() {
  int64_t tick_ms = 0;
  for (auto& [name, account] : accounts_) {
    AutoCompactor* compactor = account->auto_compactor.get();
    tick_ms = compactor->tick_ms();
    const int64_t target = compactor->OnTick(ports_.clock->MonotonicMs(), account->durable_rev,
                                             std::max(account->kv.compact_revision(),
                                                      account->pending_compact_rev));
    if (target == 0 || !fatal_.ok() || !IsWriteRegion(account.get())) continue;
    RequestContext ctx;
    ctx.account = name;
    CompactionRequest req;
    req.set_revision(target);
    // Like etcd's compactor: a compaction that fails (say, a client compacted further
    // meanwhile) is simply tried again at a later tick.
    Compact(ctx, req, [](const absl::StatusOr<CompactionResponse>&) {});
  }
  compaction_timer_ = ports_.executor->PostAfter(tick_ms, [this] { AutoCompact(); });
}

absl::Status Node::CheckServing(const Account* account) const {
  if (!fatal_.ok()) return errors::Stopped();
  if (account == nullptr) return absl::NotFoundError("geoetcd: account not found");
  return absl::OkStatus();
}

Account* Node::FindAccount(const std::string& name) {
  auto it = accounts_.find(name);
  return it == accounts_.end() ? nullptr : it->second.get();
}

bool Node::IsWriteRegion(const Account* account) const {
  return account->write_region == options_.member_id;
}

void Node::FillHeader(etcdserverpb::ResponseHeader* header) const {
  header->set_cluster_id(options_.cluster_id);
  header->set_member_id(options_.member_id);
  header->set_raft_term(epoch_);
}

CommitStamp Node::NextStamp() {
  CommitStamp stamp;
  stamp.epoch = epoch_;
  stamp.hlc = hlc_.Now(ports_.clock->WallMs());
  stamp.origin = options_.member_id;
  return stamp;
}


void Node::Range(const RequestContext& ctx, const RangeRequest& req,
                 Reply<RangeResponse> reply) {
  if (ReadsInPlace(ctx, req)) {
    PostReply(ports_.executor, std::move(reply), ReadRange(ctx, req));
    return;
  }
  // Linearizable away from the write region: wait for a read index (node_region.cc).
  Account* account = FindAccount(ctx.account);
  PendingRead read;
  read.ctx = ctx;
  read.req = req;
  read.reply = std::move(reply);
  read.deadline_ms = ports_.clock->MonotonicMs() + options_.forward_timeout_ms;
  account->unsent_reads.push_back(std::move(read));
  if (account->inflight_reads.empty()) SendReadIndex(account);
}

bool Node::ReadsInPlace(const RequestContext& ctx, const RangeRequest& req) const {
  if (!fatal_.ok() || req.serializable() || !CheckRangeRequest(req).ok()) return true;
  auto it = accounts_.find(ctx.account);
  return it == accounts_.end() || IsWriteRegion(it->second.get());
}

absl::StatusOr<RangeResponse> Node::ReadRange(const RequestContext& ctx,
                                              const RangeRequest& req) const {
  if (!fatal_.ok()) return errors::Stopped();
  GEOETCD_RETURN_IF_ERROR(CheckRangeRequest(req));
  auto it = accounts_.find(ctx.account);
  if (it == accounts_.end()) return absl::NotFoundError("geoetcd: account not found");
  const Account& account = *it->second;
  if (account.diverged) return errors::Corrupt();
  int64_t read_rev = account.durable_rev;
  if (options_.bugs.stale_linearizable_read && !req.serializable()) {
    read_rev = std::max({account.kv.compact_revision(), read_rev - 1, int64_t{1}});
  }
  auto resp = account.kv.Range(req, read_rev);
  if (resp.ok()) FillHeader(resp->mutable_header());
  return resp;
}

template <typename Resp, typename Req, typename Fn>
void Node::Mutate(const RequestContext& ctx, const Req& req, Reply<Resp> reply, Fn mutate) {
  if (!fatal_.ok()) return PostReply<Resp>(ports_.executor, reply, errors::Stopped());
  if (static_cast<int64_t>(req.ByteSizeLong()) > options_.request_bytes_max) {
    return PostReply<Resp>(ports_.executor, reply, errors::RequestTooLarge());
  }
  if (static_cast<int64_t>(waiters_.size()) >= options_.pending_requests_max) {
    return PostReply<Resp>(ports_.executor, reply, errors::TooManyRequests());
  }
  Account* account = FindAccount(ctx.account);
  if (account == nullptr) {
    return PostReply<Resp>(ports_.executor, reply,
                           absl::NotFoundError("geoetcd: account not found"));
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  LogEntry entry;
  CommitStamp stamp = NextStamp();
  stamp.log = &entry;
  absl::StatusOr<Resp> resp = mutate(account, stamp);
  // A request that changed nothing (a txn that only reads, a delete of nothing) is no
  // commit: the log carries changes only.
  if (entry.ops_size() > 0) {
    entry.set_hlc(stamp.hlc);
    StageEntry(account, std::move(entry));
  }
  if (!resp.ok()) {
    // A refusal can depend on staged state (say, "lease not found" for a lease whose
    // revocation is not durable yet): answer it only once that state could not be undone.
    AfterDurable([reply = std::move(reply), status = resp.status()]() { reply(status); });
    return;
  }
  FillHeader(resp->mutable_header());
  if (options_.bugs.ack_before_fsync) {
    PostReply<Resp>(ports_.executor, std::move(reply), std::move(resp));
    MaybeWrite();
    return;
  }
  // Even a request that changed nothing observed the head, which may not be durable yet
  // (nor committed at the write quorum).
  AfterCommitted(account, [reply = std::move(reply), resp = *std::move(resp)](
                              absl::Status committed) mutable {
    if (!committed.ok()) return reply(committed);
    reply(std::move(resp));
  });
  MaybeWrite();
}

void Node::Put(const RequestContext& ctx, const PutRequest& req, Reply<PutResponse> reply) {
  if (auto s = CheckPutRequest(req); !s.ok()) {
    return PostReply<PutResponse>(ports_.executor, reply, s);
  }
  Mutate<PutResponse>(ctx, req, std::move(reply),
                      [&](Account* a, const CommitStamp& stamp) -> absl::StatusOr<PutResponse> {
    GEOETCD_RETURN_IF_ERROR(AdmitWrite(a, PutCostBytes(req)));
    return a->kv.Put(req, stamp, &staged_);
  });
}

void Node::DeleteRange(const RequestContext& ctx, const DeleteRangeRequest& req,
                       Reply<DeleteRangeResponse> reply) {
  if (auto s = CheckDeleteRequest(req); !s.ok()) {
    return PostReply<DeleteRangeResponse>(ports_.executor, reply, s);
  }
  Mutate<DeleteRangeResponse>(ctx, req, std::move(reply),
                              [&](Account* a, const CommitStamp& stamp) {
                                return a->kv.DeleteRange(req, stamp, &staged_);
                              });
}

void Node::Txn(const RequestContext& ctx, const TxnRequest& req, Reply<TxnResponse> reply) {
  if (auto s = CheckTxnRequest(req, options_.txn_ops_max); !s.ok()) {
    return PostReply<TxnResponse>(ports_.executor, reply, s);
  }
  Mutate<TxnResponse>(ctx, req, std::move(reply),
                      [&](Account* a, const CommitStamp& stamp) -> absl::StatusOr<TxnResponse> {
    GEOETCD_RETURN_IF_ERROR(AdmitWrite(a, TxnCostBytes(req)));
    const size_t staged_before = staged_.ops().size();
    auto resp = a->kv.Txn(req, stamp, &staged_);
    // Two key records and the commit record: cut after the first key record.
    if (options_.bugs.txn_not_atomic && bug_split_at_ == 0 &&
        staged_.ops().size() >= staged_before + 3) {
      bug_split_at_ = staged_before + 1;
    }
    return resp;
  });
}

void Node::Compact(const RequestContext& ctx, const CompactionRequest& req,
                   Reply<CompactionResponse> reply) {
  if (!fatal_.ok()) return PostReply<CompactionResponse>(ports_.executor, reply, errors::Stopped());
  Account* account = FindAccount(ctx.account);
  if (account == nullptr) {
    return PostReply<CompactionResponse>(ports_.executor, reply,
                                         absl::NotFoundError("geoetcd: account not found"));
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  if (auto s = account->kv.CheckCompact(req.revision(), account->pending_compact_rev); !s.ok()) {
    return PostReply<CompactionResponse>(ports_.executor, reply, s);
  }
  const int64_t rev = req.revision();
  account->pending_compact_rev = rev;
  // Compact only once `rev` is durable, so reads at the durable revision stay answerable;
  // reply once the compaction itself is durable (etcd's physical compaction).
  // A forwarded compaction's entry is staged later, but records the forward all the same:
  // a W restarted after it is durable recognizes a retry (at most once).
  AfterDurable([this, account, rev, forward = executing_forward_,
                reply = std::move(reply)]() mutable {
    if (!fatal_.ok()) return reply(errors::Stopped());
    account->kv.Compact(rev, &staged_);
    LogEntry entry;
    entry.set_hlc(NextStamp().hlc);
    entry.set_revision(account->kv.revision());
    entry.set_compact_revision(rev);
    const auto outer = executing_forward_;
    executing_forward_ = forward;
    StageEntry(account, std::move(entry));
    executing_forward_ = outer;
    TruncateLog(account, LogTruncationPoint(account));
    AfterCommitted(account, [this, account, reply = std::move(reply)](absl::Status committed) {
      if (!committed.ok()) return reply(committed);
      CompactionResponse resp;
      FillHeader(resp.mutable_header());
      resp.mutable_header()->set_revision(account->durable_rev);
      reply(std::move(resp));
    });
    MaybeWrite();
  });
  MaybeWrite();
}

const char* WriteQuorumName(WriteQuorum q) {
  switch (q) {
    case WriteQuorum::kLocal:
      return "local";
    case WriteQuorum::kMajority:
      return "majority";
    case WriteQuorum::kAll:
      return "all";
  }
  return "unknown";
}

void Node::AfterCommitted(Account* account, std::function<void(absl::Status)> fn) {
  if (account->write_quorum == WriteQuorum::kLocal || !IsWriteRegion(account) ||
      options_.regions.size() <= 1 || options_.bugs.quorum_acks_early) {
    AfterDurable([fn = std::move(fn)]() { fn(absl::OkStatus()); });
    return;
  }
  const uint64_t index = account->head_index;
  AfterDurable([this, name = account->name(), index, fn = std::move(fn)]() mutable {
    Account* a = FindAccount(name);
    if (a == nullptr) return fn(errors::Stopped());
    if (index <= a->committed_index) return fn(absl::OkStatus());
    a->commit_waiters.emplace(
        index, Account::CommitWaiter{ports_.clock->MonotonicMs() + options_.forward_timeout_ms,
                                     std::move(fn)});
  });
}

void Node::UpdateCommitted(Account* account) {
  std::vector<uint64_t> durable{account->durable_index};
  for (const RegionInfo& region : options_.regions) {
    if (region.id == options_.member_id) continue;
    auto it = account->peers.find(region.id);
    durable.push_back(it == account->peers.end() ? 0 : it->second.durable_index);
  }
  size_t needed = 1;
  if (account->write_quorum == WriteQuorum::kMajority) needed = durable.size() / 2 + 1;
  if (account->write_quorum == WriteQuorum::kAll) needed = durable.size();
  std::sort(durable.begin(), durable.end(), std::greater<uint64_t>());
  // A region's durable index can run ahead of W's own only across W's restart (W lost what
  // it had not synced, the region had it from before): never count past W's own log.
  const uint64_t committed = std::min(durable[needed - 1], account->durable_index);
  if (committed <= account->committed_index) return;
  account->committed_index = committed;
  auto& waiters = account->commit_waiters;
  while (!waiters.empty() && waiters.begin()->first <= committed) {
    auto fn = std::move(waiters.begin()->second.fn);
    waiters.erase(waiters.begin());
    fn(absl::OkStatus());
  }
}

void Node::AfterDurable(std::function<void()> fn) {
  // Work staged in the open batch needs that batch; otherwise the in-flight one suffices.
  const uint64_t needed = staged_.empty() ? staged_seq_ - 1 : staged_seq_;
  if (needed <= durable_seq_) {
    ports_.executor->Post(std::move(fn));
    return;
  }
  waiters_.push_back({needed, std::move(fn)});
}

void Node::MaybeWrite() {
  if (in_flight_ || staged_.empty() || !fatal_.ok()) return;
  in_flight_ = true;
  const uint64_t seq = staged_seq_++;
  uint64_t entries = 0;
  for (auto& [name, account] : accounts_) {
    entries += account->head_index - account->sealed_index;
    account->sealed_rev = account->kv.revision();
    account->sealed_index = account->head_index;
  }
  WriteBatch batch;
  batch.Append(std::move(staged_));
  ++storage_writes_;
  RecordGroupCommit(entries);
  if (bug_split_at_ != 0) {
    // InjectedBugs::txn_not_atomic: the second half is written only once the first is durable.
    WriteBatch first;
    WriteBatch second;
    for (size_t i = 0; i < batch.ops().size(); ++i) {
      const WriteBatch::Op& op = batch.ops()[i];
      WriteBatch& part = i < bug_split_at_ ? first : second;
      switch (op.type) {
        case WriteBatch::OpType::kPut:
          part.Put(op.key, op.value);
          break;
        case WriteBatch::OpType::kDelete:
          part.Delete(op.key);
          break;
        case WriteBatch::OpType::kDeleteRange:
          part.DeleteRange(op.key, op.value);
          break;
      }
    }
    bug_split_at_ = 0;
    ports_.storage->Write(
        std::move(first), /*sync=*/true,
        [this, seq, second = std::move(second)](absl::Status status) mutable {
          if (!status.ok()) return OnWriteDone(seq, status);
          ports_.storage->Write(std::move(second), /*sync=*/true,
                                [this, seq](absl::Status s) { OnWriteDone(seq, s); });
        });
    return;
  }
  ports_.storage->Write(std::move(batch), /*sync=*/true,
                        [this, seq](absl::Status status) { OnWriteDone(seq, status); });
}

void Node::OnWriteDone(uint64_t seq, absl::Status status) {
  CHECK(in_flight_);
  in_flight_ = false;
  if (!status.ok()) return Fail(status);
  CHECK(seq == durable_seq_ + 1);
  durable_seq_ = seq;
  for (auto& [name, account] : accounts_) {
    CHECK(account->sealed_rev >= account->durable_rev);  // durable revisions never go back
    account->durable_rev = account->sealed_rev;
    CHECK(account->sealed_index >= account->durable_index);
    account->durable_index = account->sealed_index;
  }
  // Start the next batch's write before answering this one's requests, so its fsync runs
  // while the replies go out. Replies first, then the watch fan-out: a write's latency
  // should not include delivering its events to thousands of watchers (etcd orders
  // neither before the other).
  MaybeWrite();
  while (!waiters_.empty() && waiters_.front().batch_seq <= durable_seq_) {
    auto fn = std::move(waiters_.front().fn);
    waiters_.pop_front();
    fn();
  }
  for (auto& [name, account] : accounts_) {
    auto& waiters = account->index_waiters;
    while (!waiters.empty() && waiters.begin()->first <= account->durable_index) {
      auto fn = std::move(waiters.begin()->second);
      waiters.erase(waiters.begin());
      fn();
    }
  }
  for (auto& [name, account] : accounts_) account->watches->OnDurable(account->durable_rev);
  if (options_.regions.size() > 1) {
    for (auto& [name, account] : accounts_) {
      if (IsWriteRegion(account.get())) {
        UpdateCommitted(account.get());
        Replicate(account.get());
      } else {
        SendAck(account->write_region, account.get());
      }
    }
  }
  MaybeWrite();
}

void Node::Fail(const absl::Status& status) {
  if (!fatal_.ok()) return;
  fatal_ = status;
  // Nothing staged or in flight may be acknowledged: its durability is unknown.
  waiters_.clear();
  forwards_logged_.clear();
  for (auto& [name, account] : accounts_) {
    account->index_waiters.clear();
    account->commit_waiters.clear();
  }
  options_.on_fatal(status);
}

uint64_t Node::write_region(const std::string& account) const {
  auto it = accounts_.find(account);
  return it == accounts_.end() ? 0 : it->second->write_region;
}

void Node::RecordGroupCommit(uint64_t entries) {
  int bucket = 0;
  while (bucket < GroupCommitStats::kBuckets && entries > (uint64_t{1} << bucket)) ++bucket;
  ++group_commit_stats_.buckets[static_cast<size_t>(bucket)];
  ++group_commit_stats_.writes;
  group_commit_stats_.entries += entries;
}

int64_t Node::OldestMissingAgeMs(const Account& account, const PeerProgress& progress) const {
  const uint64_t missing = progress.match_index + 1;
  if (!account.tail.empty() && account.tail.front().index() <= missing &&
      missing <= account.tail.back().index()) {
    const LogEntry& e = account.tail[static_cast<size_t>(missing - account.tail.front().index())];
    return std::max<int64_t>(0, ports_.clock->WallMs() - HlcPhysicalMs(e.hlc()));
  }
  return std::max<int64_t>(0, ports_.clock->MonotonicMs() - progress.last_progress_ms);
}

std::vector<AccountStats> Node::account_stats() const {
  std::vector<AccountStats> all;
  for (const auto& [name, a] : accounts_) {
    AccountStats s;
    s.name = name;
    s.write_region = a->write_region;
    s.epoch = a->epoch;
    s.durable_index = a->durable_index;
    s.applied_index = a->head_index;
    s.revision = a->kv.revision();
    s.live_keys = a->kv.keyspace().live_key_count();
    s.diverged = a->diverged;
    if (IsWriteRegion(a.get())) {
      for (const auto& [id, progress] : a->peers) {
        const uint64_t lag =
            a->durable_index > progress.match_index ? a->durable_index - progress.match_index : 0;
        s.lag_entries[id] = lag;
        s.lag_ms[id] = lag == 0 ? 0 : OldestMissingAgeMs(*a, progress);
      }
    } else if (options_.regions.size() > 1) {
      s.lag_entries[options_.member_id] = a->announced_durable_index > a->head_index
                                              ? a->announced_durable_index - a->head_index
                                              : 0;
    }
    all.push_back(std::move(s));
  }
  return all;
}

uint64_t Node::durable_index(const std::string& account) const {
  return accounts_.at(account)->durable_index;
}

uint64_t Node::applied_index(const std::string& account) const {
  return accounts_.at(account)->head_index;
}

uint64_t Node::KvHashAt(const std::string& account, int64_t rev) const {
  return accounts_.at(account)->kv.HashAt(rev);
}

const std::deque<LogEntry>& Node::log_tail(const std::string& account) const {
  return accounts_.at(account)->tail;
}

int64_t Node::durable_revision(const std::string& account) const {
  return accounts_.at(account)->durable_rev;
}

int64_t Node::head_revision(const std::string& account) const {
  return accounts_.at(account)->kv.revision();
}

int64_t Node::compact_revision(const std::string& account) const {
  return accounts_.at(account)->kv.compact_revision();
}

const Keyspace* Node::keyspace(const std::string& account) const {
  auto it = accounts_.find(account);
  return it == accounts_.end() ? nullptr : &it->second->kv.keyspace();
}

uint64_t Node::merkle_root(const std::string& account) const {
  auto it = accounts_.find(account);
  if (it == accounts_.end() || it->second->kv.merkle() == nullptr) return 0;
  return it->second->kv.merkle()->Root();
}

void Node::CheckRegisterTrees() const {
  for (const auto& [name, account] : accounts_) account->kv.CheckRegisterTree();
}

void Node::CheckInvariants() const {
  for (const auto& [name, account] : accounts_) {
    CHECK(account->durable_rev <= account->sealed_rev);
    CHECK(account->sealed_rev <= account->kv.revision());
    CHECK(account->durable_index <= account->sealed_index);
    CHECK(account->sealed_index <= account->head_index);
    CHECK(account->tail.empty() || account->tail.back().index() == account->head_index);
    account->kv.CheckInvariants();
    account->watches->CheckInvariants();
  }
  for (size_t i = 1; i < waiters_.size(); ++i) {
    CHECK(waiters_[i - 1].batch_seq <= waiters_[i].batch_seq);
  }
}

// --- Watch ---------------------------------------------------------------------------------

void Node::AttachWatchHub(Account* account) {
  WatchHubOptions watch_options;
  watch_options.progress_notify_interval_ms = options_.watch_progress_notify_interval_ms;
  // etcd fragments at MaxRequestBytesWithOverhead: --max-request-bytes plus gRPC's 512 KiB.
  watch_options.fragment_bytes_min = options_.request_bytes_max + 512 * 1024;
#ifdef GEOETCD_INJECTED_BUGS
  watch_options.bug_skip_event = options_.bugs.skip_watch_event;
#endif
  account->watches = std::make_unique<WatchHub>(
      watch_options, ports_.executor, ports_.storage, &account->kv, account->durable_rev,
      [this](etcdserverpb::ResponseHeader* header) { FillHeader(header); }, random_.Fork());
  account->kv.set_commit_observer(account->watches.get());
}

WatchHub* Node::FindWatchStream(uint64_t stream_id) {
  auto it = watch_streams_.find(stream_id);
  if (it == watch_streams_.end()) return nullptr;
  Account* account = FindAccount(it->second);
  return account == nullptr ? nullptr : account->watches.get();
}

absl::StatusOr<uint64_t> Node::OpenWatchStream(const RequestContext& ctx, WatchSink sink) {
  if (!fatal_.ok()) return errors::Stopped();
  Account* account = FindAccount(ctx.account);
  if (account == nullptr) return absl::NotFoundError("geoetcd: account not found");
  const uint64_t id = next_watch_stream_id_++;
  watch_streams_[id] = ctx.account;
  account->watches->OpenStream(id, std::move(sink));
  return id;
}

void Node::WatchRequest(uint64_t stream_id, const etcdserverpb::WatchRequest& req) {
  // Posted, so a created or canceled response never runs inside this call; the executor's
  // FIFO order keeps the responses in request order.
  ports_.executor->Post([this, stream_id, req] {
    if (WatchHub* hub = FindWatchStream(stream_id)) hub->HandleRequest(stream_id, req);
  });
}

void Node::ResumeWatchStream(uint64_t stream_id) {
  if (WatchHub* hub = FindWatchStream(stream_id)) hub->ResumeStream(stream_id);
}

void Node::CloseWatchStream(uint64_t stream_id) {
  if (WatchHub* hub = FindWatchStream(stream_id)) hub->CloseStream(stream_id);
  watch_streams_.erase(stream_id);
}

const WatchHub* Node::watch_hub(const std::string& account) const {
  auto it = accounts_.find(account);
  return it == accounts_.end() ? nullptr : it->second->watches.get();
}

}  // namespace geoetcd
