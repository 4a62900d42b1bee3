#include "core/kv_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "geoetcd/storage.pb.h"
#include "xxhash.h"

namespace geoetcd {

using etcdserverpb::Compare;
using etcdserverpb::DeleteRangeRequest;
using etcdserverpb::DeleteRangeResponse;
using etcdserverpb::PutRequest;
using etcdserverpb::PutResponse;
using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;
using etcdserverpb::TxnResponse;

namespace {

void ToKeyValue(const std::string& key, const KeyVersion& v, mvccpb::KeyValue* out) {
  out->set_key(key);
  out->set_create_revision(v.create_revision);
  out->set_mod_revision(v.mod_revision);
  out->set_version(v.version);
  out->set_value(v.value.data(), v.value.size());
  out->set_lease(v.lease);
}

// etcd's interval for duplicate-key checks (adt string-affine intervals): a DeleteRange
// without range_end is the point [key, key+"\0"); with one it is [key, range_end), taken
// literally (so range_end "\0" is an empty interval here, as in etcd).
struct Interval {
  std::string begin, end;
  bool ContainsPoint(const std::string& k) const { return begin <= k && k < end; }
};

Interval DeleteInterval(const DeleteRangeRequest& d) {
  if (d.range_end().empty()) return {d.key(), d.key() + std::string(1, '\0')};
  return {d.key(), d.range_end()};
}

bool Intersects(const std::vector<Interval>& dels, const std::string& k) {
  for (const auto& iv : dels) {
    if (iv.ContainsPoint(k)) return true;
  }
  return false;
}

// Mirrors etcd's checkIntervals: puts of one level (and of nested txns) must not repeat a
// key or fall inside a DeleteRange of the same or an enclosing level.
absl::Status CheckIntervals(const google::protobuf::RepeatedPtrField<RequestOp>& reqs,
                            std::set<std::string>* puts_out, std::vector<Interval>* dels_out) {
  std::vector<Interval> dels;
  for (const auto& op : reqs) {
    if (op.has_request_delete_range()) dels.push_back(DeleteInterval(op.request_delete_range()));
  }
  std::set<std::string> puts;
  for (const auto& op : reqs) {
    if (!op.has_request_txn()) continue;
    std::set<std::string> puts_then, puts_else;
    std::vector<Interval> dels_then, dels_else;
    if (auto s = CheckIntervals(op.request_txn().success(), &puts_then, &dels_then); !s.ok()) {
      return s;
    }
    if (auto s = CheckIntervals(op.request_txn().failure(), &puts_else, &dels_else); !s.ok()) {
      return s;
    }
    for (const auto& k : puts_then) {
      if (puts.count(k) || Intersects(dels, k)) return errors::DuplicateKey();
      puts.insert(k);
    }
    for (const auto& k : puts_else) {
      // then/else are exclusive, so a key put by both branches of one txn is fine.
      if (puts.count(k) && !puts_then.count(k)) return errors::DuplicateKey();
      if (Intersects(dels, k)) return errors::DuplicateKey();
      puts.insert(k);
    }
    dels.insert(dels.end(), dels_then.begin(), dels_then.end());
    dels.insert(dels.end(), dels_else.begin(), dels_else.end());
  }
  for (const auto& op : reqs) {
    if (!op.has_request_put()) continue;
    const std::string& k = op.request_put().key();
    if (puts.count(k) || Intersects(dels, k)) return errors::DuplicateKey();
    puts.insert(k);
  }
  *puts_out = std::move(puts);
  *dels_out = std::move(dels);
  return absl::OkStatus();
}

absl::Status CheckRequestOp(const RequestOp& op, int64_t txn_ops_max) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange:
      return CheckRangeRequest(op.request_range());
    case RequestOp::kRequestPut:
      return CheckPutRequest(op.request_put());
    case RequestOp::kRequestDeleteRange:
      return CheckDeleteRequest(op.request_delete_range());
    case RequestOp::kRequestTxn:
      return CheckTxnRequest(op.request_txn(), txn_ops_max);
    default:
      return errors::KeyNotFound();  // etcd: an empty RequestOp
  }
}

