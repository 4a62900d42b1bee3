// The Node's Merkle repair (core/node.h, proto/geoetcd/peer.proto): a region whose log
// position no peer's log reaches back to any more (it was down or cut off while the write
// region compacted and truncated its log past it) adopts a peer's state at one revision.
//
//   repairer                                        source
//   RepairOpen            ------------------------> fixes its state at its head (tree copy,
//                                                   leases, alarms, log entry) and answers
//   MerkleRepair (crdt/)  <--- RepairOpened ------  once that head is durable
//     nodes, buckets, registers  <------------->   MerkleRepairSource over the fixed state
//   RepairStateRequest    ------------------------> leases (paged), alarms, log entry
//   install, one atomic batch
//
// The repairer collects the registers it adopts in an overlay over its own keyspace and a
// copy of its register tree, so its real state never changes until the end; the install is
// one storage batch (registers, compaction point, log, leases, alarms), applied to memory
// once durable. A crash at any point leaves it either where it was or repaired. It then
// holds the source's registers at revision S, its compaction point is S (no older history
// is readable there), its log starts with the source's entry at S, and the stream goes on.
//
// Unreliable delivery: requests are resent every forward_retry_ms until answered (the state
// machines ignore what is no longer outstanding); a run without progress for
// forward_timeout_ms, a refusal, or a result whose root is not the source's ends the run,
// and the next sign of being behind starts a new one.
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

// Lease records per state reply (about 20 bytes each).
constexpr int kRepairLeasesPerReplyMax = 4096;

using KeyIndex = std::vector<std::pair<uint64_t, const std::string*>>;

bool KeyIndexLess(const std::pair<uint64_t, const std::string*>& a,
                  const std::pair<uint64_t, const std::string*>& b) {
  return a.first != b.first ? a.first < b.first : *a.second < *b.second;
}

// The keys of leaf `bucket` greater than `after` in `index` (sorted by KeyIndexLess).
std::pair<KeyIndex::const_iterator, KeyIndex::const_iterator> BucketKeys(
    const KeyIndex& index, uint64_t bucket, std::string_view after) {
  auto first = std::partition_point(index.begin(), index.end(), [&](const auto& e) {
    return e.first < bucket || (e.first == bucket && *e.second <= after);
  });
  auto last = std::partition_point(first, index.end(),
                                   [&](const auto& e) { return e.first == bucket; });
  return {first, last};
}

// Every key of `keyspace` (that existed at `at_revision`, unless it is 0) by (leaf, key).
KeyIndex IndexKeys(const Keyspace& keyspace, int depth, int64_t at_revision) {
  KeyIndex index;
  keyspace.ForEachNewest([&](const std::string& key, const KeyVersion&) {
    if (at_revision == 0 || keyspace.NewestAt(key, at_revision) != nullptr) {
      index.emplace_back(MerkleTree::BucketOf(key, depth), &key);
    }
    return true;
  });
  std::sort(index.begin(), index.end(), KeyIndexLess);
  return index;
}

// The repairer's keyspace as its MerkleRepair sees it: the local registers with the
// adopted ones (run->overlay) in their place.
RepairKeyspace RepairerView(RepairRun* run, const KvStore* kv) {
  RepairKeyspace view;
  view.tree = &*run->tree;
  const int depth = run->tree->depth();
  view.list = [run, kv](uint64_t bucket, std::string_view after, const RegisterVisitor& visit) {
    auto [it, end] = BucketKeys(run->local_keys, bucket, after);
    static const std::map<std::string, std::optional<Register>> kNone;
    auto o = run->overlay.find(bucket);
    const auto& adopted = o == run->overlay.end() ? kNone : o->second;
    auto a = adopted.upper_bound(std::string(after));
    // Merge the local keys with the adopted ones, which replace or remove them.
    while (it != end || a != adopted.end()) {
      const bool take_local = a == adopted.end() || (it != end && *it->second < a->first);
      if (take_local) {
        const std::string& key = *it->second;
        ++it;
        if (!visit(KvStore::RegisterOf(key, *kv->keyspace().Newest(key)))) return;
        continue;
      }
      if (it != end && *it->second == a->first) ++it;
      const auto& adopted_register = a->second;
      ++a;
      if (adopted_register.has_value() && !visit(*adopted_register)) return;
    }
  };
  view.read = [run, kv, depth](std::string_view key) -> std::optional<Register> {
    auto o = run->overlay.find(MerkleTree::BucketOf(key, depth));
    if (o != run->overlay.end()) {
      auto a = o->second.find(std::string(key));
      if (a != o->second.end()) return a->second;
    }
    const KeyVersion* v = kv->keyspace().Newest(key);
    if (v == nullptr) return std::nullopt;
    return KvStore::RegisterOf(std::string(key), *v);
  };
  return view;
}

