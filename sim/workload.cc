#include "sim/workload.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"

namespace geoetcd::sim {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

enum class Pick {
  kGet,
  kRangeAll,
  kRangeHistorical,
  kPut,
  kDelete,
  kDeleteRange,
  kCas,
  kMultiKeyTxn,
  kCompact,
  // Leases.
  kLeaseGrant,
  kPutWithLease,
  kLeaseKeepAlive,
  kLeaseTimeToLive,
  kLeaseRevoke,
  kLeaseUnknownId,  // a keep-alive, time-to-live or revoke of an ID nobody granted
};

bool IsLeasePick(Pick p) { return p >= Pick::kLeaseGrant; }

struct Weighted {
  Pick pick;
  int weight;
};

// The mix leans on writes and conditional writes: they are where revisions, durability and
// atomicity can go wrong; reads are there to observe them. Leases take a sixth: enough
// that keys come and go with them and some leases expire in every run.
constexpr Weighted kMix[] = {
    {Pick::kGet, 18},          {Pick::kRangeAll, 8},         {Pick::kRangeHistorical, 4},
    {Pick::kPut, 22},          {Pick::kDelete, 5},           {Pick::kDeleteRange, 2},
    {Pick::kCas, 20},          {Pick::kMultiKeyTxn, 12},     {Pick::kCompact, 4},
    {Pick::kLeaseGrant, 3},    {Pick::kPutWithLease, 5},     {Pick::kLeaseKeepAlive, 4},
    {Pick::kLeaseTimeToLive, 2}, {Pick::kLeaseRevoke, 1},    {Pick::kLeaseUnknownId, 1},
};

Pick Choose(Random& random, bool leases) {
  int total = 0;
  for (const Weighted& w : kMix) total += leases || !IsLeasePick(w.pick) ? w.weight : 0;
  int x = static_cast<int>(random.Uniform(static_cast<uint64_t>(total)));
  for (const Weighted& w : kMix) {
    if (!leases && IsLeasePick(w.pick)) continue;
    if (x < w.weight) return w.pick;
    x -= w.weight;
  }
  return Pick::kGet;
}

// IDs no client grants: clients pick (client + 1) << 32 | n, and the server's random IDs
// collide with these with negligible probability (the checkers look for a grant anyway).
constexpr int64_t kUnknownLeaseIdBase = int64_t{0x5eed} << 40;

RangeRequest WholeKeyspace() {
  RangeRequest r;
  r.set_key(KvWorkload::KeyPrefix());
  r.set_range_end(KvWorkload::KeyPrefixEnd());
  return r;
}

Compare ModEquals(const std::string& key, int64_t mod) {
  Compare c;
  c.set_key(key);
  c.set_target(Compare::MOD);
  c.set_result(Compare::EQUAL);
  c.set_mod_revision(mod);
  return c;
}

}  // namespace

KvWorkload::KvWorkload(SimWorld* world, History* history, KvEndpoint* endpoint,
                       WorkloadConfig config, Random random)
    : world_(world), history_(history), endpoint_(endpoint), config_(config) {
  CHECK(config_.clients >= 1 && config_.keys >= 1 && config_.txn_keys_max >= 2);
  for (int32_t i = 0; i <= config_.clients; ++i) {
    Client c;
    c.id = i;
    c.random = random.Fork();
    clients_.push_back(std::move(c));
  }
}

std::string KvWorkload::KeyName(int32_t i) { return absl::StrFormat("k/%03d", i); }

std::string KvWorkload::SessionKey(int32_t client, uint64_t i) {
  return absl::StrCat("k/s", client, ".", i);
}

void KvWorkload::Start() {
  for (int32_t i = 0; i < config_.clients; ++i) ScheduleNext(clients_[i]);
}

bool KvWorkload::done() const {
  if (issued_ < config_.ops) return false;
  for (int32_t i = 0; i < config_.clients; ++i) {
    if (clients_[i].outstanding >= 0) return false;
  }
  return true;
}

void KvWorkload::Audit() {
  Client& auditor = clients_.back();
  if (auditor.outstanding >= 0) return;
  KvCall call;
  call.kind = OpKind::kRange;
  *call.request.mutable_request_range() = WholeKeyspace();
  Issue(auditor, std::move(call));
}

void KvWorkload::ScheduleNext(Client& c) {
  if (c.id == auditor() || issued_ >= config_.ops) return;
  const int64_t think_us = c.random.Range(0, config_.think_us_max);
  world_->Schedule(think_us, EventType::kClientInvoke, kNoNode, [this, id = c.id] {
    if (issued_ >= config_.ops) return;
    Client& client = clients_[id];
    Issue(client, Generate(client));
  });
}

