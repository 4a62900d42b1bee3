// The history of one simulation run: every operation the simulated clients invoked, with
// its request, invocation and completion times and outcome, plus the crashes and restarts
// the fault injector caused. The checkers (sim/checkers.h) judge it; a violating run writes
// it out, one operation per line.
#ifndef GEOETCD_SIM_HISTORY_H_
#define GEOETCD_SIM_HISTORY_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd::sim {

// The completion time of an operation whose outcome is unknown: it may take effect at any
// time after its invocation, so it is treated as returning at infinity.
inline constexpr int64_t kNeverUs = std::numeric_limits<int64_t>::max();

enum class OpKind : uint8_t {
  kRange,
  kPut,
  kDelete,
  kTxn,
  kCompact,
  kLeaseGrant,
  kLeaseRevoke,
  kLeaseKeepAlive,
  kLeaseTimeToLive,
};

enum class OpOutcome : uint8_t {
  kOk,       // a reply arrived: the response is known
  kFail,     // an error arrived that proves the operation had no effect
  kUnknown,  // no reply (timeout, crash, lost message): it may or may not have taken effect
};

const char* OpKindName(OpKind kind);
const char* OpOutcomeName(OpOutcome outcome);

// A request as a client sends it: the KV and lease requests as the gateway passes them to
// the Node. Only the field of `kind` is set.
struct KvCall {
  OpKind kind = OpKind::kRange;
  etcdserverpb::RequestOp request;  // kRange, kPut, kDelete, kTxn
  etcdserverpb::CompactionRequest compact;
  etcdserverpb::LeaseGrantRequest lease_grant;
  etcdserverpb::LeaseRevokeRequest lease_revoke;
  etcdserverpb::LeaseKeepAliveRequest lease_keep_alive;
  etcdserverpb::LeaseTimeToLiveRequest lease_time_to_live;
  int64_t history_index = -1;  // the HistoryOp recording this call
};

// A response of any kind the workload receives. Only the field of the call's kind is set.
struct KvResponse {
  etcdserverpb::ResponseOp op;  // kRange, kPut, kDelete, kTxn
  etcdserverpb::CompactionResponse compact;
  etcdserverpb::LeaseGrantResponse lease_grant;
  etcdserverpb::LeaseRevokeResponse lease_revoke;
  etcdserverpb::LeaseKeepAliveResponse lease_keep_alive;
  etcdserverpb::LeaseTimeToLiveResponse lease_time_to_live;
};

struct HistoryOp {
  int64_t index = 0;  // position in History::ops
  int32_t client = 0;
  KvCall call;
  int64_t invoke_us = 0;
  int64_t complete_us = kNeverUs;
  OpOutcome outcome = OpOutcome::kUnknown;
  etcdserverpb::ResponseOp response;  // kOk, except kCompact and the lease kinds
  etcdserverpb::CompactionResponse compact_response;
  etcdserverpb::LeaseGrantResponse lease_grant_response;
  etcdserverpb::LeaseRevokeResponse lease_revoke_response;
  etcdserverpb::LeaseKeepAliveResponse lease_keep_alive_response;
  etcdserverpb::LeaseTimeToLiveResponse lease_time_to_live_response;
  std::string error;  // kFail
  // What the server answered, whether or not the client got it: the revision and whether
  // the op changed the store. Ground truth for testing the checkers themselves (the
  // oracle); the checkers never read it.
  int64_t server_revision = 0;
  bool server_changed = false;

  // A KV write request (Put, DeleteRange, Txn). A lease revoke deletes keys too, but is
  // not one: the checkers account for lease deletions apart (see sim/checkers.h).
  bool is_mutation() const {
    return call.kind == OpKind::kPut || call.kind == OpKind::kDelete || call.kind == OpKind::kTxn;
  }
  bool is_lease() const {
    return call.kind == OpKind::kLeaseGrant || call.kind == OpKind::kLeaseRevoke ||
           call.kind == OpKind::kLeaseKeepAlive || call.kind == OpKind::kLeaseTimeToLive;
  }
  // The lease a lease request names: for a grant the requested ID, or the granted one when
  // the server chose it (0 if it is not known).
  int64_t lease_id() const;
  // header.revision of an OK response.
  int64_t header_revision() const;
  // Stores an OK response of the call's kind.
  void SetResponse(KvResponse r);
};

struct CrashRecord {
  int32_t node = 0;  // the simulation's node index: the write region is node 0
  int64_t crash_us = 0;
  int64_t restart_us = kNeverUs;   // when the restarted node began serving
  int64_t recovered_revision = 0;  // the node's durable revision right after restart
  bool restart_failed = false;
};

// A region adopted another's state by Merkle repair (core/node_repair.cc): from then on its
// compaction point is `revision`, a compaction no client asked for.
struct RepairRecord {
  int32_t node = 0;
  int64_t time_us = 0;
  int64_t revision = 0;
};

// One watch stream session of a watcher client: the watch it asked for and every response
// it received, in order and without gaps, until the stream broke or was closed. A client
// resuming after a break opens a new session starting after the last revision it saw.
struct WatchSession {
  int64_t index = 0;  // position in History::watches
  int32_t client = 0;
  etcdserverpb::WatchCreateRequest create;
  int64_t open_us = 0;
  int64_t close_us = kNeverUs;
  std::string end_reason;  // why the client left the stream
  struct Received {
    int64_t time_us;
    etcdserverpb::WatchResponse response;
  };
  std::vector<Received> responses;
};

struct History {
  // The server's minimum lease TTL (NodeOptions::lease_ttl_min_s): a grant asking less gets
  // this.
  int64_t lease_ttl_min_s = 2;
  std::vector<HistoryOp> ops;
  std::vector<CrashRecord> crashes;
  std::vector<RepairRecord> repairs;
  std::vector<WatchSession> watches;

  // Records an invocation; returns its index.
  int64_t Invoke(int32_t client, KvCall call, int64_t now_us);
};

// One line describing an operation: client, op, arguments, times and result.
std::string FormatOp(const HistoryOp& op);
// One line describing a watch session's request and how it ended.
std::string FormatWatchSession(const WatchSession& session);
// One line describing a watch response.
std::string FormatWatchResponse(const etcdserverpb::WatchResponse& response);
// Writes every operation and crash, one per line. Returns false if the file can't be written.
bool WriteHistory(const History& history, const std::string& path);
// Calls `f` on every key-value a response shows its client: Range kvs, a Put's prev_kv, a
// DeleteRange's prev_kvs, recursively through Txn responses.
void ForEachObservedKv(const etcdserverpb::ResponseOp& r,
                       const std::function<void(const mvccpb::KeyValue&)>& f);
// A canonical digest of an operation's outcome and response (fixed encoding, never a
// serialized protobuf), folded into the trace hash.
uint64_t DigestOutcome(const HistoryOp& op);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_HISTORY_H_