absl::Status CheckTxnShape(const TxnRequest& r, int64_t txn_ops_max) {
  const int64_t opc = std::max<int64_t>(
      {r.compare_size(), r.success_size(), r.failure_size()});
  if (opc > txn_ops_max) return errors::TooManyOps();
  for (const auto& c : r.compare()) {
    if (c.key().empty()) return errors::EmptyKey();
  }
  for (const auto* ops : {&r.success(), &r.failure()}) {
    for (const auto& op : *ops) {
      GEOETCD_RETURN_IF_ERROR(CheckRequestOp(op, txn_ops_max - opc));
    }
  }
  return absl::OkStatus();
}

int CompareInt(int64_t a, int64_t b) { return a < b ? -1 : (a > b ? 1 : 0); }

bool CompareKeyValue(const Compare& c, const KeyVersion* kv) {
  static const KeyVersion kZero;
  const KeyVersion& v = kv ? *kv : kZero;
  int result = 0;
  switch (c.target()) {
    case Compare::VALUE: {
      const std::string& want = c.target_union_case() == Compare::kValue ? c.value() : "";
      const int cmp = v.value.compare(want);
      result = cmp < 0 ? -1 : (cmp > 0 ? 1 : 0);
      break;
    }
    case Compare::CREATE:
      result = CompareInt(v.create_revision,
                          c.target_union_case() == Compare::kCreateRevision ? c.create_revision()
                                                                           : 0);
      break;
    case Compare::MOD:
      result = CompareInt(v.mod_revision,
                          c.target_union_case() == Compare::kModRevision ? c.mod_revision() : 0);
      break;
    case Compare::VERSION:
      result = CompareInt(v.version, c.target_union_case() == Compare::kVersion ? c.version() : 0);
      break;
    case Compare::LEASE:
      result = CompareInt(v.lease, c.target_union_case() == Compare::kLease ? c.lease() : 0);
      break;
    default:
      break;
  }
  switch (c.result()) {
    case Compare::EQUAL:
      return result == 0;
    case Compare::NOT_EQUAL:
      return result != 0;
    case Compare::GREATER:
      return result > 0;
    case Compare::LESS:
      return result < 0;
    default:
      return true;  // etcd treats an unknown result as satisfied
  }
}

}  // namespace

absl::Status CheckRangeRequest(const RangeRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  if (!RangeRequest::SortOrder_IsValid(r.sort_order()) ||
      !RangeRequest::SortTarget_IsValid(r.sort_target())) {
    return errors::InvalidSortOption();
  }
  return absl::OkStatus();
}

absl::Status CheckPutRequest(const PutRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  if (r.ignore_value() && !r.value().empty()) return errors::ValueProvided();
  if (r.ignore_lease() && r.lease() != 0) return errors::LeaseProvided();
  return absl::OkStatus();
}

absl::Status CheckDeleteRequest(const DeleteRangeRequest& r) {
  if (r.key().empty()) return errors::EmptyKey();
  return absl::OkStatus();
}

absl::Status CheckTxnRequest(const TxnRequest& r, int64_t txn_ops_max) {
  GEOETCD_RETURN_IF_ERROR(CheckTxnShape(r, txn_ops_max));
  std::set<std::string> puts;
  std::vector<Interval> dels;
  GEOETCD_RETURN_IF_ERROR(CheckIntervals(r.success(), &puts, &dels));
  return CheckIntervals(r.failure(), &puts, &dels);
}

// Stages one commit: opens the keyspace commit lazily (a request that changes nothing
// leaves the revision alone) and records each written version for storage.
class KvStore::Commit {
 public:
  Commit(KvStore* store, const CommitStamp& stamp, WriteBatch* batch)
      : store_(store), stamp_(stamp), batch_(batch) {}

  // The revision reads inside this commit see: the pending one once something changed.
  int64_t read_revision() const { return rev_ != 0 ? rev_ : store_->revision(); }
  bool changed() const { return rev_ != 0; }