void KvWorkload::Issue(Client& c, KvCall call) {
  CHECK(c.outstanding < 0);
  const int64_t index = history_->Invoke(c.id, std::move(call), world_->now_us());
  history_->ops[index].call.history_index = index;
  c.outstanding = index;
  if (c.id != auditor()) ++issued_;
  if (world_->tracing()) world_->TraceNote("invoke " + FormatOp(history_->ops[index]));
  endpoint_->Call(c.id, history_->ops[index].call, [this, id = c.id, index](KvReply reply) {
    OnReply(id, index, std::move(reply));
  });
  world_->Schedule(config_.timeout_us, EventType::kClientTimeout, kNoNode,
                   [this, id = c.id, index] { OnTimeout(id, index); });
}

void KvWorkload::OnReply(int32_t client, int64_t index, KvReply reply) {
  Client& c = clients_[client];
  if (c.outstanding != index) return;  // it timed out already: the outcome stays unknown
  HistoryOp& op = history_->ops[index];
  // A put with a lease the server no longer has: the client stops using that lease.
  if (reply.status.message() == "etcdserver: requested lease not found" &&
      op.call.request.has_request_put()) {
    ForgetLease(c, op.call.request.request_put().lease());
  }
  if (reply.status.ok()) {
    op.outcome = OpOutcome::kOk;
    op.complete_us = world_->now_us();
    op.SetResponse(std::move(reply.response));
  } else if (absl::IsDeadlineExceeded(reply.status) || absl::IsUnknown(reply.status) ||
             reply.status.message() == "etcdserver: request timed out") {
    // A forwarded request whose answer did not come back may still have been applied.
    op.outcome = OpOutcome::kUnknown;  // the server could not tell whether it applied
  } else {
    op.outcome = OpOutcome::kFail;
    op.complete_us = world_->now_us();
    op.error = std::string(reply.status.message());
  }
  c.outstanding = -1;
  world_->Fold(DigestOutcome(op));
  if (world_->tracing()) world_->TraceNote("complete " + FormatOp(op));
  if (op.outcome == OpOutcome::kOk || op.is_lease()) Learn(c, op);
  ScheduleNext(c);
}

void KvWorkload::OnTimeout(int32_t client, int64_t index) {
  Client& c = clients_[client];
  if (c.outstanding != index) return;
  HistoryOp& op = history_->ops[index];
  op.outcome = OpOutcome::kUnknown;
  op.complete_us = kNeverUs;
  c.outstanding = -1;
  world_->Fold(DigestOutcome(op));
  if (world_->tracing()) world_->TraceNote("timeout " + FormatOp(op));
  if (op.is_lease()) LearnLease(c, op);
  ScheduleNext(c);
}

void KvWorkload::ForgetLease(Client& c, int64_t id) {
  c.leases.erase(std::remove_if(c.leases.begin(), c.leases.end(),
                                [id](const HeldLease& l) { return l.id == id; }),
                 c.leases.end());
}

void KvWorkload::LearnLease(Client& c, const HistoryOp& op) {
  const int64_t id = op.lease_id();
  switch (op.call.kind) {
    case OpKind::kLeaseGrant:
      // A grant that may have happened is used too: if it did not, the keep-alives say so.
      if (id != 0 && op.outcome != OpOutcome::kFail && c.leases.size() < config_.leases_held_max) {
        c.leases.push_back({id, !c.random.Chance(config_.lease_abandon_p)});
      }
      break;
    case OpKind::kLeaseRevoke:
      if (op.outcome != OpOutcome::kUnknown) ForgetLease(c, id);
      break;
    case OpKind::kLeaseKeepAlive:
      if (op.outcome == OpOutcome::kOk && op.lease_keep_alive_response.ttl() == 0) {
        ForgetLease(c, id);
      }
      break;
    case OpKind::kLeaseTimeToLive:
      if (op.outcome == OpOutcome::kOk && op.lease_time_to_live_response.ttl() < 0) {
        ForgetLease(c, id);
      }
      break;
    default:
      break;
  }
}

