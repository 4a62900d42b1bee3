// The space quota and the alarms of one account: etcd's --quota-backend-bytes and its alarm
// store (NOSPACE, CORRUPT), with etcd's admission rules.
//
// What "size" means: an account's used bytes are a deterministic, logical count of what it
// stores, kept as a running total and rebuilt at start:
//   every stored key version (puts and delete tombstones, history since the last compaction)
//     len(key) + len(value) + kKeyVersionOverheadBytes
//   every granted lease
//     kLeaseOverheadBytes
// etcd instead compares its bbolt file size, which only shrinks with a defrag. Here a
// compaction frees space at once; Defragment only returns disk space to the filesystem.
//
// Admission (etcd's quota.go and applierV3Capped): a write's cost is etcd's estimate
// (PutCostBytes, TxnCostBytes, kLeaseOverheadBytes). A write costing nothing (a Txn without
// puts) is always admitted. Otherwise it is refused while a NOSPACE alarm is active, and when
// used + cost would exceed the quota it is refused and raises NOSPACE. A write that lands
// exactly on the quota is admitted.
#ifndef GEOETCD_CORE_QUOTA_H_
#define GEOETCD_CORE_QUOTA_H_

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/keyspace.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd {

// etcd's leaseOverhead (server/etcdserver/quota.go); the key version's is in core/keyspace.h.
inline constexpr int64_t kLeaseOverheadBytes = 64;
// Alarms one account holds at most; ACTIVATE with arbitrary member IDs cannot grow it further.
inline constexpr size_t kAlarmsMax = 1024;

// etcd's cost of a Put: the bytes the version it writes counts for.
int64_t PutCostBytes(const etcdserverpb::PutRequest& r);
// etcd's cost of a Txn: the larger of its success and failure branches, each the sum of its
// puts. Unlike etcd 3.4/3.5, puts in nested txns count too (etcd lets a txn whose only puts are
// nested through a NOSPACE alarm).
int64_t TxnCostBytes(const etcdserverpb::TxnRequest& r);

enum class QuotaVerdict {
  kAdmit,
  kAlarmActive,  // refused: a NOSPACE alarm is active
  kExceeded,     // refused: used + cost > quota; the caller raises NOSPACE
};

// `quota_bytes` < 0 means no quota (etcd: a negative --quota-backend-bytes disables it); an
// active NOSPACE alarm still refuses writes then, as in etcd.
QuotaVerdict CheckQuota(int64_t quota_bytes, int64_t used_bytes, int64_t cost_bytes,
                        bool nospace_active);

// The alarms raised in one account: a set of (member, type), as etcd's alarm store.
class AlarmSet {
 public:
  // Adds the alarm; false if it was already active.
  bool Activate(uint64_t member_id, etcdserverpb::AlarmType type);
  // Removes the alarm; false if it was not active.
  bool Deactivate(uint64_t member_id, etcdserverpb::AlarmType type);
  bool Has(etcdserverpb::AlarmType type) const;
  // The alarms of `type` (NONE: all of them), ordered by type, then member.
  std::vector<etcdserverpb::AlarmMember> Get(etcdserverpb::AlarmType type) const;
  size_t size() const { return alarms_.size(); }

  // The durable record (geoetcd.AlarmList) and back; Decode fails on a malformed record.
  std::string Encode() const;
  static absl::StatusOr<AlarmSet> Decode(std::string_view bytes);

 private:
  std::set<std::pair<int, uint64_t>> alarms_;  // (type, member)
};

// An alarm as etcd prints it (gogoproto's String(), which etcdctl alarm list shows and Status
// puts in `errors`): "memberID:<id> alarm:NOSPACE " — zero fields are left out.
std::string AlarmText(const etcdserverpb::AlarmMember& alarm);

}  // namespace geoetcd

#endif  // GEOETCD_CORE_QUOTA_H_