  const KeyVersion& Put(const std::string& key, std::string value, int64_t lease) {
    Open();
    Keyspace& ks = store_->keyspace_;
    const KeyVersion* prev = ks.Get(key, rev_);
    if (prev != nullptr && prev->lease != 0 && store_->leases_) {
      store_->leases_->Detach(prev->lease, key);
    }
    mvccpb::Event* event = capture_ ? AddEvent(mvccpb::Event::PUT, key, prev) : nullptr;
    if (stamp_.log != nullptr) {
      KvOp* op = stamp_.log->add_ops();
      op->set_key(key);
      op->set_value(value);
      op->set_lease(lease);
    }
    const KeyVersion& v = ks.Put(key, std::move(value), lease);
    if (lease != 0 && store_->leases_) store_->leases_->Attach(lease, key);
    Stage(key, v);
    if (event != nullptr) ToKeyValue(key, v, event->mutable_kv());
    return v;
  }

  void Delete(const std::string& key, const KeyVersion& prev) {
    Open();
    if (prev.lease != 0 && store_->leases_) store_->leases_->Detach(prev.lease, key);
    CHECK(store_->keyspace_.Delete(key));
    if (stamp_.log != nullptr) {
      KvOp* op = stamp_.log->add_ops();
      op->set_key(key);
      op->set_tombstone(true);
    }
    KeyVersion tombstone;
    tombstone.mod_revision = rev_;
    tombstone.sub = ops_;
    tombstone.hlc = stamp_.hlc;
    tombstone.origin = stamp_.origin;
    if (capture_) {
      mvccpb::Event* event = AddEvent(mvccpb::Event::DELETE, key, &prev);
      event->mutable_kv()->set_key(key);
      event->mutable_kv()->set_mod_revision(rev_);
    }
    Stage(key, tombstone);
  }

  // Closes the commit; returns the store's revision afterwards.
  int64_t Finish() {
    if (stamp_.log != nullptr) stamp_.log->set_revision(rev_ != 0 ? rev_ : store_->revision());
    if (rev_ == 0) return store_->revision();
    const int32_t ops = store_->keyspace_.EndCommit();
    CHECK(ops == ops_);
    CommitMeta meta;
    meta.set_epoch(stamp_.epoch);
    meta.set_revision(rev_);
    meta.set_hlc(stamp_.hlc);
    meta.set_ops(static_cast<uint32_t>(ops));
    batch_->Put(codec::CommitKey(store_->account_, rev_), meta.SerializeAsString());
    if (capture_) store_->observer_->OnCommit(rev_, std::move(events_));
    return rev_;
  }

 private:
  void Open() {
    if (rev_ != 0) return;
    rev_ = store_->revision() + 1;
    store_->keyspace_.BeginCommit(rev_, stamp_.hlc, stamp_.origin);
    capture_ = store_->observer_ != nullptr && store_->observer_->WantsEvents();
  }
  // A create has no prev_kv (etcd looks it up only for non-create events).
  mvccpb::Event* AddEvent(mvccpb::Event::EventType type, const std::string& key,
                          const KeyVersion* prev) {
    mvccpb::Event& event = events_.emplace_back();
    event.set_type(type);
    if (prev != nullptr) ToKeyValue(key, *prev, event.mutable_prev_kv());
    return &event;
  }
  void Stage(const std::string& key, const KeyVersion& v) {
    const VersionId id{v.mod_revision, ops_++};
    CHECK(id.sub == v.sub);
    batch_->Put(codec::VersionKey(store_->account_, id),
                codec::ToRecord(key, v).SerializeAsString());
    if (store_->merkle_) store_->merkle_->Set(key, RegisterHash(RegisterOf(key, v)));
  }

  KvStore* store_;
  CommitStamp stamp_;
  WriteBatch* batch_;
  int64_t rev_ = 0;
  int32_t ops_ = 0;
  bool capture_ = false;  // the observer wants this commit's events
  std::vector<mvccpb::Event> events_;
};

KvStore::KvStore(std::string account, KvLimits limits, LeaseIndex* leases)
    : account_(std::move(account)), limits_(limits), leases_(leases) {}

