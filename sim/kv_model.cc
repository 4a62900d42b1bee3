#include "sim/kv_model.h"

#include <algorithm>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "xxhash.h"

namespace geoetcd::sim {

using etcdserverpb::Compare;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

// etcd's (key, range_end): empty end is the key alone, "\0" is every key >= key.
bool PastEnd(const std::string& key, const std::string& begin, const std::string& end) {
  if (end.empty()) return key != begin;
  if (end.size() == 1 && end[0] == '\0') return false;
  return key >= end;
}

void ToKv(const std::string& key, const KvModel::Version& v, mvccpb::KeyValue* out) {
  out->set_key(key);
  out->set_value(v.value);
  out->set_create_revision(v.create_revision);
  out->set_mod_revision(v.mod_revision);
  out->set_version(v.version);
  out->set_lease(v.lease);
}

int Sign(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

bool SupportsRange(const RangeRequest& r) {
  return r.sort_order() == RangeRequest::NONE && r.sort_target() == RangeRequest::KEY &&
         !r.count_only() && !r.keys_only() && r.min_mod_revision() == 0 &&
         r.max_mod_revision() == 0 && r.min_create_revision() == 0 && r.max_create_revision() == 0;
}

bool SameKv(const mvccpb::KeyValue& a, const mvccpb::KeyValue& b) {
  return a.key() == b.key() && a.value() == b.value() &&
         a.create_revision() == b.create_revision() && a.mod_revision() == b.mod_revision() &&
         a.version() == b.version() && a.lease() == b.lease();
}

std::string KvText(const mvccpb::KeyValue& kv) {
  return absl::StrCat(kv.key(), "=", kv.value(), "@", kv.mod_revision(), "(c", kv.create_revision(),
                      ",v", kv.version(), ")");
}

template <typename Kvs>
bool SameKvs(const Kvs& want, const Kvs& got, const char* what, std::string* diff) {
  if (want.size() != got.size()) {
    *diff = absl::StrCat(what, ": want ", want.size(), " kvs, got ", got.size());
    for (const auto& kv : want) absl::StrAppend(diff, "; want ", KvText(kv));
    for (const auto& kv : got) absl::StrAppend(diff, "; got ", KvText(kv));
    return false;
  }
  for (int i = 0; i < want.size(); ++i) {
    if (!SameKv(want.Get(i), got.Get(i))) {
      *diff =
          absl::StrCat(what, "[", i, "]: want ", KvText(want.Get(i)), ", got ", KvText(got.Get(i)));
      return false;
    }
  }
  return true;
}

}  // namespace

bool KvModel::Supports(const RequestOp& op) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange:
      return SupportsRange(op.request_range());
    case RequestOp::kRequestPut:
      return !op.request_put().ignore_value() && !op.request_put().ignore_lease();
    case RequestOp::kRequestDeleteRange:
      return true;
    case RequestOp::kRequestTxn:
      for (const auto* ops : {&op.request_txn().success(), &op.request_txn().failure()}) {
        for (const auto& o : *ops) {
          if (o.has_request_txn() || !Supports(o)) return false;
        }
      }
      return true;
    default:
      return false;
  }
}

const KvModel::Version* KvModel::Get(const std::string& key, int64_t rev) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return nullptr;
  const auto& versions = it->second;
  // The newest version at or before rev.
  auto v = std::upper_bound(versions.begin(), versions.end(), rev,
                            [](int64_t r, const Version& x) { return r < x.mod_revision; });
  if (v == versions.begin()) return nullptr;
  --v;
  return v->version == 0 ? nullptr : &*v;
}

RangeResponse KvModel::RangeAt(const RangeRequest& r, int64_t rev) const {
  RangeResponse resp;
  int64_t count = 0;
  for (auto it = keys_.lower_bound(r.key()); it != keys_.end(); ++it) {
    if (PastEnd(it->first, r.key(), r.range_end())) break;
    const Version* v = Get(it->first, rev);
    if (v == nullptr) continue;
    ++count;
    if (r.limit() > 0 && resp.kvs_size() >= r.limit()) {
      resp.set_more(true);
      continue;
    }
    ToKv(it->first, *v, resp.add_kvs());
  }
  resp.set_count(count);
  return resp;
}

bool KvModel::CompareHolds(const Compare& c) const {
  static const Version kAbsent;
  std::vector<const Version*> seen;
  for (auto it = keys_.lower_bound(c.key()); it != keys_.end(); ++it) {
    if (PastEnd(it->first, c.key(), c.range_end())) break;
    if (const Version* v = Get(it->first, revision_)) seen.push_back(v);
  }
  if (seen.empty()) {
    if (c.target() == Compare::VALUE) return false;  // etcd: a missing key has no value
    seen.push_back(&kAbsent);
  }
  for (const Version* v : seen) {
    int cmp = 0;
    switch (c.target()) {
      case Compare::VERSION:
        cmp = Sign(v->version, c.version());
        break;
      case Compare::CREATE:
        cmp = Sign(v->create_revision, c.create_revision());
        break;
      case Compare::MOD:
        cmp = Sign(v->mod_revision, c.mod_revision());
        break;
      case Compare::VALUE: {
        const int raw = v->value.compare(c.value());
        cmp = raw < 0 ? -1 : (raw > 0 ? 1 : 0);
        break;
      }
      case Compare::LEASE:
        cmp = Sign(v->lease, c.lease());
        break;
      default:
        break;
    }
    bool holds = true;
    switch (c.result()) {
      case Compare::EQUAL:
        holds = cmp == 0;
        break;
      case Compare::NOT_EQUAL:
        holds = cmp != 0;
        break;
      case Compare::GREATER:
        holds = cmp > 0;
        break;
      case Compare::LESS:
        holds = cmp < 0;
        break;
      default:
        break;
    }
    if (!holds) return false;
  }
  return true;
}