// The source's keyspace as one session sees it: the registers as of the session's revision.
RepairKeyspace SourceView(RepairServe* serve, const KvStore* kv) {
  RepairKeyspace view;
  view.tree = &*serve->tree;
  view.list = [serve, kv](uint64_t bucket, std::string_view after, const RegisterVisitor& visit) {
    auto [first, last] = BucketKeys(serve->keys, bucket, after);
    for (auto k = first; k != last; ++k) {
      const KeyVersion* v = kv->keyspace().NewestAt(*k->second, serve->revision);
      if (!visit(KvStore::RegisterOf(*k->second, *v))) return;
    }
  };
  view.read = [serve, kv](std::string_view key) -> std::optional<Register> {
    const KeyVersion* v = kv->keyspace().NewestAt(key, serve->revision);
    if (v == nullptr) return std::nullopt;
    return KvStore::RegisterOf(std::string(key), *v);
  };
  return view;
}

std::string NodesKey(const MerkleNodesRequest& r) {
  return absl::StrCat("n", r.level(), "/", r.indices_size() > 0 ? r.indices(0) : 0);
}
std::string BucketKey(uint64_t bucket, std::string_view after) {
  return absl::StrCat("b", bucket, "/", std::string(after));
}
std::string RegistersKey(uint64_t request_id) { return absl::StrCat("r", request_id); }

// A register another region sent, checked before it may enter this region's keyspace.
absl::Status CheckAdopted(const RepairChange& change, int64_t revision) {
  if (!change.after.has_value()) return absl::OkStatus();
  const Register& r = *change.after;
  GEOETCD_RETURN_IF_ERROR(ValidateRegister(r));
  if (r.key != change.key || r.tombstone != (r.version == 0) || r.mod_revision > revision ||
      r.mod_revision < 1 || r.create_revision > r.mod_revision || r.mod_sub < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("geoetcd: repair register does not fit: ", RegisterDebugString(r)));
  }
  return absl::OkStatus();
}

}  // namespace

// --- The repairer ----------------------------------------------------------------------------

void Node::MaybeStartRepair(uint64_t from, Account* account) {
  if (IsWriteRegion(account) || account->repair != nullptr) return;
  const int64_t now = ports_.clock->MonotonicMs();
  if (now < account->repair_retry_after_ms) return;
  const MerkleTree* tree = account->kv.merkle();
  if (tree == nullptr) return;
  auto run = std::make_unique<RepairRun>();
  run->source = from;
  run->session = random_.Next() | 1;
  run->started_ms = run->last_progress_ms = now;
  account->repair = std::move(run);
  ++peer_stats_.repairs_started;
  RepairRequest req;
  req.mutable_open()->set_depth(static_cast<uint32_t>(tree->depth()));
  SendRepairRequest(account, "o", std::move(req));
}

void Node::AbandonRepair(Account* account) {
  if (account->repair == nullptr) return;
  CHECK(account->repair->phase != RepairRun::Phase::kInstalling);
  account->repair.reset();
  ++peer_stats_.repairs_abandoned;
  account->repair_retry_after_ms = ports_.clock->MonotonicMs() + options_.forward_retry_ms;
}

void Node::SendRepairRequest(Account* account, std::string what, RepairRequest req) {
  RepairRun* run = account->repair.get();
  req.set_session(run->session);
  run->last_sent_ms = ports_.clock->MonotonicMs();
  PeerMessage m;
  *m.mutable_repair() = req;
  run->outstanding[std::move(what)] = std::move(req);
  Send(run->source, account->name(), std::move(m));
}