absl::Status KvStore::CheckRangeRevision(int64_t revision) const {
  if (revision > keyspace_.revision()) return errors::FutureRev();
  if (revision > 0 && revision < keyspace_.compact_revision()) return errors::Compacted();
  return absl::OkStatus();
}

absl::StatusOr<RangeResponse> KvStore::Range(const RangeRequest& r, int64_t current_rev) const {
  CHECK(current_rev <= keyspace_.revision());
  if (r.revision() > current_rev) return errors::FutureRev();
  const int64_t read_rev = r.revision() > 0 ? r.revision() : current_rev;
  if (read_rev < keyspace_.compact_revision()) return errors::Compacted();
  RangeResponse resp = RangeAt(r, read_rev);
  resp.mutable_header()->set_revision(current_rev);
  return resp;
}

RangeResponse KvStore::RangeAt(const RangeRequest& r, int64_t read_rev) const {
  RangeResponse resp;
  const KeyRange range = KeyRange::FromEtcd(r.key(), r.range_end());
  const bool filtered = r.min_mod_revision() != 0 || r.max_mod_revision() != 0 ||
                        r.min_create_revision() != 0 || r.max_create_revision() != 0;
  const bool fetch_all = r.sort_order() != RangeRequest::NONE || filtered;
  // Like etcd, fetch limit+1 rows to learn `more` unless sorting or filtering needs all.
  const int64_t fetch_max = (r.limit() > 0 && !fetch_all) ? r.limit() + 1 : 0;

  struct Row {
    const std::string* key;
    const KeyVersion* kv;
  };
  std::vector<Row> rows;
  int64_t count = 0;
  keyspace_.ForEachLive(range, read_rev, [&](const std::string& key, const KeyVersion& kv) {
    ++count;
    if (!r.count_only() && (fetch_max == 0 || static_cast<int64_t>(rows.size()) < fetch_max)) {
      rows.push_back({&key, &kv});
    }
    return true;
  });

  auto drop_if = [&rows](auto pred) {
    rows.erase(std::remove_if(rows.begin(), rows.end(), pred), rows.end());
  };
  if (r.max_mod_revision() != 0) {
    drop_if([&](const Row& x) { return x.kv->mod_revision > r.max_mod_revision(); });
  }
  if (r.min_mod_revision() != 0) {
    drop_if([&](const Row& x) { return x.kv->mod_revision < r.min_mod_revision(); });
  }
  if (r.max_create_revision() != 0) {
    drop_if([&](const Row& x) { return x.kv->create_revision > r.max_create_revision(); });
  }
  if (r.min_create_revision() != 0) {
    drop_if([&](const Row& x) { return x.kv->create_revision < r.min_create_revision(); });
  }

  auto order = r.sort_order();
  if (r.sort_target() != RangeRequest::KEY && order == RangeRequest::NONE) {
    order = RangeRequest::ASCEND;
  }
  if (order != RangeRequest::NONE) {
    std::function<bool(const Row&, const Row&)> less;
    switch (r.sort_target()) {
      case RangeRequest::VERSION:
        less = [](const Row& a, const Row& b) { return a.kv->version < b.kv->version; };
        break;
      case RangeRequest::CREATE:
        less = [](const Row& a, const Row& b) {
          return a.kv->create_revision < b.kv->create_revision;
        };
        break;
      case RangeRequest::MOD:
        less = [](const Row& a, const Row& b) { return a.kv->mod_revision < b.kv->mod_revision; };
        break;
      case RangeRequest::VALUE:
        less = [](const Row& a, const Row& b) { return a.kv->value < b.kv->value; };
        break;
      default:
        less = [](const Row& a, const Row& b) { return *a.key < *b.key; };
        break;
    }
    if (order == RangeRequest::DESCEND) {
      std::stable_sort(rows.begin(), rows.end(),
                       [&less](const Row& a, const Row& b) { return less(b, a); });
    } else {
      std::stable_sort(rows.begin(), rows.end(), less);
    }
  }
  if (r.limit() > 0 && static_cast<int64_t>(rows.size()) > r.limit()) {
    rows.resize(static_cast<size_t>(r.limit()));
    resp.set_more(true);
  }
  resp.set_count(count);
  for (const Row& row : rows) {
    mvccpb::KeyValue* kv = resp.add_kvs();
    ToKeyValue(*row.key, *row.kv, kv);
    if (r.keys_only()) kv->clear_value();
  }
  return resp;
}

