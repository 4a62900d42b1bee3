// The Node's region protocol (core/node.h): forwarding mutations to the write region,
// streaming the log from it, read indexes, and anti-entropy gossip with log pulls. Every
// step runs on the Node's executor over the Transport port, so the simulator drives it.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "core/node.h"
#include "core/node_internal.h"

namespace geoetcd {

namespace {

// Adapts a typed reply of the write region into the bytes a ForwardReply carries.
template <typename Resp>
Reply<Resp> ToAnswer(std::function<void(absl::Status, std::string)> answer) {
  return [answer = std::move(answer)](absl::StatusOr<Resp> r) {
    if (!r.ok()) return answer(r.status(), std::string());
    answer(absl::OkStatus(), r->SerializeAsString());
  };
}

}  // namespace

void Node::Send(uint64_t to, const std::string& account, PeerMessage message,
                bool antientropy) {
  message.set_cluster_id(options_.cluster_id);
  message.set_from(options_.member_id);
  message.set_hlc(hlc_.Now(ports_.clock->WallMs()));
  message.set_account(account);
  const Account* a = FindAccount(account);
  message.set_epoch(a != nullptr ? a->epoch : epoch_);
  ++peer_stats_.sent;
  std::string payload = message.SerializeAsString();
  if (antientropy || message.has_digest() || message.has_pull() || message.has_repair() ||
      message.has_repair_reply()) {
    peer_stats_.antientropy_bytes_sent += payload.size();
  }
  ports_.transport->Send(to, std::move(payload));
}

void Node::OnPeerMessage(uint64_t from, std::string payload) {
  PeerMessage m;
  if (!m.ParseFromString(payload)) {
    ++peer_stats_.dropped_unparsable;
    return;
  }
  const bool known = std::any_of(options_.regions.begin(), options_.regions.end(),
                                 [&](const RegionInfo& r) { return r.id == m.from(); });
  if (m.cluster_id() != options_.cluster_id || !known || m.from() != from ||
      m.from() == options_.member_id) {
    ++peer_stats_.dropped_foreign;
    return;
  }
  Account* account = FindAccount(m.account());
  if (account == nullptr) {
    ++peer_stats_.dropped_foreign;
    return;
  }
  if (m.epoch() > account->epoch) {
    ++peer_stats_.dropped_future_epoch;
    return;
  }
  if (!fatal_.ok()) return;
  hlc_.Observe(m.hlc());
  ++peer_stats_.received;
  switch (m.body_case()) {
    case PeerMessage::kForward:
      return HandleForward(from, account, m.forward());
    case PeerMessage::kForwardReply:
      return HandleForwardReply(account, m.forward_reply());
    case PeerMessage::kAppend:
      return HandleAppend(from, account, m.append());
    case PeerMessage::kAppendAck:
      return HandleAppendAck(from, account, m.append_ack());
    case PeerMessage::kReadIndex:
      return HandleReadIndex(from, account, m.read_index());
    case PeerMessage::kReadIndexReply:
      return HandleReadIndexReply(account, m.read_index_reply());
    case PeerMessage::kDigest:
      return HandleDigest(from, account, m.digest());
    case PeerMessage::kPull:
      return HandlePull(from, account, m.pull());
    case PeerMessage::kRepair:
      return HandleRepair(from, account, m.repair());
    case PeerMessage::kRepairReply:
      return HandleRepairReply(from, account, m.repair_reply());
    case PeerMessage::BODY_NOT_SET:
      ++peer_stats_.dropped_unparsable;
      return;
  }
}

// --- Forwarding --------------------------------------------------------------------------

void Node::SendForward(PendingForward& pending) {
  Account* account = FindAccount(pending.account);
  pending.sent_ms = ports_.clock->MonotonicMs();
  Send(account->write_region, pending.account, pending.message);
}

void Node::HandleForward(uint64_t from, Account* account, const Forward& forward) {
  if (!IsWriteRegion(account)) return;  // the sender times out, as against a dead W
  const auto key = std::make_pair(from, forward.id());
  if (auto it = forwards_seen_.find(key); it != forwards_seen_.end()) {
    ++peer_stats_.forwards_deduplicated;
    if (it->second != nullptr) {
      PeerMessage m;
      *m.mutable_forward_reply() = *it->second;
      Send(from, account->name(), std::move(m));
    }
    return;  // still executing: its answer goes out when it is done
  }
  RememberForward(key, nullptr);
  ++peer_stats_.forwards_executed;
  RequestContext ctx;
  ctx.account = account->name();
  ctx.forwarded = true;
  auto answer = [this, key, name = account->name()](absl::Status status, std::string bytes) {
    const bool logged = forwards_logged_.erase(key) > 0;
    Account* a = FindAccount(name);
    if (a == nullptr) return;
    auto reply = std::make_unique<ForwardReply>();
    reply->set_id(key.second);
    reply->set_code(static_cast<int32_t>(status.code()));
    reply->set_message(std::string(status.message()));
    reply->set_response(std::move(bytes));
    // Everything the answer could depend on is durable here by now.
    reply->set_index(a->durable_index);
    PeerMessage m;
    *m.mutable_forward_reply() = *reply;
    if (logged) {
      // The log entry records the execution: a restarted W recognizes a late retry.
      RememberForward(key, std::move(reply));
      Send(key.first, name, std::move(m));
      return;
    }
    // No entry (a refusal, a request that changed nothing): a late copy of this forward
    // reaching a restarted W must get this same answer, not run again, so the answer is
    // made durable before it leaves.
    // Until then a retry is answered as one still executing (not at all): an answer it got
    // earlier could be lost with the marker in a crash, and the forward then run again.
    staged_.Put(codec::ForwardMarkerKey(key.first, key.second), reply->SerializeAsString());
    std::shared_ptr<ForwardReply> held = std::move(reply);
    AfterDurable([this, key, name, m = std::move(m), held]() mutable {
      RememberForward(key, std::make_unique<ForwardReply>(std::move(*held)));
      Send(key.first, name, std::move(m));
    });
    MaybeWrite();
  };
  executing_forward_ = key;
  Dispatch(ctx, forward, std::move(answer));  // the answer comes later: it is never inline
  executing_forward_ = {0, 0};
}

void Node::RememberForward(std::pair<uint64_t, uint64_t> key,
                           std::unique_ptr<ForwardReply> reply) {
  auto [it, inserted] = forwards_seen_.try_emplace(key);
  it->second = std::move(reply);
  if (!inserted) return;
  forwards_seen_order_.push_back(key);
  while (static_cast<int64_t>(forwards_seen_order_.size()) > options_.forward_dedup_max) {
    const auto& old = forwards_seen_order_.front();
    staged_.Delete(codec::ForwardMarkerKey(old.first, old.second));
    forwards_seen_.erase(old);
    forwards_seen_order_.pop_front();
  }
}

void Node::Dispatch(const RequestContext& ctx, const Forward& forward,
                    std::function<void(absl::Status, std::string)> answer) {
  switch (forward.request_case()) {
    case Forward::kPut:
      return Put(ctx, forward.put(), ToAnswer<etcdserverpb::PutResponse>(answer));
    case Forward::kDeleteRange:
      return DeleteRange(ctx, forward.delete_range(),
                         ToAnswer<etcdserverpb::DeleteRangeResponse>(answer));
    case Forward::kTxn:
      return Txn(ctx, forward.txn(), ToAnswer<etcdserverpb::TxnResponse>(answer));
    case Forward::kCompaction:
      return Compact(ctx, forward.compaction(),
                     ToAnswer<etcdserverpb::CompactionResponse>(answer));
    case Forward::kLeaseGrant:
      return LeaseGrant(ctx, forward.lease_grant(),
                        ToAnswer<etcdserverpb::LeaseGrantResponse>(answer));
    case Forward::kLeaseRevoke:
      return LeaseRevoke(ctx, forward.lease_revoke(),
                         ToAnswer<etcdserverpb::LeaseRevokeResponse>(answer));
    case Forward::kLeaseKeepAlive:
      return LeaseKeepAlive(ctx, forward.lease_keep_alive(),
                            ToAnswer<etcdserverpb::LeaseKeepAliveResponse>(answer));
    case Forward::kLeaseTimeToLive:
      return LeaseTimeToLive(ctx, forward.lease_time_to_live(),
                             ToAnswer<etcdserverpb::LeaseTimeToLiveResponse>(answer));
    case Forward::kLeaseLeases:
      return LeaseLeases(ctx, forward.lease_leases(),
                         ToAnswer<etcdserverpb::LeaseLeasesResponse>(answer));
    case Forward::kAlarm:
      return Alarm(ctx, forward.alarm(), ToAnswer<etcdserverpb::AlarmResponse>(answer));
    case Forward::REQUEST_NOT_SET:
      return answer(absl::InvalidArgumentError("geoetcd: forwarded request is empty"), "");
  }
}

void Node::HandleForwardReply(Account* account, const ForwardReply& reply) {
  auto it = pending_forwards_.find(reply.id());
  if (it == pending_forwards_.end() || it->second->answered) return;  // duplicate or late
  it->second->answered = true;
  absl::StatusOr<std::string> result = reply.response();
  if (reply.code() != 0) {
    result = absl::Status(static_cast<absl::StatusCode>(reply.code()), reply.message());
  }
  auto finish = [this, id = reply.id(), result = std::move(result)]() mutable {
    auto p = pending_forwards_.find(id);
    if (p == pending_forwards_.end()) return;  // timed out meanwhile
    auto done = std::move(p->second->done);
    pending_forwards_.erase(p);
    done(std::move(result));
  };
  if (options_.bugs.ack_forward_before_apply) {
    ports_.executor->Post(std::move(finish));
    return;
  }
  // Answer once this region holds what W's answer depends on: read-your-writes here.
  WhenDurable(account, reply.index(), std::move(finish));
}

// --- Replication ---------------------------------------------------------------------------

void Node::Replicate(Account* account) {
  for (const RegionInfo& region : options_.regions) {
    if (region.id != options_.member_id) ReplicateTo(account, region.id, /*heartbeat=*/false);
  }
}

void Node::ReplicateTo(Account* account, uint64_t peer, bool heartbeat) {
  PeerProgress& p = account->peers[peer];
  bool sent = false;
  while (p.next_index <= account->durable_index &&
         p.inflight_bytes < options_.replication_window_bytes) {
    std::vector<LogEntry> entries = ReadEntries(account, p.next_index, account->durable_index);
    if (entries.empty()) break;  // compacted away: the region repairs (first_index tells it)
    PeerMessage m;
    Append* append = m.mutable_append();
    int64_t bytes = 0;
    for (LogEntry& e : entries) {
      bytes += static_cast<int64_t>(e.ByteSizeLong());
      *append->add_entries() = std::move(e);
    }
    append->set_durable_index(account->durable_index);
    append->set_first_index(account->first_index);
    const uint64_t last = append->entries(append->entries_size() - 1).index();
    p.next_index = last + 1;
    p.inflight.emplace_back(last, bytes);
    p.inflight_bytes += bytes;
    peer_stats_.entries_sent += static_cast<uint64_t>(append->entries_size());
    Send(peer, account->name(), std::move(m));
    sent = true;
  }
  if (!sent && heartbeat) {
    PeerMessage m;
    m.mutable_append()->set_durable_index(account->durable_index);
    m.mutable_append()->set_first_index(account->first_index);
    Send(peer, account->name(), std::move(m));
  }
}

void Node::HandleAppend(uint64_t from, Account* account, const Append& append) {
  // A repair being installed replaces this region's state: nothing may apply meanwhile.
  if (account->repair != nullptr && account->repair->phase == RepairRun::Phase::kInstalling) {
    return;
  }
  bool applied = false;
  bool gap = false;
  for (const LogEntry& e : append.entries()) {
    if (e.index() <= account->head_index) continue;  // a duplicate
    if (e.epoch() > account->epoch) break;
    if (e.index() != account->head_index + 1) {
      if (!options_.bugs.apply_out_of_order) {
        gap = true;
        break;
      }
      account->head_index = e.index() - 1;  // the bug: skip the gap
      account->tail.clear();
      account->tail_bytes = 0;
    }
    if (options_.bugs.drop_replicated_commit && e.index() % 7 == 0) {
      LogEntry hollow = e;  // the bug: claim the entry without its changes
      hollow.clear_ops();
      hollow.clear_lease_grant();
      hollow.clear_lease_revoke();
      StageEntry(account, std::move(hollow));
      applied = true;
      continue;
    }
    if (absl::Status s = ApplyEntry(account, e); !s.ok()) return Fail(s);
    applied = true;
  }
  if (applied) {
    // The log reaches this region again: it no longer needs a repair begun meanwhile.
    AbandonRepair(account);
    MaybeWrite();
  }
  if (IsWriteRegion(account)) return;
  account->announced_durable_index =
      std::max(account->announced_durable_index, append.durable_index());
  if (from == account->write_region && append.first_index() > account->first_index &&
      append.first_index() <= account->durable_index) {
    // W dropped what every region holds: so can we.
    TruncateLog(account, append.first_index());
    MaybeWrite();
  }
  const bool from_w = from == account->write_region;
  // A hole in W's own stream: W resends from it (a pull would race that stream, and its
  // progress would hide the loss from W's retransmission timer).
  SendAck(account->write_region, account, /*gap=*/gap && from_w);
  const bool behind = append.durable_index() > account->head_index;
  if (behind && append.first_index() > account->head_index + 1) {
    // The sender's log no longer reaches back to us: adopt its state (node_repair.cc).
    return MaybeStartRepair(from, account);
  }
  if (behind && !from_w) {
    // Another region has entries we lack (its log or its heartbeat says so): ask it for
    // them; W may be unreachable.
    const int64_t now = ports_.clock->MonotonicMs();
    if (applied || account->last_pull_ms < 0 ||
        now - account->last_pull_ms >= options_.forward_retry_ms) {
      account->last_pull_ms = now;
      PeerMessage m;
      m.mutable_pull()->set_from_index(account->head_index + 1);
      ++peer_stats_.pulls_sent;
      Send(from, account->name(), std::move(m));
    }
  }
}

void Node::SendAck(uint64_t to, Account* account, bool gap) {
  PeerMessage m;
  m.mutable_append_ack()->set_applied_index(account->head_index);
  m.mutable_append_ack()->set_durable_index(account->durable_index);
  m.mutable_append_ack()->set_gap(gap);
  Send(to, account->name(), std::move(m));
}

void Node::HandleAppendAck(uint64_t from, Account* account, const AppendAck& ack) {
  if (!IsWriteRegion(account)) return;
  PeerProgress& p = account->peers[from];
  const int64_t now = ports_.clock->MonotonicMs();
  if (ack.applied_index() < p.match_index) {
    // The region restarted and lost what it had not made durable: resend from its state.
    p.match_index = ack.applied_index();
    p.next_index = ack.applied_index() + 1;
    p.inflight.clear();
    p.inflight_bytes = 0;
    p.last_progress_ms = now;
  } else if (ack.applied_index() > p.match_index) {
    p.match_index = ack.applied_index();
    p.last_progress_ms = now;
    while (!p.inflight.empty() && p.inflight.front().first <= p.match_index) {
      p.inflight_bytes -= p.inflight.front().second;
      p.inflight.pop_front();
    }
  }
  const uint64_t hole = p.match_index + 1;
  if (ack.gap() && p.next_index > hole &&
      (hole != p.resent_from || now - p.resent_ms >= options_.retransmit_ms)) {
    // What followed the hole is lost or was overtaken: go back to it now (go-back-N).
    p.next_index = hole;
    p.inflight.clear();
    p.inflight_bytes = 0;
    p.resent_from = hole;
    p.resent_ms = now;
    p.last_progress_ms = now;
  }
  p.next_index = std::max(p.next_index, p.match_index + 1);
  if (ack.durable_index() > p.durable_index) {
    p.durable_index = ack.durable_index();
    UpdateCommitted(account);
  }
  ReplicateTo(account, from, /*heartbeat=*/false);
}

// --- Read index ----------------------------------------------------------------------------

void Node::SendReadIndex(Account* account) {
  const uint64_t id = next_read_index_id_++;
  ReadBatch& batch = account->inflight_reads[id];
  batch.reads = std::move(account->unsent_reads);
  account->unsent_reads.clear();
  batch.sent_ms = ports_.clock->MonotonicMs();
  ++peer_stats_.read_index_rounds;
  PeerMessage m;
  m.mutable_read_index()->set_id(id);
  Send(account->write_region, account->name(), std::move(m));
}

void Node::HandleReadIndex(uint64_t from, Account* account, const ReadIndexRequest& req) {
  if (!IsWriteRegion(account)) return;
  PeerMessage m;
  m.mutable_read_index_reply()->set_id(req.id());
  // Every write W acknowledged is durable here; nothing past this was acknowledged.
  m.mutable_read_index_reply()->set_index(account->durable_index);
  Send(from, account->name(), std::move(m));
}

void Node::HandleReadIndexReply(Account* account, const ReadIndexReply& reply) {
  // The index is good for every read that was waiting when request `id` was sent: those of
  // batch `id` and of older batches. An id this process never sent (an answer to the
  // previous incarnation, ids are random per incarnation) orders nothing.
  if (reply.id() < read_index_id_base_ || reply.id() >= next_read_index_id_) return;
  auto& inflight = account->inflight_reads;
  while (!inflight.empty() && inflight.begin()->first <= reply.id()) {
    ReadBatch batch = std::move(inflight.begin()->second);
    inflight.erase(inflight.begin());
    WhenDurable(account, reply.index(),
                [this, name = account->name(), batch = std::move(batch)]() mutable {
                  if (Account* a = FindAccount(name)) ServeReadBatch(a, std::move(batch));
                });
  }
  if (inflight.empty() && !account->unsent_reads.empty()) SendReadIndex(account);
}

void Node::ServeReadBatch(Account* account, ReadBatch batch) {
  for (PendingRead& read : batch.reads) read.reply(ReadRange(read.ctx, read.req));
}

// --- The replication clock and gossip ------------------------------------------------------

void Node::Tick() {
  tick_timer_ = ports_.executor->PostAfter(options_.replication_tick_ms, [this] { Tick(); });
  if (!fatal_.ok()) return;
  const int64_t now = ports_.clock->MonotonicMs();
  for (auto it = pending_forwards_.begin(); it != pending_forwards_.end();) {
    PendingForward& p = *it->second;
    if (now >= p.deadline_ms) {
      ++peer_stats_.forward_timeouts;
      auto done = std::move(p.done);
      it = pending_forwards_.erase(it);
      done(errors::Timeout());
      continue;
    }
    if (!p.answered && now - p.sent_ms >= options_.forward_retry_ms) SendForward(p);
    ++it;
  }
  for (auto& [name, account] : accounts_) {
    Account* a = account.get();
    RepairTick(a, now);
    if (IsWriteRegion(a)) {
      // Acknowledgements whose write quorum did not answer in time.
      for (auto w = a->commit_waiters.begin(); w != a->commit_waiters.end();) {
        if (now < w->second.deadline_ms) {
          ++w;
          continue;
        }
        ++peer_stats_.forward_timeouts;
        auto fn = std::move(w->second.fn);
        w = a->commit_waiters.erase(w);
        ports_.executor->Post([fn = std::move(fn)] { fn(errors::Timeout()); });
      }
      for (const RegionInfo& region : options_.regions) {
        if (region.id == options_.member_id) continue;
        PeerProgress& p = a->peers[region.id];
        if (p.match_index < a->durable_index && now - p.last_progress_ms >= options_.retransmit_ms) {
          // No progress: what was in flight is presumed lost (go-back-N).
          p.next_index = p.match_index + 1;
          p.inflight.clear();
          p.inflight_bytes = 0;
          p.last_progress_ms = now;
        }
        ReplicateTo(a, region.id, /*heartbeat=*/true);
      }
      continue;
    }
    // Reads waiting for a read index: give up at their deadline, ask again when unanswered.
    for (auto& [id, batch] : a->inflight_reads) {
      auto& reads = batch.reads;
      for (auto r = reads.begin(); r != reads.end();) {
        if (now < r->deadline_ms) {
          ++r;
          continue;
        }
        ++peer_stats_.forward_timeouts;
        auto reply = std::move(r->reply);
        r = reads.erase(r);
        ports_.executor->Post([reply = std::move(reply)] { reply(errors::Timeout()); });
      }
    }
    if (!a->inflight_reads.empty()) {
      auto last = std::prev(a->inflight_reads.end());
      if (now - last->second.sent_ms >= options_.forward_retry_ms) {
        // Merge every unanswered batch into a new request.
        std::vector<PendingRead> reads;
        for (auto& [id, batch] : a->inflight_reads) {
          for (auto& r : batch.reads) reads.push_back(std::move(r));
        }
        a->inflight_reads.clear();
        for (auto& r : a->unsent_reads) reads.push_back(std::move(r));
        a->unsent_reads = std::move(reads);
        SendReadIndex(a);
      }
    }
  }
  if (now - last_gossip_ms_ >= options_.gossip_interval_ms) {
    last_gossip_ms_ = now;
    Gossip();
    for (auto& [name, account] : accounts_) {
      if (!IsWriteRegion(account.get())) continue;
      TruncateLog(account.get(), LogTruncationPoint(account.get()));
    }
    MaybeWrite();
  }
}

void Node::Gossip() {
  std::vector<uint64_t> peers;
  for (const RegionInfo& region : options_.regions) {
    if (region.id != options_.member_id) peers.push_back(region.id);
  }
  if (peers.empty()) return;
  const uint64_t to = peers[random_.Uniform(peers.size())];
  for (auto& [name, account] : accounts_) {
    PeerMessage m;
    GossipDigest* d = m.mutable_digest();
    d->set_applied_index(account->head_index);
    d->set_durable_index(account->durable_index);
    d->set_revision(account->durable_rev);
    d->set_compact_revision(account->kv.compact_revision());
    d->set_first_index(account->first_index);
    if (const MerkleTree* tree = account->kv.merkle(); tree != nullptr) {
      d->set_merkle_root(tree->Root());
    }
    Send(to, name, std::move(m));
  }
}

void Node::HandleDigest(uint64_t from, Account* account, const GossipDigest& digest) {
  if (const MerkleTree* tree = account->kv.merkle();
      tree != nullptr && digest.applied_index() == account->head_index &&
      digest.merkle_root() != tree->Root()) {
    ++peer_stats_.digests_diverged;
    // W's state is the reference: a region that differs from it stops serving its own.
    if (from == account->write_region && !IsWriteRegion(account)) account->diverged = true;
  }
  if (digest.durable_index() <= account->head_index) return;
  if (digest.first_index() > account->head_index + 1) {
    return MaybeStartRepair(from, account);  // its log no longer reaches back to us
  }
  const int64_t now = ports_.clock->MonotonicMs();
  if (account->last_pull_ms >= 0 && now - account->last_pull_ms < options_.forward_retry_ms) {
    return;
  }
  account->last_pull_ms = now;
  PeerMessage m;
  m.mutable_pull()->set_from_index(account->head_index + 1);
  ++peer_stats_.pulls_sent;
  Send(from, account->name(), std::move(m));
}

void Node::HandlePull(uint64_t from, Account* account, const PullRequest& pull) {
  PeerMessage m;
  Append* append = m.mutable_append();
  for (LogEntry& e : ReadEntries(account, pull.from_index(), account->durable_index)) {
    *append->add_entries() = std::move(e);
  }
  peer_stats_.entries_sent += static_cast<uint64_t>(append->entries_size());
  append->set_durable_index(account->durable_index);
  append->set_first_index(account->first_index);
  Send(from, account->name(), std::move(m), /*antientropy=*/true);
}

}  // namespace geoetcd