void Node::HandleRepairReply(uint64_t from, Account* account, const RepairReply& reply) {
  RepairRun* run = account->repair.get();
  if (run == nullptr || from != run->source || reply.session() != run->session) return;
  peer_stats_.repair_bytes_received += reply.ByteSizeLong();
  run->bytes_received += reply.ByteSizeLong();
  if (run->phase == RepairRun::Phase::kInstalling) return;
  if (reply.code() != 0) return AbandonRepair(account);
  run->last_progress_ms = ports_.clock->MonotonicMs();
  switch (reply.body_case()) {
    case RepairReply::kOpened: {
      if (run->phase != RepairRun::Phase::kOpening) return;
      run->outstanding.erase("o");
      const RepairOpened& target = reply.opened();
      const MerkleTree* tree = account->kv.merkle();
      if (target.index() <= account->head_index ||
          target.depth() != static_cast<uint32_t>(tree->depth()) || target.revision() < 1) {
        return AbandonRepair(account);  // not behind this source any more, or not comparable
      }
      run->target = target;
      run->tree = *tree;
      run->compact_revision_at_start = account->kv.compact_revision();
      run->local_keys = IndexKeys(account->kv.keyspace(), tree->depth(), /*at_revision=*/0);
      RepairKeyspace local = RepairerView(run, &account->kv);
      run->repair = std::make_unique<MerkleRepair>(std::move(local), run->session,
                                                   target.revision());
      run->phase = RepairRun::Phase::kDescending;
      RepairRequest req;
      *req.mutable_nodes() = run->repair->Start();
      std::string what = NodesKey(req.nodes());
      return SendRepairRequest(account, std::move(what), std::move(req));
    }
    case RepairReply::kNodes: {
      if (run->phase != RepairRun::Phase::kDescending) return;
      const MerkleNodesResponse& r = reply.nodes();
      MerkleNodesRequest asked;
      asked.set_level(r.level());
      if (r.nodes_size() > 0) asked.add_indices(r.nodes(0).index());
      run->outstanding.erase(NodesKey(asked));
      return RepairRunDescended(account, run->repair->OnNodes(r));
    }
    case RepairReply::kBucket: {
      if (run->phase != RepairRun::Phase::kDescending) return;
      const MerkleBucketResponse& r = reply.bucket();
      run->outstanding.erase(BucketKey(r.bucket(), r.after_key()));
      return RepairRunDescended(account, run->repair->OnBucket(r));
    }
    case RepairReply::kRegisters: {
      if (run->phase != RepairRun::Phase::kDescending) return;
      const MerkleRegistersResponse& r = reply.registers();
      run->outstanding.erase(RegistersKey(r.request_id()));
      peer_stats_.repair_registers_received += static_cast<uint64_t>(r.registers_size());
      return RepairRunDescended(account, run->repair->OnRegisters(r));
    }
    case RepairReply::kState: {
      if (run->phase != RepairRun::Phase::kState || run->outstanding.erase("s") == 0) return;
      const RepairState& state = reply.state();
      if (state.revision() != run->target.revision()) return AbandonRepair(account);
      for (const LeaseRecord& rec : state.leases()) {
        if (rec.id() <= 0 || (!run->leases.empty() && rec.id() <= run->leases.back().id())) {
          return AbandonRepair(account);
        }
        run->leases.push_back(rec);
      }
      if (state.more()) {
        if (state.leases_size() == 0) return AbandonRepair(account);
        RepairRequest req;
        req.mutable_state()->set_revision(run->target.revision());
        req.mutable_state()->set_after_lease(run->leases.back().id());
        return SendRepairRequest(account, "s", std::move(req));
      }
      run->state = state;
      return InstallRepair(account);
    }
    case RepairReply::BODY_NOT_SET:
      return AbandonRepair(account);
  }
}