absl::Status KvStore::CheckPutOp(const PutRequest& r) const {
  if (r.ignore_value() || r.ignore_lease()) {
    if (keyspace_.Get(r.key(), keyspace_.revision()) == nullptr) return errors::KeyNotFound();
  }
  if (r.lease() != 0 && (leases_ == nullptr || !leases_->Exists(r.lease()))) {
    return errors::LeaseNotFound();
  }
  return absl::OkStatus();
}

absl::StatusOr<PutResponse> KvStore::Put(const PutRequest& r, const CommitStamp& stamp,
                                         WriteBatch* batch) {
  // etcd checks the lease before the key (apply.go Put).
  if (r.lease() != 0 && (leases_ == nullptr || !leases_->Exists(r.lease()))) {
    return errors::LeaseNotFound();
  }
  GEOETCD_RETURN_IF_ERROR(CheckPutOp(r));
  Commit commit(this, stamp, batch);
  PutResponse resp = ApplyPut(r, &commit);
  resp.mutable_header()->set_revision(commit.Finish());
  return resp;
}

PutResponse KvStore::ApplyPut(const PutRequest& r, Commit* commit) {
  PutResponse resp;
  const KeyVersion* prev = keyspace_.Get(r.key(), commit->read_revision());
  std::string value = r.ignore_value() && prev ? prev->value.str() : r.value();
  const int64_t lease = r.ignore_lease() && prev ? prev->lease : r.lease();
  if (r.prev_kv() && prev != nullptr) ToKeyValue(r.key(), *prev, resp.mutable_prev_kv());
  const KeyVersion& v = commit->Put(r.key(), std::move(value), lease);
  resp.mutable_header()->set_revision(v.mod_revision);
  return resp;
}

absl::StatusOr<DeleteRangeResponse> KvStore::DeleteRange(const DeleteRangeRequest& r,
                                                         const CommitStamp& stamp,
                                                         WriteBatch* batch) {
  Commit commit(this, stamp, batch);
  DeleteRangeResponse resp = ApplyDelete(r, &commit);
  resp.mutable_header()->set_revision(commit.Finish());
  return resp;
}

DeleteRangeResponse KvStore::ApplyDelete(const DeleteRangeRequest& r, Commit* commit) {
  DeleteRangeResponse resp;
  const KeyRange range = KeyRange::FromEtcd(r.key(), r.range_end());
  std::vector<std::pair<std::string, KeyVersion>> victims;
  keyspace_.ForEachLive(range, commit->read_revision(),
                        [&](const std::string& key, const KeyVersion& kv) {
                          victims.emplace_back(key, kv);
                          return true;
                        });
  for (const auto& [key, prev] : victims) {
    if (r.prev_kv()) ToKeyValue(key, prev, resp.add_prev_kvs());
    commit->Delete(key, prev);
  }
  resp.set_deleted(static_cast<int64_t>(victims.size()));
  // etcd: beginRev + 1 once the txn has changes, else beginRev.
  resp.mutable_header()->set_revision(commit->read_revision());
  return resp;
}

int64_t KvStore::DeleteKeys(const std::vector<std::string>& keys, const CommitStamp& stamp,
                            WriteBatch* batch) {
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  Commit commit(this, stamp, batch);
  for (const auto& key : sorted) {
    if (const KeyVersion* prev = keyspace_.Get(key, commit.read_revision())) {
      const KeyVersion copy = *prev;
      commit.Delete(key, copy);
    }
  }
  return commit.Finish();
}

absl::StatusOr<int64_t> KvStore::ApplyOps(const LogEntry& entry, const CommitStamp& stamp,
                                          WriteBatch* batch) {
  Commit commit(this, stamp, batch);
  for (const KvOp& op : entry.ops()) {
    if (!op.tombstone()) {
      commit.Put(op.key(), op.value(), op.lease());
      continue;
    }
    const KeyVersion* prev = keyspace_.Get(op.key(), commit.read_revision());
    if (prev == nullptr) {
      commit.Finish();
      return errors::Corrupt();
    }
    const KeyVersion copy = *prev;
    commit.Delete(op.key(), copy);
  }
  return commit.Finish();
}

