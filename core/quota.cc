#include "core/quota.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd {

using etcdserverpb::AlarmMember;
using etcdserverpb::AlarmType;

namespace {

int64_t BranchCostBytes(const google::protobuf::RepeatedPtrField<etcdserverpb::RequestOp>& ops) {
  int64_t cost = 0;
  for (const auto& op : ops) {
    if (op.has_request_put()) cost += PutCostBytes(op.request_put());
    if (op.has_request_txn()) cost += TxnCostBytes(op.request_txn());
  }
  return cost;
}

}  // namespace

int64_t PutCostBytes(const etcdserverpb::PutRequest& r) {
  return KeyVersionBytes(r.key().size(), r.value().size());
}

int64_t TxnCostBytes(const etcdserverpb::TxnRequest& r) {
  return std::max(BranchCostBytes(r.success()), BranchCostBytes(r.failure()));
}

QuotaVerdict CheckQuota(int64_t quota_bytes, int64_t used_bytes, int64_t cost_bytes,
                        bool nospace_active) {
  if (cost_bytes == 0) return QuotaVerdict::kAdmit;
  if (nospace_active) return QuotaVerdict::kAlarmActive;
  if (quota_bytes >= 0 && used_bytes + cost_bytes > quota_bytes) return QuotaVerdict::kExceeded;
  return QuotaVerdict::kAdmit;
}

bool AlarmSet::Activate(uint64_t member_id, AlarmType type) {
  return alarms_.insert({static_cast<int>(type), member_id}).second;
}

bool AlarmSet::Deactivate(uint64_t member_id, AlarmType type) {
  return alarms_.erase({static_cast<int>(type), member_id}) != 0;
}

bool AlarmSet::Has(AlarmType type) const {
  auto it = alarms_.lower_bound({static_cast<int>(type), 0});
  return it != alarms_.end() && it->first == static_cast<int>(type);
}

std::vector<AlarmMember> AlarmSet::Get(AlarmType type) const {
  std::vector<AlarmMember> out;
  for (const auto& [t, member] : alarms_) {
    if (type != etcdserverpb::NONE && t != static_cast<int>(type)) continue;
    AlarmMember& m = out.emplace_back();
    m.set_memberid(member);
    m.set_alarm(static_cast<AlarmType>(t));
  }
  return out;
}

std::string AlarmSet::Encode() const {
  AlarmList list;
  for (const auto& [type, member] : alarms_) {
    AlarmList::Alarm* a = list.add_alarms();
    a->set_member_id(member);
    a->set_type(type);
  }
  return list.SerializeAsString();
}

absl::StatusOr<AlarmSet> AlarmSet::Decode(std::string_view bytes) {
  AlarmList list;
  if (!list.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("geoetcd: malformed alarm record");
  }
  AlarmSet set;
  for (const auto& a : list.alarms()) {
    if (!etcdserverpb::AlarmType_IsValid(a.type())) {
      return absl::DataLossError(absl::StrCat("geoetcd: unknown alarm type ", a.type()));
    }
    set.alarms_.insert({a.type(), a.member_id()});
  }
  return set;
}

std::string AlarmText(const AlarmMember& alarm) {
  std::string text;
  if (alarm.memberid() != 0) absl::StrAppend(&text, "memberID:", alarm.memberid(), " ");
  if (alarm.alarm() != etcdserverpb::NONE) {
    absl::StrAppend(&text, "alarm:", etcdserverpb::AlarmType_Name(alarm.alarm()), " ");
  }
  return text;
}

}  // namespace geoetcd