void KvModel::Write(const std::string& key, Version v) {
  log_.emplace_back(v.mod_revision, key);
  keys_[key].push_back(std::move(v));
}

void KvModel::ApplyOp(const RequestOp& op, int64_t rev, bool* changed, ResponseOp* out) {
  // Inside a commit, reads see the commit's own earlier writes (etcd's txn read view).
  const int64_t view = *changed ? rev : revision_;
  switch (op.request_case()) {
    case RequestOp::kRequestRange: {
      const RangeRequest& r = op.request_range();
      *out->mutable_response_range() = RangeAt(r, r.revision() > 0 ? r.revision() : view);
      break;
    }
    case RequestOp::kRequestPut: {
      const auto& r = op.request_put();
      auto* resp = out->mutable_response_put();
      const Version* prev = Get(r.key(), view);
      if (r.prev_kv() && prev != nullptr) ToKv(r.key(), *prev, resp->mutable_prev_kv());
      Version v;
      v.mod_revision = rev;
      v.create_revision = prev != nullptr ? prev->create_revision : rev;
      v.version = prev != nullptr ? prev->version + 1 : 1;
      v.value = r.value();
      v.lease = r.lease();
      Write(r.key(), std::move(v));
      *changed = true;
      break;
    }
    case RequestOp::kRequestDeleteRange: {
      const auto& r = op.request_delete_range();
      auto* resp = out->mutable_response_delete_range();
      std::vector<std::string> victims;
      for (auto it = keys_.lower_bound(r.key()); it != keys_.end(); ++it) {
        if (PastEnd(it->first, r.key(), r.range_end())) break;
        const Version* v = Get(it->first, view);
        if (v == nullptr) continue;
        if (r.prev_kv()) ToKv(it->first, *v, resp->add_prev_kvs());
        victims.push_back(it->first);
      }
      for (const std::string& key : victims) {
        Version tombstone;
        tombstone.mod_revision = rev;
        Write(key, std::move(tombstone));
      }
      resp->set_deleted(static_cast<int64_t>(victims.size()));
      if (!victims.empty()) *changed = true;
      break;
    }
    default:
      CHECK(false);  // nested txns are not modelled (Supports() said so)
  }
}

ResponseOp KvModel::Apply(const RequestOp& op, bool* changed) {
  CHECK(Supports(op));
  const int64_t rev = revision_ + 1;
  *changed = false;
  ResponseOp out;
  if (op.has_request_txn()) {
    const auto& t = op.request_txn();
    const bool succeeded = std::all_of(t.compare().begin(), t.compare().end(),
                                       [this](const Compare& c) { return CompareHolds(c); });
    auto* resp = out.mutable_response_txn();
    resp->set_succeeded(succeeded);
    for (const auto& o : succeeded ? t.success() : t.failure()) {
      ApplyOp(o, rev, changed, resp->add_responses());
    }
  } else {
    ApplyOp(op, rev, changed, &out);
  }
  if (*changed) revision_ = rev;
  switch (out.response_case()) {
    case ResponseOp::kResponseRange:
      out.mutable_response_range()->mutable_header()->set_revision(revision_);
      break;
    case ResponseOp::kResponsePut:
      out.mutable_response_put()->mutable_header()->set_revision(revision_);
      break;
    case ResponseOp::kResponseDeleteRange:
      out.mutable_response_delete_range()->mutable_header()->set_revision(revision_);
      break;
    case ResponseOp::kResponseTxn:
      out.mutable_response_txn()->mutable_header()->set_revision(revision_);
      break;
    default:
      break;
  }
  return out;
}

void KvModel::ApplyLeaseRevoke(int64_t lease, bool* changed) {
  *changed = false;
  const int64_t rev = revision_ + 1;
  std::vector<std::string> victims;  // keys_ is ordered: etcd deletes them in key order
  for (const auto& [key, versions] : keys_) {
    const Version* v = Get(key, revision_);
    if (v != nullptr && v->lease == lease) victims.push_back(key);
  }
  if (victims.empty()) return;
  for (const std::string& key : victims) {
    Version tombstone;
    tombstone.mod_revision = rev;
    Write(key, std::move(tombstone));
  }
  revoked_at_[lease] = rev;
  revision_ = rev;
  *changed = true;
}

