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
};

struct Weighted {
  Pick pick;
  int weight;
};

// The mix leans on writes and conditional writes: they are where revisions, durability and
// atomicity can go wrong; reads are there to observe them.
constexpr Weighted kMix[] = {
    {Pick::kGet, 18}, {Pick::kRangeAll, 8},     {Pick::kRangeHistorical, 4},
    {Pick::kPut, 22}, {Pick::kDelete, 5},       {Pick::kDeleteRange, 2},
    {Pick::kCas, 20}, {Pick::kMultiKeyTxn, 12}, {Pick::kCompact, 1},
};

Pick Choose(Random& random) {
  int total = 0;
  for (const Weighted& w : kMix) total += w.weight;
  int x = static_cast<int>(random.Uniform(static_cast<uint64_t>(total)));
  for (const Weighted& w : kMix) {
    if (x < w.weight) return w.pick;
    x -= w.weight;
  }
  return Pick::kGet;
}

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
  if (reply.status.ok()) {
    op.outcome = OpOutcome::kOk;
    op.complete_us = world_->now_us();
    op.response = std::move(reply.response);
    op.compact_response = std::move(reply.compact);
  } else if (absl::IsDeadlineExceeded(reply.status) || absl::IsUnknown(reply.status)) {
    op.outcome = OpOutcome::kUnknown;  // the server could not tell whether it applied
  } else {
    op.outcome = OpOutcome::kFail;
    op.complete_us = world_->now_us();
    op.error = std::string(reply.status.message());
  }
  c.outstanding = -1;
  world_->Fold(DigestOutcome(op));
  if (world_->tracing()) world_->TraceNote("complete " + FormatOp(op));
  if (op.outcome == OpOutcome::kOk) Learn(c, op);
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
  ScheduleNext(c);
}

void KvWorkload::Learn(Client& c, const HistoryOp& op) {
  const int64_t rev = op.header_revision();
  c.revisions.push_back(rev);
  if (c.revisions.size() > config_.revisions_remembered_max) {
    c.revisions.erase(c.revisions.begin());
  }
  if (op.call.kind == OpKind::kCompact) return;
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

KvCall KvWorkload::Generate(Client& c) {
  KvCall call;
  call.kind = OpKind::kRange;
  RequestOp& op = call.request;
  Random& rnd = c.random;
  switch (Choose(rnd)) {
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
  }
  return call;
}

}  // namespace geoetcd::sim