void KvWorkload::Learn(Client& c, const HistoryOp& op) {
  if (op.is_lease()) return LearnLease(c, op);
  const int64_t rev = op.header_revision();
  c.revisions.push_back(rev);
  if (c.revisions.size() > config_.revisions_remembered_max) {
    c.revisions.erase(c.revisions.begin());
  }
  if (op.call.kind == OpKind::kCompact) return;
  if (op.is_lease()) return LearnLease(c, op);
  auto learn_range = [&c](const RangeRequest& req, const etcdserverpb::RangeResponse& resp) {
    if (req.revision() != 0 || resp.more()) return;
    if (req.range_end().empty()) {
      c.mods[req.key()] = resp.kvs().empty() ? 0 : resp.kvs(0).mod_revision();
      return;
    }
    for (auto& [key, mod] : c.mods) {
      if (key >= req.key() && key < req.range_end()) mod = 0;
    }
    for (const auto& kv : resp.kvs()) c.mods[kv.key()] = kv.mod_revision();
  };
  const RequestOp& req = op.call.request;
  if (req.has_request_range()) {
    learn_range(req.request_range(), op.response.response_range());
  } else if (req.has_request_put()) {
    c.mods[req.request_put().key()] = rev;
  } else if (req.has_request_delete_range() && req.request_delete_range().range_end().empty()) {
    c.mods[req.request_delete_range().key()] = 0;
  } else if (req.has_request_txn()) {
    const auto& resp = op.response.response_txn();
    const auto& branch =
        resp.succeeded() ? req.request_txn().success() : req.request_txn().failure();
    for (int i = 0; i < branch.size() && i < resp.responses_size(); ++i) {
      if (branch.Get(i).has_request_put()) c.mods[branch.Get(i).request_put().key()] = rev;
      if (branch.Get(i).has_request_range()) {
        learn_range(branch.Get(i).request_range(), resp.responses(i).response_range());
      }
    }
  }
}

std::string KvWorkload::NextValue(Client& c) { return absl::StrCat("c", c.id, ".", ++c.seq); }

std::string KvWorkload::RandomKey(Client& c) {
  return KeyName(static_cast<int32_t>(c.random.Uniform(static_cast<uint64_t>(config_.keys))));
}

int64_t KvWorkload::ObservedRevision(Client& c) {
  return c.revisions.empty() ? 1 : *std::max_element(c.revisions.begin(), c.revisions.end());
}

bool KvWorkload::GenerateLease(Client& c, int pick, KvCall* call) {
  Random& rnd = c.random;
  // A held lease: for keep-alives one the client keeps alive, for the rest any.
  auto held = [&](bool kept_alive_only) -> int64_t {
    std::vector<int64_t> ids;
    for (const HeldLease& l : c.leases) {
      if (!kept_alive_only || l.kept_alive) ids.push_back(l.id);
    }
    return ids.empty() ? 0 : ids[rnd.Uniform(ids.size())];
  };
  switch (static_cast<Pick>(pick)) {
    case Pick::kLeaseGrant: {
      if (c.leases.size() >= config_.leases_held_max) return false;
      call->kind = OpKind::kLeaseGrant;
      // Mostly an ID of the client's own; sometimes the server picks one.
      if (!rnd.Chance(0.2)) call->lease_grant.set_id((int64_t{c.id + 1} << 32) | ++c.lease_seq);
      call->lease_grant.set_ttl(rnd.Range(1, config_.lease_ttl_max_s));
      return true;
    }
    case Pick::kPutWithLease: {
      const int64_t id = held(false);
      if (id == 0) return false;
      call->kind = OpKind::kPut;
      auto* put = call->request.mutable_request_put();
      // Half go to the shared keys, where other writes soon detach them; half to the
      // client's own session keys, which stay attached, so a revoke or expiry often deletes
      // several keys at once.
      put->set_key(rnd.Chance(0.5) ? RandomKey(c) : SessionKey(c.id, rnd.Uniform(3)));
      put->set_value(NextValue(c));
      put->set_lease(id);
      put->set_prev_kv(rnd.Chance(0.3));
      return true;
    }
    case Pick::kLeaseKeepAlive: {
      const int64_t id = held(true);
      if (id == 0) return false;
      call->kind = OpKind::kLeaseKeepAlive;
      call->lease_keep_alive.set_id(id);
      return true;
    }
    case Pick::kLeaseTimeToLive: {
      const int64_t id = held(false);
      if (id == 0) return false;
      call->kind = OpKind::kLeaseTimeToLive;
      call->lease_time_to_live.set_id(id);
      call->lease_time_to_live.set_keys(rnd.Chance(0.5));
      return true;
    }
    case Pick::kLeaseRevoke: {
      const int64_t id = held(false);
      if (id == 0) return false;
      call->kind = OpKind::kLeaseRevoke;
      call->lease_revoke.set_id(id);
      return true;
    }
    case Pick::kLeaseUnknownId: {
      const int64_t id = kUnknownLeaseIdBase | static_cast<int64_t>(rnd.Uniform(uint64_t{1} << 32));
      switch (rnd.Uniform(3)) {
        case 0:
          call->kind = OpKind::kLeaseKeepAlive;
          call->lease_keep_alive.set_id(id);
          break;
        case 1:
          call->kind = OpKind::kLeaseTimeToLive;
          call->lease_time_to_live.set_id(id);
          break;
        default:
          call->kind = OpKind::kLeaseRevoke;
          call->lease_revoke.set_id(id);
          break;
      }
      return true;
    }
    default:
      return false;
  }
}

