#include "sim/history.h"

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "xxhash.h"

namespace geoetcd::sim {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::ResponseOp;

namespace {

std::string TimeString(int64_t us) {
  if (us == kNeverUs) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%" PRId64 ".%06" PRId64, us / 1000000, us % 1000000);
  return buf;
}

std::string RangeString(const std::string& key, const std::string& end) {
  if (end.empty()) return key;
  if (end == std::string(1, '\0')) return absl::StrCat("[", key, ",+inf)");
  return absl::StrCat("[", key, ",", end, ")");
}

const char* CompareTargetName(Compare::CompareTarget t) {
  switch (t) {
    case Compare::VERSION:
      return "version";
    case Compare::CREATE:
      return "create";
    case Compare::MOD:
      return "mod";
    case Compare::VALUE:
      return "value";
    case Compare::LEASE:
      return "lease";
    default:
      return "?";
  }
}

const char* CompareResultName(Compare::CompareResult r) {
  switch (r) {
    case Compare::EQUAL:
      return "==";
    case Compare::NOT_EQUAL:
      return "!=";
    case Compare::GREATER:
      return ">";
    case Compare::LESS:
      return "<";
    default:
      return "?";
  }
}

std::string CompareString(const Compare& c) {
  std::string operand;
  switch (c.target_union_case()) {
    case Compare::kVersion:
      operand = absl::StrCat(c.version());
      break;
    case Compare::kCreateRevision:
      operand = absl::StrCat(c.create_revision());
      break;
    case Compare::kModRevision:
      operand = absl::StrCat(c.mod_revision());
      break;
    case Compare::kValue:
      operand = absl::StrCat("'", c.value(), "'");
      break;
    case Compare::kLease:
      operand = absl::StrCat(c.lease());
      break;
    default:
      operand = "0";
  }
  return absl::StrCat(CompareTargetName(c.target()), "(", RangeString(c.key(), c.range_end()), ")",
                      CompareResultName(c.result()), operand);
}

std::string RequestString(const RequestOp& op) {
  switch (op.request_case()) {
    case RequestOp::kRequestRange: {
      const auto& r = op.request_range();
      std::string s = absl::StrCat("get ", RangeString(r.key(), r.range_end()));
      if (r.limit() > 0) absl::StrAppend(&s, " limit=", r.limit());
      if (r.revision() > 0) absl::StrAppend(&s, " at=", r.revision());
      return s;
    }
    case RequestOp::kRequestPut: {
      const auto& r = op.request_put();
      return absl::StrCat("put ", r.key(), "=", r.value(),
                          r.lease() != 0 ? absl::StrCat(" lease=", r.lease()) : "",
                          r.prev_kv() ? " prev_kv" : "");
    }
    case RequestOp::kRequestDeleteRange: {
      const auto& r = op.request_delete_range();
      return absl::StrCat("del ", RangeString(r.key(), r.range_end()),
                          r.prev_kv() ? " prev_kv" : "");
    }
    case RequestOp::kRequestTxn: {
      const auto& t = op.request_txn();
      std::string s = "txn if";
      for (const auto& c : t.compare()) absl::StrAppend(&s, " ", CompareString(c));
      absl::StrAppend(&s, " then {");
      for (const auto& o : t.success()) absl::StrAppend(&s, " ", RequestString(o), ";");
      absl::StrAppend(&s, " } else {");
      for (const auto& o : t.failure()) absl::StrAppend(&s, " ", RequestString(o), ";");
      absl::StrAppend(&s, " }");
      return s;
    }
    default:
      return "empty";
  }
}

std::string KvString(const mvccpb::KeyValue& kv) {
  return absl::StrCat(kv.key(), "=", kv.value(), "@", kv.mod_revision(), "(c", kv.create_revision(),
                      ",v", kv.version(),
                      kv.lease() != 0 ? absl::StrCat(",lease=", kv.lease()) : "", ")");
}

std::string LeaseRequestString(const KvCall& call) {
  switch (call.kind) {
    case OpKind::kLeaseGrant:
      return absl::StrCat("lease-grant id=", call.lease_grant.id(), " ttl=", call.lease_grant.ttl());
    case OpKind::kLeaseRevoke:
      return absl::StrCat("lease-revoke id=", call.lease_revoke.id());
    case OpKind::kLeaseKeepAlive:
      return absl::StrCat("lease-keepalive id=", call.lease_keep_alive.id());
    case OpKind::kLeaseTimeToLive:
      return absl::StrCat("lease-ttl id=", call.lease_time_to_live.id(),
                          call.lease_time_to_live.keys() ? " keys" : "");
    default:
      return "?";
  }
}

std::string LeaseResponseString(const HistoryOp& op) {
  switch (op.call.kind) {
    case OpKind::kLeaseGrant:
      return absl::StrCat("rev=", op.lease_grant_response.header().revision(),
                          " id=", op.lease_grant_response.id(),
                          " ttl=", op.lease_grant_response.ttl());
    case OpKind::kLeaseRevoke:
      return absl::StrCat("rev=", op.lease_revoke_response.header().revision());
    case OpKind::kLeaseKeepAlive:
      return absl::StrCat("rev=", op.lease_keep_alive_response.header().revision(),
                          " ttl=", op.lease_keep_alive_response.ttl());
    case OpKind::kLeaseTimeToLive: {
      const auto& r = op.lease_time_to_live_response;
      std::string s = absl::StrCat("rev=", r.header().revision(), " ttl=", r.ttl(),
                                   " granted=", r.grantedttl());
      for (const auto& key : r.keys()) absl::StrAppend(&s, " key=", key);
      return s;
    }
    default:
      return "?";
  }
}

std::string ResponseString(const ResponseOp& op) {
  switch (op.response_case()) {
    case ResponseOp::kResponseRange: {
      const auto& r = op.response_range();
      std::string s = absl::StrCat("rev=", r.header().revision(), " count=", r.count(),
                                   r.more() ? " more" : "", " [");
      for (int i = 0; i < r.kvs_size(); ++i) {
        absl::StrAppend(&s, i > 0 ? " " : "", KvString(r.kvs(i)));
      }
      absl::StrAppend(&s, "]");
      return s;
    }
    case ResponseOp::kResponsePut: {
      const auto& r = op.response_put();
      std::string s = absl::StrCat("rev=", r.header().revision());
      if (r.has_prev_kv()) absl::StrAppend(&s, " prev=", KvString(r.prev_kv()));
      return s;
    }
    case ResponseOp::kResponseDeleteRange: {
      const auto& r = op.response_delete_range();
      std::string s = absl::StrCat("rev=", r.header().revision(), " deleted=", r.deleted());
      for (const auto& kv : r.prev_kvs()) absl::StrAppend(&s, " prev=", KvString(kv));
      return s;
    }
    case ResponseOp::kResponseTxn: {
      const auto& r = op.response_txn();
      std::string s =
          absl::StrCat("rev=", r.header().revision(), r.succeeded() ? " succeeded {" : " failed {");
      for (const auto& o : r.responses()) absl::StrAppend(&s, " ", ResponseString(o), ";");
      absl::StrAppend(&s, " }");
      return s;
    }
    default:
      return "empty";
  }
}

// A canonical, order-preserving encoding for the digest.
class Digest {
 public:
  void Int(int64_t x) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i)
      b[i] = static_cast<unsigned char>(static_cast<uint64_t>(x) >> (8 * i));
    h_ = XXH64(b, sizeof(b), h_);
  }
  void Bytes(std::string_view s) {
    Int(static_cast<int64_t>(s.size()));
    h_ = XXH64(s.data(), s.size(), h_);
  }
  void Kv(const mvccpb::KeyValue& kv) {
    Bytes(kv.key());
    Bytes(kv.value());
    Int(kv.create_revision());
    Int(kv.mod_revision());
    Int(kv.version());
    Int(kv.lease());
  }
  void Response(const ResponseOp& op) {
    Int(op.response_case());
    switch (op.response_case()) {
      case ResponseOp::kResponseRange: {
        const auto& r = op.response_range();
        Int(r.header().revision());
        Int(r.count());
        Int(r.more());
        for (const auto& kv : r.kvs()) Kv(kv);
        break;
      }
      case ResponseOp::kResponsePut:
        Int(op.response_put().header().revision());
        if (op.response_put().has_prev_kv()) Kv(op.response_put().prev_kv());
        break;
      case ResponseOp::kResponseDeleteRange:
        Int(op.response_delete_range().header().revision());
        Int(op.response_delete_range().deleted());
        for (const auto& kv : op.response_delete_range().prev_kvs()) Kv(kv);
        break;
      case ResponseOp::kResponseTxn:
        Int(op.response_txn().header().revision());
        Int(op.response_txn().succeeded());
        for (const auto& o : op.response_txn().responses()) Response(o);
        break;
      default:
        break;
    }
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0x6869'7374'6f72'79ULL;
};

}  // namespace

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kRange:
      return "range";
    case OpKind::kPut:
      return "put";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kTxn:
      return "txn";
    case OpKind::kCompact:
      return "compact";
    case OpKind::kLeaseGrant:
      return "lease-grant";
    case OpKind::kLeaseRevoke:
      return "lease-revoke";
    case OpKind::kLeaseKeepAlive:
      return "lease-keepalive";
    case OpKind::kLeaseTimeToLive:
      return "lease-ttl";
  }
  return "?";
}