bool KvModel::UsesRevokedLease(const RequestOp& op) const {
  return op.has_request_put() && op.request_put().lease() != 0 &&
         revoked_at_.count(op.request_put().lease()) != 0;
}

int64_t KvModel::KeysOfLease(int64_t lease) const {
  int64_t n = 0;
  for (const auto& [key, versions] : keys_) {
    const Version* v = Get(key, revision_);
    n += v != nullptr && v->lease == lease ? 1 : 0;
  }
  return n;
}

void KvModel::ForEachVersionOfHead(
    const std::function<void(const std::string& key, const Version& v)>& visit) const {
  size_t first = log_.size();
  while (first > 0 && log_[first - 1].first == revision_) --first;
  for (size_t i = first; i < log_.size(); ++i) {
    const std::string& key = log_[i].second;
    visit(key, keys_.at(key).back());
  }
}

void KvModel::TruncateTo(int64_t rev) {
  CHECK(rev >= 1);
  while (!log_.empty() && log_.back().first > rev) {
    auto it = keys_.find(log_.back().second);
    CHECK(it != keys_.end() && it->second.back().mod_revision == log_.back().first);
    it->second.pop_back();
    if (it->second.empty()) keys_.erase(it);
    log_.pop_back();
  }
  for (auto it = revoked_at_.begin(); it != revoked_at_.end();) {
    it = it->second > rev ? revoked_at_.erase(it) : std::next(it);
  }
  revision_ = std::min(revision_, rev);
}

uint64_t KvModel::StateHash() const {
  uint64_t h = XXH64(&revision_, sizeof(revision_), 0x6d6f'6465'6cULL);
  for (const auto& [key, versions] : keys_) {
    const Version* v = Get(key, revision_);
    if (v == nullptr) continue;
    const int64_t ints[4] = {v->mod_revision, v->create_revision, v->version, v->lease};
    h = XXH64(key.data(), key.size(), h);
    h = XXH64(ints, sizeof(ints), h);
    h = XXH64(v->value.data(), v->value.size(), h);
  }
  for (const auto& [lease, at] : revoked_at_) h = XXH64(&lease, sizeof(lease), h);
  return h;
}

bool SameResponse(const ResponseOp& want, const ResponseOp& got, std::string* diff) {
  if (want.response_case() != got.response_case()) {
    *diff = "different response types";
    return false;
  }
  switch (want.response_case()) {
    case ResponseOp::kResponseRange: {
      const auto& w = want.response_range();
      const auto& g = got.response_range();
      if (w.count() != g.count() || w.more() != g.more()) {
        *diff = absl::StrCat("range: want count=", w.count(), " more=", w.more(),
                             ", got count=", g.count(), " more=", g.more());
        return false;
      }
      return SameKvs(w.kvs(), g.kvs(), "range", diff);
    }
    case ResponseOp::kResponsePut: {
      const auto& w = want.response_put();
      const auto& g = got.response_put();
      if (w.has_prev_kv() != g.has_prev_kv() ||
          (w.has_prev_kv() && !SameKv(w.prev_kv(), g.prev_kv()))) {
        *diff = absl::StrCat("put prev_kv: want ", w.has_prev_kv() ? KvText(w.prev_kv()) : "none",
                             ", got ", g.has_prev_kv() ? KvText(g.prev_kv()) : "none");
        return false;
      }
      return true;
    }
    case ResponseOp::kResponseDeleteRange: {
      const auto& w = want.response_delete_range();
      const auto& g = got.response_delete_range();
      if (w.deleted() != g.deleted()) {
        *diff = absl::StrCat("delete: want deleted=", w.deleted(), ", got ", g.deleted());
        return false;
      }
      return SameKvs(w.prev_kvs(), g.prev_kvs(), "delete prev_kvs", diff);
    }
    case ResponseOp::kResponseTxn: {
      const auto& w = want.response_txn();
      const auto& g = got.response_txn();
      if (w.succeeded() != g.succeeded() || w.responses_size() != g.responses_size()) {
        *diff = absl::StrCat("txn: want succeeded=", w.succeeded(), " (", w.responses_size(),
                             " responses), got succeeded=", g.succeeded(), " (", g.responses_size(),
                             ")");
        return false;
      }
      for (int i = 0; i < w.responses_size(); ++i) {
        std::string inner;
        if (!SameResponse(w.responses(i), g.responses(i), &inner)) {
          *diff = absl::StrCat("txn response ", i, ": ", inner);
          return false;
        }
      }
      return true;
    }
    default:
      return true;
  }
}

bool ResponseChangedState(const ResponseOp& response) {
  switch (response.response_case()) {
    case ResponseOp::kResponsePut:
      return true;
    case ResponseOp::kResponseDeleteRange:
      return response.response_delete_range().deleted() > 0;
    case ResponseOp::kResponseTxn:
      return std::any_of(response.response_txn().responses().begin(),
                         response.response_txn().responses().end(),
                         [](const ResponseOp& r) { return ResponseChangedState(r); });
    default:
      return false;
  }
}

}  // namespace geoetcd::sim