void Node::RepairRunDescended(Account* account, absl::StatusOr<RepairStep> step) {
  RepairRun* run = account->repair.get();
  if (!step.ok()) return AbandonRepair(account);
  const int depth = run->tree->depth();
  for (RepairChange& change : step->changes) {
    if (!CheckAdopted(change, run->target.revision()).ok()) return AbandonRepair(account);
    const uint64_t bucket = MerkleTree::BucketOf(change.key, depth);
    if (options_.bugs.merge_prefers_older && change.after.has_value()) {
      const KeyVersion* mine = account->kv.keyspace().Newest(change.key);
      if (mine != nullptr &&
          CompareRegisters(KvStore::RegisterOf(change.key, *mine), *change.after) < 0) {
        continue;  // the bug: the older write wins
      }
    }
    if (change.after.has_value()) {
      run->tree->Set(change.key, RegisterHash(*change.after));
    } else {
      run->tree->Remove(change.key);
    }
    run->overlay[bucket][change.key] = std::move(change.after);
  }
  for (MerkleNodesRequest& r : step->node_requests) {
    RepairRequest req;
    *req.mutable_nodes() = std::move(r);
    std::string what = NodesKey(req.nodes());
    SendRepairRequest(account, std::move(what), std::move(req));
  }
  for (MerkleBucketRequest& r : step->bucket_requests) {
    RepairRequest req;
    std::string what = BucketKey(r.bucket(), r.after_key());
    *req.mutable_bucket() = std::move(r);
    SendRepairRequest(account, std::move(what), std::move(req));
  }
  for (MerkleRegistersRequest& r : step->register_requests) {
    RepairRequest req;
    std::string what = RegistersKey(r.request_id());
    *req.mutable_registers() = std::move(r);
    SendRepairRequest(account, std::move(what), std::move(req));
  }
  if (!run->repair->done()) return;
  const bool root_matches = run->repair->source_root() == run->target.merkle_root() &&
                            run->tree->Root() == run->target.merkle_root();
  if (run->repair->failed() || (!root_matches && !options_.bugs.merge_prefers_older)) {
    return AbandonRepair(account);
  }
  run->phase = RepairRun::Phase::kState;
  run->outstanding.clear();
  RepairRequest req;
  req.mutable_state()->set_revision(run->target.revision());
  SendRepairRequest(account, "s", std::move(req));
}

void Node::InstallRepair(Account* account) {
  RepairRun* run = account->repair.get();
  const LogEntry& entry = run->state.entry();
  const int64_t revision = run->target.revision();
  const uint64_t index = run->target.index();
  auto alarms = AlarmSet::Decode(run->state.alarms().SerializeAsString());
  if (entry.index() != index || entry.revision() != revision || !alarms.ok() ||
      account->kv.compact_revision() != run->compact_revision_at_start ||
      index <= account->head_index) {
    return AbandonRepair(account);
  }
  run->phase = RepairRun::Phase::kInstalling;
  run->outstanding.clear();
  auto changes = std::make_shared<std::map<std::string, std::optional<Register>>>();
  for (auto& [bucket, adopted] : run->overlay) {
    for (auto& [key, reg] : adopted) changes->emplace(key, std::move(reg));
  }
  run->overlay.clear();
  // Durable first: the registers, the compaction point, a log that starts at the source's
  // entry, the leases and the alarms, in one batch.
  const std::string& name = account->name();
  account->kv.StageInstall(revision, *changes, &staged_);
  const std::string log = codec::LogPrefix(name);
  staged_.DeleteRange(log, codec::PrefixEnd(log));
  staged_.Put(codec::LogKey(name, index), entry.SerializeAsString());
  const std::string leases = codec::LeasePrefix(name);
  staged_.DeleteRange(leases, codec::PrefixEnd(leases));
  for (const LeaseRecord& rec : run->leases) {
    staged_.Put(codec::LeaseKey(name, rec.id()), rec.SerializeAsString());
  }
  account->alarms = *std::move(alarms);
  StageAlarms(account);
  // From here a crash may bring the region back with the adopted state.
  if (options_.on_repaired) options_.on_repaired(name, revision);
  AfterDurable([this, name, changes, revision, index] {
    Account* a = FindAccount(name);
    if (a == nullptr || a->repair == nullptr) return;
    RepairRun* done = a->repair.get();
    a->kv.Install(revision, *changes);
    const int64_t now = ports_.clock->MonotonicMs();
    a->lessor.Clear();
    for (const LeaseRecord& rec : done->leases) a->lessor.Grant(rec.id(), rec.ttl_s(), now);
    a->kv.keyspace().ForEachLive(
        KeyRange::FromEtcd(std::string(1, '\0'), std::string(1, '\0')), revision,
        [&](const std::string& key, const KeyVersion& v) {
          if (v.lease != 0) a->lessor.Attach(v.lease, key);
          return true;
        });
    const LogEntry& first = done->state.entry();
    a->epoch = std::max(a->epoch, first.epoch());
    a->head_index = a->sealed_index = a->durable_index = index;
    a->first_index = index;
    a->tail.clear();
    a->tail.push_back(first);
    a->tail_bytes = static_cast<int64_t>(first.ByteSizeLong());
    a->durable_rev = a->sealed_rev = revision;
    a->watches->OnReset(revision);
    a->serving.clear();
    a->last_pull_ms = -1;
    a->repair.reset();
    ++peer_stats_.repairs_completed;
    SendAck(a->write_region, a);
  });
  MaybeWrite();
}

