// The Node's space quota and alarms (core/quota.h); the write paths call AdmitWrite.
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "core/node.h"
#include "core/node_internal.h"
#include "core/quota.h"

namespace geoetcd {

using etcdserverpb::AlarmMember;
using etcdserverpb::AlarmRequest;
using etcdserverpb::AlarmResponse;

absl::Status Node::AdmitWrite(Account* account, int64_t cost_bytes) {
  switch (CheckQuota(options_.quota_bytes, account->used_bytes(), cost_bytes,
                     account->alarms.Has(etcdserverpb::NOSPACE))) {
    case QuotaVerdict::kAdmit:
      return absl::OkStatus();
    case QuotaVerdict::kAlarmActive:
      return errors::NoSpace();
    case QuotaVerdict::kExceeded:
      // etcd raises the alarm in this member's name. It is staged like any commit: it becomes
      // durable with the next batch, so Alarm GET (answered once durable) shows it.
      if (account->alarms.Activate(options_.member_id, etcdserverpb::NOSPACE)) {
        StageAlarms(account);
        MaybeWrite();
      }
      return errors::NoSpace();
  }
  return errors::NoSpace();
}

absl::Status Node::RecoverAlarms(Account* account) {
  std::string bytes;
  const absl::Status s = ports_.storage->Get(codec::AlarmsKey(account->kv.account()), &bytes);
  if (absl::IsNotFound(s)) return absl::OkStatus();
  if (!s.ok()) return s;
  auto alarms = AlarmSet::Decode(bytes);
  if (!alarms.ok()) return alarms.status();
  account->alarms = *std::move(alarms);
  return absl::OkStatus();
}

void Node::StageAlarms(Account* account) {
  const std::string key = codec::AlarmsKey(account->kv.account());
  if (account->alarms.size() == 0) {
    staged_.Delete(key);
  } else {
    staged_.Put(key, account->alarms.Encode());
  }
  if (!IsWriteRegion(account)) return;  // applying W's entry, which carries the set
  LogEntry entry;
  entry.set_hlc(NextStamp().hlc);
  entry.set_revision(account->kv.revision());
  if (!entry.mutable_alarms()->ParseFromString(account->alarms.Encode())) {
    CHECK(false);  // AlarmSet::Encode writes an AlarmList
  }
  StageEntry(account, std::move(entry));
}

void Node::Alarm(const RequestContext& ctx, const AlarmRequest& req,
                 Reply<AlarmResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<AlarmResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  if (!etcdserverpb::AlarmType_IsValid(req.alarm())) {
    return PostReply<AlarmResponse>(
        ports_.executor, reply,
        absl::InvalidArgumentError(absl::StrCat("geoetcd: unknown alarm type ", req.alarm())));
  }
  AlarmResponse resp;  // etcd's Alarm response carries no header
  AlarmMember member;
  member.set_memberid(req.memberid());
  member.set_alarm(req.alarm());
  switch (req.action()) {
    case AlarmRequest::GET:
      for (auto& m : account->alarms.Get(req.alarm())) *resp.add_alarms() = std::move(m);
      break;
    case AlarmRequest::ACTIVATE:
      // etcd's CORRUPT alarm stops every mutation and read of the member; geoetcd has no
      // corruption check that would raise or clear it.
      if (req.alarm() == etcdserverpb::CORRUPT) {
        return PostReply<AlarmResponse>(ports_.executor, reply,
                                        errors::Unimplemented("raising the CORRUPT alarm"));
      }
      if (account->alarms.Activate(req.memberid(), req.alarm())) {
        if (account->alarms.size() > kAlarmsMax) {
          account->alarms.Deactivate(req.memberid(), req.alarm());
          return PostReply<AlarmResponse>(
              ports_.executor, reply,
              absl::ResourceExhaustedError(absl::StrCat("geoetcd: too many alarms (at most ",
                                                        kAlarmsMax, " per account)")));
        }
        StageAlarms(account);
      }
      *resp.add_alarms() = member;  // etcd answers with the alarm even if it was active
      break;
    case AlarmRequest::DEACTIVATE:
      if (account->alarms.Deactivate(req.memberid(), req.alarm())) {
        StageAlarms(account);
        *resp.add_alarms() = member;
      }
      break;
    default:
      return PostReply<AlarmResponse>(
          ports_.executor, reply,
          absl::InvalidArgumentError(absl::StrCat("geoetcd: unknown alarm action ", req.action())));
  }
  // GET too waits for what is staged, so it never reports an alarm change a crash could undo.
  AfterCommitted(account, [reply = std::move(reply), resp = std::move(resp)](
                              absl::Status committed) mutable {
    if (!committed.ok()) return reply(committed);
    reply(std::move(resp));
  });
  MaybeWrite();
}

std::vector<AlarmMember> Node::alarms(const std::string& account) const {
  const Account& a = *accounts_.at(account);
  std::vector<AlarmMember> active = a.alarms.Get(etcdserverpb::NONE);
  if (a.diverged) {
    // This region's own finding, not a replicated alarm: etcd's CORRUPT, as its
    // corruption check raises it for the member whose hash differs.
    AlarmMember corrupt;
    corrupt.set_memberid(options_.member_id);
    corrupt.set_alarm(etcdserverpb::CORRUPT);
    active.push_back(corrupt);
  }
  return active;
}

int64_t Node::used_bytes(const std::string& account) const {
  return accounts_.at(account)->used_bytes();
}

}  // namespace geoetcd