KvCall KvWorkload::Generate(Client& c) {
  KvCall call;
  call.kind = OpKind::kRange;
  RequestOp& op = call.request;
  Random& rnd = c.random;
  Pick pick = Choose(rnd, config_.leases);
  if (IsLeasePick(pick)) {
    if (GenerateLease(c, static_cast<int>(pick), &call)) return call;
    // Nothing to do with a lease right now: grant one if there is room, else read.
    call = KvCall();
    if (GenerateLease(c, static_cast<int>(Pick::kLeaseGrant), &call)) return call;
    call = KvCall();
    call.kind = OpKind::kRange;
    pick = Pick::kGet;
  }
  switch (pick) {
    case Pick::kGet:
      op.mutable_request_range()->set_key(RandomKey(c));
      break;
    case Pick::kRangeAll:
      *op.mutable_request_range() = WholeKeyspace();
      if (rnd.Chance(0.25)) op.mutable_request_range()->set_limit(rnd.Range(1, config_.keys));
      break;
    case Pick::kRangeHistorical:
      *op.mutable_request_range() = WholeKeyspace();
      if (!c.revisions.empty()) {
        op.mutable_request_range()->set_revision(c.revisions[rnd.Uniform(c.revisions.size())]);
      }
      break;
    case Pick::kPut: {
      call.kind = OpKind::kPut;
      auto* put = op.mutable_request_put();
      put->set_key(RandomKey(c));
      put->set_value(NextValue(c));
      put->set_prev_kv(rnd.Chance(0.3));
      break;
    }
    case Pick::kDelete: {
      call.kind = OpKind::kDelete;
      auto* del = op.mutable_request_delete_range();
      del->set_key(RandomKey(c));
      del->set_prev_kv(rnd.Chance(0.5));
      break;
    }
    case Pick::kDeleteRange: {
      call.kind = OpKind::kDelete;
      const int32_t a = static_cast<int32_t>(rnd.Uniform(static_cast<uint64_t>(config_.keys)));
      const int32_t b = static_cast<int32_t>(rnd.Range(a + 1, config_.keys));
      auto* del = op.mutable_request_delete_range();
      del->set_key(KeyName(a));
      del->set_range_end(KeyName(b));
      del->set_prev_kv(true);  // lets the checkers attribute the deletions per key
      break;
    }
    case Pick::kCas: {
      // A compare-and-swap chain: swap only if the key is still as this client last saw it.
      call.kind = OpKind::kTxn;
      const std::string key = RandomKey(c);
      auto* txn = op.mutable_request_txn();
      *txn->add_compare() = ModEquals(key, c.mods.count(key) ? c.mods[key] : 0);
      auto* put = txn->add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(NextValue(c));
      put->set_prev_kv(rnd.Chance(0.3));
      txn->add_failure()->mutable_request_range()->set_key(key);
      break;
    }
    case Pick::kMultiKeyTxn: {
      call.kind = OpKind::kTxn;
      auto* txn = op.mutable_request_txn();
      const std::string guard = RandomKey(c);
      if (rnd.Chance(0.5)) {
        *txn->add_compare() = ModEquals(guard, c.mods.count(guard) ? c.mods[guard] : 0);
      } else {
        Compare* exists = txn->add_compare();
        exists->set_key(guard);
        exists->set_target(Compare::VERSION);
        exists->set_result(Compare::GREATER);
        exists->set_version(0);
      }
      const int32_t writes =
          std::min<int32_t>(config_.keys, static_cast<int32_t>(rnd.Range(2, config_.txn_keys_max)));
      std::vector<int32_t> order(config_.keys);
      for (int32_t i = 0; i < config_.keys; ++i) order[i] = i;
      for (int32_t i = 0; i < writes && i < config_.keys; ++i) {  // partial Fisher-Yates
        std::swap(order[i], order[i + rnd.Uniform(static_cast<uint64_t>(config_.keys - i))]);
      }
      for (int32_t i = 0; i < writes; ++i) {
        auto* put = txn->add_success()->mutable_request_put();
        put->set_key(KeyName(order[i]));
        put->set_value(NextValue(c));
      }
      if (writes < config_.keys && rnd.Chance(0.3)) {
        auto* del = txn->add_success()->mutable_request_delete_range();
        del->set_key(KeyName(order[writes]));
        del->set_prev_kv(true);
      }
      *txn->add_failure()->mutable_request_range() = WholeKeyspace();
      break;
    }
    case Pick::kCompact:
      call.kind = OpKind::kCompact;
      call.compact.set_revision(std::max<int64_t>(1, ObservedRevision(c) - rnd.Range(0, 20)));
      break;
    default:
      CHECK(false);  // lease picks are handled above
  }
  return call;
}

}  // namespace geoetcd::sim