// --- The source ------------------------------------------------------------------------------

void Node::HandleRepair(uint64_t from, Account* account, const RepairRequest& req) {
  const int64_t now = ports_.clock->MonotonicMs();
  auto answer = [&](RepairReply reply) {
    reply.set_session(req.session());
    PeerMessage m;
    *m.mutable_repair_reply() = std::move(reply);
    Send(from, account->name(), std::move(m));
  };
  auto refuse = [&](const absl::Status& status) {
    RepairReply reply;
    reply.set_code(static_cast<int32_t>(status.code()));
    reply.set_message(std::string(status.message()));
    answer(std::move(reply));
  };
  auto& serving = account->serving;
  auto it = std::find_if(serving.begin(), serving.end(), [&](const auto& s) {
    return s->peer == from && s->session == req.session();
  });
  RepairServe* serve = it == serving.end() ? nullptr : it->get();
  if (req.has_open()) {
    if (serve != nullptr) return;  // its RepairOpened goes out (again) once it is durable
    const MerkleTree* tree = account->kv.merkle();
    if (tree == nullptr || req.open().depth() != static_cast<uint32_t>(tree->depth())) {
      return refuse(absl::InvalidArgumentError("geoetcd: repair: register tree depth differs"));
    }
    if (account->diverged || account->head_index == 0 || account->tail.empty() ||
        account->tail.back().index() != account->head_index) {
      return refuse(absl::FailedPreconditionError("geoetcd: repair: no state to repair from"));
    }
    // A region runs one repair at a time: its new session replaces its old one. So the
    // sessions served are bounded by the regions, and repairers never evict each other.
    serving.erase(std::remove_if(serving.begin(), serving.end(),
                                 [&](const auto& s) { return s->peer == from; }),
                  serving.end());
    auto s = std::make_unique<RepairServe>();
    s->peer = from;
    s->session = req.session();
    s->index = account->head_index;
    s->revision = account->kv.revision();
    s->compact_revision = account->kv.compact_revision();
    s->epoch = account->epoch;
    s->tree = *tree;
    for (int64_t id : account->lessor.Ids()) {
      LeaseRecord rec;
      rec.set_id(id);
      rec.set_ttl_s(account->lessor.GrantedTtlOf(id));
      s->leases.push_back(std::move(rec));
    }
    (void)s->alarms.ParseFromString(account->alarms.Encode());
    s->entry = account->tail.back();
    s->last_used_ms = now;
    const uint64_t index = s->index;
    serving.push_back(std::move(s));
    ++peer_stats_.repair_sessions_served;
    // Only durable state may be adopted: a write region that crashed before making its head
    // durable could come back without it.
    WhenDurable(account, index, [this, name = account->name(), from, session = req.session()] {
      Account* a = FindAccount(name);
      if (a == nullptr) return;
      for (auto& s : a->serving) {
        if (s->peer != from || s->session != session) continue;
        s->ready = true;
        PeerMessage m;
        RepairReply* reply = m.mutable_repair_reply();
        reply->set_session(session);
        RepairOpened* opened = reply->mutable_opened();
        opened->set_index(s->index);
        opened->set_revision(s->revision);
        opened->set_compact_revision(s->compact_revision);
        opened->set_merkle_root(s->tree->Root());
        opened->set_depth(static_cast<uint32_t>(s->tree->depth()));
        opened->set_epoch(s->epoch);
        Send(from, name, std::move(m));
      }
    });
    return;
  }
  if (serve == nullptr || !serve->ready) {
    return refuse(absl::FailedPreconditionError("geoetcd: repair: unknown session"));
  }
  if (account->kv.compact_revision() != serve->compact_revision) {
    serving.erase(it);
    return refuse(absl::FailedPreconditionError("geoetcd: repair: compacted since it began"));
  }
  serve->last_used_ms = now;
  const KvStore* kv = &account->kv;
  if (!serve->keys_built && req.has_bucket()) {
    serve->keys = IndexKeys(kv->keyspace(), serve->tree->depth(), serve->revision);
    serve->keys_built = true;
  }
  RepairKeyspace view = SourceView(serve, kv);
  MerkleRepairSource source(std::move(view), serve->revision);
  RepairReply reply;
  switch (req.body_case()) {
    case RepairRequest::kNodes: {
      auto r = source.OnNodesRequest(req.nodes());
      if (!r.ok()) return refuse(r.status());
      *reply.mutable_nodes() = *std::move(r);
      return answer(std::move(reply));
    }
    case RepairRequest::kBucket: {
      auto r = source.OnBucketRequest(req.bucket());
      if (!r.ok()) return refuse(r.status());
      *reply.mutable_bucket() = *std::move(r);
      return answer(std::move(reply));
    }
    case RepairRequest::kRegisters: {
      auto r = source.OnRegistersRequest(req.registers());
      if (!r.ok()) return refuse(r.status());
      *reply.mutable_registers() = *std::move(r);
      return answer(std::move(reply));
    }
    case RepairRequest::kState: {
      if (req.state().revision() != serve->revision) {
        return refuse(absl::FailedPreconditionError("geoetcd: repair: another revision"));
      }
      RepairState* state = reply.mutable_state();
      state->set_revision(serve->revision);
      auto lease = std::upper_bound(
          serve->leases.begin(), serve->leases.end(), req.state().after_lease(),
          [](int64_t id, const LeaseRecord& rec) { return id < rec.id(); });
      for (int n = 0; lease != serve->leases.end(); ++lease, ++n) {
        if (n == kRepairLeasesPerReplyMax) {
          state->set_more(true);
          break;
        }
        *state->add_leases() = *lease;
      }
      *state->mutable_alarms() = serve->alarms;
      *state->mutable_entry() = serve->entry;
      return answer(std::move(reply));
    }
    case RepairRequest::kOpen:
    case RepairRequest::BODY_NOT_SET:
      return refuse(absl::InvalidArgumentError("geoetcd: repair: empty request"));
  }
}

// --- The clock -------------------------------------------------------------------------------

void Node::RepairTick(Account* account, int64_t now) {
  auto& serving = account->serving;
  serving.erase(std::remove_if(serving.begin(), serving.end(),
                               [&](const auto& s) {
                                 return s->ready &&
                                        now - s->last_used_ms >= 2 * options_.forward_timeout_ms;
                               }),
                serving.end());
  RepairRun* run = account->repair.get();
  if (run == nullptr || run->phase == RepairRun::Phase::kInstalling) return;
  if (now - run->last_progress_ms >= options_.forward_timeout_ms) return AbandonRepair(account);
  if (now - run->last_sent_ms < options_.forward_retry_ms) return;
  run->last_sent_ms = now;
  for (const auto& [what, req] : run->outstanding) {
    PeerMessage m;
    *m.mutable_repair() = req;
    Send(run->source, account->name(), std::move(m));
  }
}

}  // namespace geoetcd