const char* OpOutcomeName(OpOutcome outcome) {
  switch (outcome) {
    case OpOutcome::kOk:
      return "ok";
    case OpOutcome::kFail:
      return "fail";
    case OpOutcome::kUnknown:
      return "unknown";
  }
  return "?";
}

int64_t HistoryOp::header_revision() const {
  switch (call.kind) {
    case OpKind::kCompact:
      return compact_response.header().revision();
    case OpKind::kLeaseGrant:
      return lease_grant_response.header().revision();
    case OpKind::kLeaseRevoke:
      return lease_revoke_response.header().revision();
    case OpKind::kLeaseKeepAlive:
      return lease_keep_alive_response.header().revision();
    case OpKind::kLeaseTimeToLive:
      return lease_time_to_live_response.header().revision();
    default:
      break;
  }
  switch (response.response_case()) {
    case ResponseOp::kResponseRange:
      return response.response_range().header().revision();
    case ResponseOp::kResponsePut:
      return response.response_put().header().revision();
    case ResponseOp::kResponseDeleteRange:
      return response.response_delete_range().header().revision();
    case ResponseOp::kResponseTxn:
      return response.response_txn().header().revision();
    default:
      return 0;
  }
}

int64_t HistoryOp::lease_id() const {
  switch (call.kind) {
    case OpKind::kLeaseGrant:
      if (call.lease_grant.id() != 0) return call.lease_grant.id();
      return outcome == OpOutcome::kOk ? lease_grant_response.id() : 0;
    case OpKind::kLeaseRevoke:
      return call.lease_revoke.id();
    case OpKind::kLeaseKeepAlive:
      return call.lease_keep_alive.id();
    case OpKind::kLeaseTimeToLive:
      return call.lease_time_to_live.id();
    default:
      return 0;
  }
}