bool KvStore::EvaluateCompare(const Compare& c) const {
  const KeyRange range = KeyRange::FromEtcd(c.key(), c.range_end());
  bool any = false;
  bool all = true;
  keyspace_.ForEachLive(range, keyspace_.revision(), [&](const std::string&, const KeyVersion& kv) {
    any = true;
    all = CompareKeyValue(c, &kv);
    return all;
  });
  if (!any) {
    // etcd: a VALUE compare on a missing key always fails.
    return c.target() != Compare::VALUE && CompareKeyValue(c, nullptr);
  }
  return all;
}

KvStore::TxnPath KvStore::EvaluatePath(const TxnRequest& r) const {
  TxnPath path;
  path.succeeded = std::all_of(r.compare().begin(), r.compare().end(),
                               [this](const Compare& c) { return EvaluateCompare(c); });
  for (const auto& op : path.succeeded ? r.success() : r.failure()) {
    if (op.has_request_txn()) path.nested.push_back(EvaluatePath(op.request_txn()));
  }
  return path;
}

absl::Status KvStore::CheckTxnOps(const TxnRequest& r, const TxnPath& path) const {
  size_t nested = 0;
  for (const auto& op : path.succeeded ? r.success() : r.failure()) {
    if (op.has_request_txn()) {
      GEOETCD_RETURN_IF_ERROR(CheckTxnOps(op.request_txn(), path.nested[nested++]));
      continue;
    }
    if (op.has_request_put()) {
      GEOETCD_RETURN_IF_ERROR(CheckPutOp(op.request_put()));
    }
    if (op.has_request_range() && op.request_range().revision() != 0) {
      GEOETCD_RETURN_IF_ERROR(CheckRangeRevision(op.request_range().revision()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TxnResponse> KvStore::Txn(const TxnRequest& r, const CommitStamp& stamp,
                                         WriteBatch* batch) {
  // Every compare, nested ones included, sees the state before the txn (etcd compareToPath).
  const TxnPath path = EvaluatePath(r);
  GEOETCD_RETURN_IF_ERROR(CheckTxnOps(r, path));
  Commit commit(this, stamp, batch);
  TxnResponse resp;
  ApplyTxn(r, path, &commit, &resp);
  resp.mutable_header()->set_revision(commit.Finish());
  return resp;
}

void KvStore::ApplyTxn(const TxnRequest& r, const TxnPath& path, Commit* commit,
                       TxnResponse* out) {
  out->set_succeeded(path.succeeded);
  out->mutable_header();  // etcd sends nested txn headers empty
  size_t nested = 0;
  for (const auto& op : path.succeeded ? r.success() : r.failure()) {
    etcdserverpb::ResponseOp* resp = out->add_responses();
    switch (op.request_case()) {
      case RequestOp::kRequestRange: {
        const int64_t rev = commit->read_revision();
        const auto& rr = op.request_range();
        *resp->mutable_response_range() = RangeAt(rr, rr.revision() > 0 ? rr.revision() : rev);
        resp->mutable_response_range()->mutable_header()->set_revision(rev);
        break;
      }
      case RequestOp::kRequestPut:
        *resp->mutable_response_put() = ApplyPut(op.request_put(), commit);
        break;
      case RequestOp::kRequestDeleteRange:
        *resp->mutable_response_delete_range() = ApplyDelete(op.request_delete_range(), commit);
        break;
      case RequestOp::kRequestTxn:
        ApplyTxn(op.request_txn(), path.nested[nested++], commit, resp->mutable_response_txn());
        break;
      default:
        CHECK(false);  // rejected by CheckTxnRequest
    }
  }
}

absl::Status KvStore::CheckCompact(int64_t rev, int64_t pending_compact_rev) const {
  if (rev <= std::max(keyspace_.compact_revision(), pending_compact_rev)) {
    return errors::Compacted();
  }
  if (rev > keyspace_.revision()) return errors::FutureRev();
  return absl::OkStatus();
}

void KvStore::AppendMeta(WriteBatch* batch) const {
  AccountMeta meta;
  meta.set_compact_revision(keyspace_.compact_revision());
  meta.set_epoch(1);
  batch->Put(codec::MetaKey(account_), meta.SerializeAsString());
}

void KvStore::Compact(int64_t rev, WriteBatch* batch) {
  std::vector<VersionId> dropped;
  std::vector<std::string> removed;
  keyspace_.Compact(rev, &dropped, merkle_ ? &removed : nullptr);
  for (const std::string& key : removed) merkle_->Remove(key);
  for (const VersionId& id : dropped) batch->Delete(codec::VersionKey(account_, id));
  // The commit log below the compaction point is history no reader can ask for any more.
  batch->DeleteRange(codec::CommitPrefix(account_), codec::CommitKey(account_, rev));
  AppendMeta(batch);
}

Register KvStore::RegisterOf(const std::string& key, const KeyVersion& v) {
  Register r;
  r.key = key;
  r.value.assign(v.value.data(), v.value.size());
  r.create_revision = v.create_revision;
  r.mod_revision = v.mod_revision;
  r.mod_sub = v.sub;
  r.version = v.version;
  r.lease = v.lease;
  r.tombstone = v.tombstone();
  r.stamp = RegisterStamp{v.hlc, v.origin};
  return r;
}

KeyVersion KvStore::VersionOf(const Register& r) {
  KeyVersion v;
  v.mod_revision = r.mod_revision;
  v.sub = r.mod_sub;
  // A version is a tombstone exactly when its version is 0 (RegisterOf's tombstone flag):
  // callers check that a register from elsewhere agrees, so the round trip is exact.
  v.create_revision = r.create_revision;
  v.version = r.version;
  v.lease = r.lease;
  v.value = Bytes(r.value);
  v.hlc = r.stamp.hlc;
  v.origin = r.stamp.origin;
  return v;
}

void KvStore::StageInstall(int64_t revision,
                           const std::map<std::string, std::optional<Register>>& changes,
                           WriteBatch* batch) const {
  std::string last_key;
  const KeyVersion* newest = nullptr;
  keyspace_.ForEachVersion([&](const std::string& key, const KeyVersion& v) {
    if (key != last_key || newest == nullptr) {
      last_key = key;
      newest = keyspace_.Newest(key);
    }
    if (&v != newest || changes.count(key) != 0) {
      batch->Delete(codec::VersionKey(account_, VersionId{v.mod_revision, v.sub}));
    }
    return true;
  });
  for (const auto& [key, reg] : changes) {
    if (!reg.has_value()) continue;
    const KeyVersion v = VersionOf(*reg);
    batch->Put(codec::VersionKey(account_, VersionId{v.mod_revision, v.sub}),
               codec::ToRecord(key, v).SerializeAsString());
  }
  batch->DeleteRange(codec::CommitPrefix(account_), codec::PrefixEnd(codec::CommitPrefix(account_)));
  AccountMeta meta;
  meta.set_compact_revision(revision);
  meta.set_epoch(1);
  batch->Put(codec::MetaKey(account_), meta.SerializeAsString());
}

void KvStore::Install(int64_t revision,
                      const std::map<std::string, std::optional<Register>>& changes) {
  std::map<std::string, std::optional<KeyVersion>> versions;
  for (const auto& [key, reg] : changes) {
    if (reg.has_value()) {
      versions.emplace(key, VersionOf(*reg));
    } else {
      versions.emplace(key, std::nullopt);
    }
  }
  keyspace_.InstallRegisters(revision, versions);
  if (!merkle_) return;
  for (const auto& [key, reg] : changes) {
    if (reg.has_value()) {
      merkle_->Set(key, RegisterHash(*reg));
    } else {
      merkle_->Remove(key);
    }
  }
}

void KvStore::CheckRegisterTree() const {
  if (!merkle_) return;
  // Every key's leaf holds its register's hash, and nothing else is in the tree (the
  // tree's own invariants cover the inner hashes: crdt/merkle_tree.h).
  size_t keys = 0;
  keyspace_.ForEachNewest([&](const std::string& key, const KeyVersion& v) {
    ++keys;
    CHECK(merkle_->Get(key) == RegisterHash(RegisterOf(key, v)));
    return true;
  });
  CHECK(keys == merkle_->size());
}

void KvStore::EnableMerkle(int depth) {
  merkle_ = std::make_unique<MerkleTree>(depth);
  keyspace_.ForEachNewest([this](const std::string& key, const KeyVersion& v) {
    merkle_->Set(key, RegisterHash(RegisterOf(key, v)));
    return true;
  });
}

absl::StatusOr<int64_t> KvStore::Recover(const Storage& storage,
                                         bool bug_forget_newest_commit) {
  int64_t compact_rev = -1;  // never compacted
  std::string meta_bytes;
  if (auto s = storage.Get(codec::MetaKey(account_), &meta_bytes); s.ok()) {
    AccountMeta meta;
    if (!meta.ParseFromString(meta_bytes)) return errors::Corrupt();
    compact_rev = meta.compact_revision();
  } else if (!absl::IsNotFound(s)) {
    return s;
  }
  int64_t forgotten_rev = 0;
  if (bug_forget_newest_commit) {
    const std::string commits = codec::CommitPrefix(account_);
    auto s = storage.Scan(commits, codec::PrefixEnd(commits), [&](std::string_view,
                                                                  std::string_view v) {
      CommitMeta meta;
      if (meta.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
        forgotten_rev = meta.revision();
      }
      return true;
    });
    if (!s.ok()) return s;
    if (forgotten_rev <= compact_rev) forgotten_rev = 0;
  }
  int64_t loaded = 0;
  int64_t max_rev = 1;
  absl::Status bad = absl::OkStatus();
  const std::string prefix = codec::VersionPrefix(account_);
  auto s = storage.Scan(prefix, codec::PrefixEnd(prefix), [&](std::string_view k,
                                                              std::string_view v) {
    VersionId id;
    KeyRecord rec;
    if (!codec::ParseVersionKey(account_, k, &id) || !rec.ParseFromArray(v.data(), v.size())) {
      bad = errors::Corrupt();
      return false;
    }
    if (id.revision == forgotten_rev) return true;
    keyspace_.Restore(rec.key(), codec::FromRecord(rec, id));
    max_rev = std::max(max_rev, id.revision);
    ++loaded;
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  // A revision whose every record was compacted away is at or below the compaction point.
  keyspace_.SetRecoveredRevisions(std::max(max_rev, compact_rev), compact_rev);
  if (leases_ != nullptr) {
    keyspace_.ForEachLive(KeyRange::FromEtcd(std::string(1, '\0'), std::string(1, '\0')),
                          keyspace_.revision(), [&](const std::string& key, const KeyVersion& kv) {
                            if (kv.lease != 0) leases_->Attach(kv.lease, key);
                            return true;
                          });
  }
  keyspace_.CheckInvariants();
  return loaded;
}

uint64_t KvStore::HashAt(int64_t rev) const {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, /*seed=*/0x6765'6f65'7463'64ULL);
  auto put_int = [state](int64_t x) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>((static_cast<uint64_t>(x) >> (8 * i)) & 0xff);
    XXH64_update(state, b, sizeof(b));
  };
  auto put_bytes = [&](std::string_view s) {
    put_int(static_cast<int64_t>(s.size()));
    XXH64_update(state, s.data(), s.size());
  };
  keyspace_.ForEachLive(KeyRange::FromEtcd(std::string(1, '\0'), std::string(1, '\0')), rev,
                        [&](const std::string& key, const KeyVersion& kv) {
                          put_bytes(key);
                          put_int(kv.create_revision);
                          put_int(kv.mod_revision);
                          put_int(kv.version);
                          put_int(kv.lease);
                          put_bytes(kv.value);
                          return true;
                        });
  const uint64_t h = XXH64_digest(state);
  XXH64_freeState(state);
  return h;
}

}  // namespace geoetcd