void HistoryOp::SetResponse(KvResponse r) {
  switch (call.kind) {
    case OpKind::kCompact:
      compact_response = std::move(r.compact);
      break;
    case OpKind::kLeaseGrant:
      lease_grant_response = std::move(r.lease_grant);
      break;
    case OpKind::kLeaseRevoke:
      lease_revoke_response = std::move(r.lease_revoke);
      break;
    case OpKind::kLeaseKeepAlive:
      lease_keep_alive_response = std::move(r.lease_keep_alive);
      break;
    case OpKind::kLeaseTimeToLive:
      lease_time_to_live_response = std::move(r.lease_time_to_live);
      break;
    default:
      response = std::move(r.op);
  }
}

int64_t History::Invoke(int32_t client, KvCall call, int64_t now_us) {
  HistoryOp op;
  op.index = static_cast<int64_t>(ops.size());
  op.client = client;
  op.call = std::move(call);
  op.invoke_us = now_us;
  ops.push_back(std::move(op));
  return ops.back().index;
}

std::string FormatOp(const HistoryOp& op) {
  // A checker's stand-in for a lease deletion no request made (sim/lease_view.h).
  if (op.index < 0) {
    return absl::StrCat("(expiry or unanswered revoke of lease ", op.lease_id(), ", possible from ",
                        TimeString(op.invoke_us), ")");
  }
  std::string s = absl::StrCat("#", op.index, " client=", op.client, " ");
  if (op.call.kind == OpKind::kCompact) {
    absl::StrAppend(&s, "compact ", op.call.compact.revision());
  } else if (op.is_lease()) {
    absl::StrAppend(&s, LeaseRequestString(op.call));
  } else {
    absl::StrAppend(&s, RequestString(op.call.request));
  }
  absl::StrAppend(&s, " invoke=", TimeString(op.invoke_us),
                  " complete=", TimeString(op.complete_us), " ", OpOutcomeName(op.outcome));
  if (op.outcome == OpOutcome::kFail) absl::StrAppend(&s, " error='", op.error, "'");
  if (op.outcome == OpOutcome::kOk) {
    if (op.call.kind == OpKind::kCompact) {
      absl::StrAppend(&s, " rev=", op.compact_response.header().revision());
    } else if (op.is_lease()) {
      absl::StrAppend(&s, " ", LeaseResponseString(op));
    } else {
      absl::StrAppend(&s, " ", ResponseString(op.response));
    }
  }
  return s;
}

std::string FormatWatchSession(const WatchSession& w) {
  const auto& c = w.create;
  return absl::StrCat("watch#", w.index, " client=", w.client, " ",
                      RangeString(c.key(), c.range_end()), " start=", c.start_revision(),
                      c.prev_kv() ? " prev_kv" : "", c.progress_notify() ? " progress_notify" : "",
                      " open=", TimeString(w.open_us), " close=", TimeString(w.close_us),
                      " end=", w.end_reason, " responses=", w.responses.size());
}

std::string FormatWatchResponse(const etcdserverpb::WatchResponse& r) {
  std::string s = absl::StrCat("rev=", r.header().revision(), " id=", r.watch_id());
  if (r.created()) absl::StrAppend(&s, " created");
  if (r.canceled()) absl::StrAppend(&s, " canceled='", r.cancel_reason(), "'");
  if (r.compact_revision() != 0) absl::StrAppend(&s, " compact_revision=", r.compact_revision());
  if (r.fragment()) absl::StrAppend(&s, " fragment");
  if (r.events_size() == 0 && !r.created() && !r.canceled()) absl::StrAppend(&s, " progress");
  for (const auto& ev : r.events()) {
    absl::StrAppend(&s, ev.type() == mvccpb::Event::PUT ? " PUT " : " DELETE ", KvString(ev.kv()));
    if (ev.has_prev_kv()) absl::StrAppend(&s, " prev=", KvString(ev.prev_kv()));
  }
  return s;
}

bool WriteHistory(const History& history, const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "w"), &std::fclose);
  if (!f) return false;
  std::fprintf(f.get(), "# geoetcd-sim history: one operation per line; times in seconds\n");
  std::fprintf(f.get(), "# lease_ttl_min_s=%lld\n", static_cast<long long>(history.lease_ttl_min_s));
  for (const CrashRecord& c : history.crashes) {
    std::fprintf(f.get(), "# crash node=%d at=%s restart=%s recovered_revision=%" PRId64 "%s\n",
                 c.node, TimeString(c.crash_us).c_str(), TimeString(c.restart_us).c_str(),
                 c.recovered_revision, c.restart_failed ? " restart_failed" : "");
  }
  for (const HistoryOp& op : history.ops) std::fprintf(f.get(), "%s\n", FormatOp(op).c_str());
  for (const WatchSession& w : history.watches) {
    std::fprintf(f.get(), "%s\n", FormatWatchSession(w).c_str());
    for (const WatchSession::Received& r : w.responses) {
      std::fprintf(f.get(), "  watch#%lld at=%s %s\n", static_cast<long long>(w.index),
                   TimeString(r.time_us).c_str(), FormatWatchResponse(r.response).c_str());
    }
  }
  return std::ferror(f.get()) == 0;
}

uint64_t DigestOutcome(const HistoryOp& op) {
  Digest d;
  d.Int(op.index);
  d.Int(static_cast<int64_t>(op.outcome));
  if (op.outcome == OpOutcome::kFail) d.Bytes(op.error);
  if (op.outcome == OpOutcome::kOk) {
    d.Int(op.header_revision());
    switch (op.call.kind) {
      case OpKind::kCompact:
        break;
      case OpKind::kLeaseGrant:
        d.Int(op.lease_grant_response.id());
        d.Int(op.lease_grant_response.ttl());
        break;
      case OpKind::kLeaseRevoke:
        break;
      case OpKind::kLeaseKeepAlive:
        d.Int(op.lease_keep_alive_response.id());
        d.Int(op.lease_keep_alive_response.ttl());
        break;
      case OpKind::kLeaseTimeToLive:
        d.Int(op.lease_time_to_live_response.id());
        d.Int(op.lease_time_to_live_response.ttl());
        d.Int(op.lease_time_to_live_response.grantedttl());
        for (const auto& key : op.lease_time_to_live_response.keys()) d.Bytes(key);
        break;
      default:
        d.Response(op.response);
    }
  }
  return d.value();
}

void ForEachObservedKv(const etcdserverpb::ResponseOp& r,
                       const std::function<void(const mvccpb::KeyValue&)>& f) {
  using etcdserverpb::ResponseOp;
  switch (r.response_case()) {
    case ResponseOp::kResponseRange:
      for (const auto& kv : r.response_range().kvs()) f(kv);
      break;
    case ResponseOp::kResponsePut:
      if (r.response_put().has_prev_kv()) f(r.response_put().prev_kv());
      break;
    case ResponseOp::kResponseDeleteRange:
      for (const auto& kv : r.response_delete_range().prev_kvs()) f(kv);
      break;
    case ResponseOp::kResponseTxn:
      for (const auto& inner : r.response_txn().responses()) ForEachObservedKv(inner, f);
      break;
    default:
      break;
  }
}

}  // namespace geoetcd::sim
