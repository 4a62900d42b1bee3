// The Node's lease and maintenance requests (the KV and watch paths are in node.cc).
#include <utility>

#include "core/check.h"
#include "core/errors.h"
#include "core/keyspace_codec.h"
#include "core/node.h"
#include "core/node_internal.h"
#include "geoetcd/storage.pb.h"

namespace geoetcd {

using etcdserverpb::HashKVRequest;
using etcdserverpb::HashKVResponse;
using etcdserverpb::LeaseGrantRequest;
using etcdserverpb::LeaseGrantResponse;
using etcdserverpb::LeaseKeepAliveRequest;
using etcdserverpb::LeaseKeepAliveResponse;
using etcdserverpb::LeaseLeasesRequest;
using etcdserverpb::LeaseLeasesResponse;
using etcdserverpb::LeaseRevokeRequest;
using etcdserverpb::LeaseRevokeResponse;
using etcdserverpb::LeaseTimeToLiveRequest;
using etcdserverpb::LeaseTimeToLiveResponse;

absl::Status Node::RecoverLeases(Account* account) {
  const std::string prefix = codec::LeasePrefix(account->kv.account());
  const int64_t now_ms = ports_.clock->MonotonicMs();
  bool corrupt = false;
  auto s = ports_.storage->Scan(prefix, codec::PrefixEnd(prefix),
                                [&](std::string_view, std::string_view v) {
                                  LeaseRecord rec;
                                  if (!rec.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
                                    corrupt = true;
                                    return false;
                                  }
                                  account->lessor.Grant(rec.id(), rec.ttl_s(), now_ms);
                                  return true;
                                });
  if (!s.ok()) return s;
  return corrupt ? errors::Corrupt() : absl::OkStatus();
}

void Node::LeaseGrant(const RequestContext& ctx, const LeaseGrantRequest& req,
                      Reply<LeaseGrantResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<LeaseGrantResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  // etcd refuses a grant for space before it looks at the TTL or the ID.
  if (auto s = AdmitWrite(account, kLeaseOverheadBytes); !s.ok()) {
    return PostReply<LeaseGrantResponse>(ports_.executor, reply, s);
  }
  auto ttl = account->lessor.GrantedTtl(req.ttl());
  if (!ttl.ok()) return PostReply<LeaseGrantResponse>(ports_.executor, reply, ttl.status());
  int64_t id = req.id();
  if (id == 0) {
    // etcd: a positive 63-bit ID the server picks.
    do {
      id = static_cast<int64_t>(random_.Next() & INT64_MAX);
    } while (id == 0 || account->lessor.Exists(id));
  } else if (account->lessor.Exists(id)) {
    return PostReply<LeaseGrantResponse>(ports_.executor, reply, errors::LeaseExist());
  }
  account->lessor.Grant(id, *ttl, ports_.clock->MonotonicMs());
  LeaseRecord rec;
  rec.set_id(id);
  rec.set_ttl_s(*ttl);
  staged_.Put(codec::LeaseKey(account->kv.account(), id), rec.SerializeAsString());
  LogEntry entry;
  entry.set_hlc(NextStamp().hlc);
  entry.set_revision(account->kv.revision());
  *entry.mutable_lease_grant() = rec;
  StageEntry(account, std::move(entry));
  LeaseGrantResponse resp;
  resp.set_id(id);
  resp.set_ttl(*ttl);
  AfterCommitted(account, [this, account, resp, reply = std::move(reply)](
                              absl::Status committed) mutable {
    if (!committed.ok()) return reply(committed);
    FillHeader(resp.mutable_header());
    resp.mutable_header()->set_revision(account->durable_rev);
    reply(std::move(resp));
  });
  MaybeWrite();
}

int64_t Node::RevokeLease(Account* account, int64_t id) {
  const std::vector<std::string> keys = account->lessor.KeysOf(id);
  // One commit deletes the keys and ends the lease (etcd's revoke is one txn).
  auto commit = [&](const std::vector<std::string>& some, bool last) {
    LogEntry entry;
    CommitStamp stamp = NextStamp();
    stamp.log = &entry;
    const int64_t rev = account->kv.DeleteKeys(some, stamp, &staged_);
    entry.set_hlc(stamp.hlc);
    if (last) entry.set_lease_revoke(id);
    if (last || entry.ops_size() > 0) StageEntry(account, std::move(entry));
    return rev;
  };
  int64_t rev = 0;
  if (options_.bugs.lease_revoke_not_atomic && keys.size() > 1) {
    for (size_t i = 0; i < keys.size(); ++i) rev = commit({keys[i]}, i + 1 == keys.size());
  } else {
    rev = commit(keys, true);
  }
  account->lessor.Remove(id);
  staged_.Delete(codec::LeaseKey(account->kv.account(), id));
  return rev;
}

void Node::LeaseRevoke(const RequestContext& ctx, const LeaseRevokeRequest& req,
                       Reply<LeaseRevokeResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<LeaseRevokeResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  if (!account->lessor.Exists(req.id())) {
    // Not before the revocation that removed it (if one is pending) is durable: a crash
    // could still bring the lease back.
    AfterDurable([reply = std::move(reply)]() { reply(errors::LeaseNotFound()); });
    return;
  }
  const int64_t rev = RevokeLease(account, req.id());
  AfterCommitted(account, [this, rev, reply = std::move(reply)](absl::Status committed) {
    if (!committed.ok()) return reply(committed);
    LeaseRevokeResponse resp;
    FillHeader(resp.mutable_header());
    resp.mutable_header()->set_revision(rev);
    reply(std::move(resp));
  });
  MaybeWrite();
}

void Node::LeaseKeepAlive(const RequestContext& ctx, const LeaseKeepAliveRequest& req,
                          Reply<LeaseKeepAliveResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<LeaseKeepAliveResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  const int64_t ttl = account->lessor.Renew(req.id(), ports_.clock->MonotonicMs());
  // Expired but not yet revoked (the expiry tick has not come): revoke it now. etcd makes
  // such a keep-alive wait until the revocation is committed, so that a client told "TTL
  // 0" never finds the lease's keys afterwards.
  if (ttl == 0 && account->lessor.Exists(req.id())) RevokeLease(account, req.id());
  // Answer once everything staged so far is durable: a renewal must not be acknowledged
  // for a grant a crash could still take back, nor "gone" before the revocation.
  AfterDurable([this, account, id = req.id(), ttl, reply = std::move(reply)]() {
    LeaseKeepAliveResponse resp;
    FillHeader(resp.mutable_header());
    resp.mutable_header()->set_revision(account->durable_rev);
    resp.set_id(id);
    resp.set_ttl(ttl);
    reply(std::move(resp));
  });
  MaybeWrite();
}

void Node::LeaseTimeToLive(const RequestContext& ctx, const LeaseTimeToLiveRequest& req,
                           Reply<LeaseTimeToLiveResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<LeaseTimeToLiveResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  LeaseTimeToLiveResponse resp;
  FillHeader(resp.mutable_header());
  resp.set_id(req.id());
  resp.set_ttl(account->lessor.RemainingS(req.id(), ports_.clock->MonotonicMs()));
  if (resp.ttl() >= 0) {
    resp.set_grantedttl(account->lessor.GrantedTtlOf(req.id()));
    if (req.keys()) {
      for (const auto& key : account->lessor.KeysOf(req.id())) resp.add_keys(key);
    }
  }
  // Like a read, it shows only durable lease state: the grant it reports, or the
  // revocation that removed the lease, could otherwise still be lost in a crash.
  AfterDurable([account, resp = std::move(resp), reply = std::move(reply)]() mutable {
    resp.mutable_header()->set_revision(account->durable_rev);
    reply(std::move(resp));
  });
}

void Node::LeaseLeases(const RequestContext& ctx, const LeaseLeasesRequest& req,
                       Reply<LeaseLeasesResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<LeaseLeasesResponse>(ports_.executor, reply, s);
  }
  if (RouteToWriteRegion(ctx, req, reply)) return;
  LeaseLeasesResponse resp;
  FillHeader(resp.mutable_header());
  resp.mutable_header()->set_revision(account->durable_rev);
  for (int64_t id : account->lessor.Ids()) resp.add_leases()->set_id(id);
  PostReply<LeaseLeasesResponse>(ports_.executor, std::move(reply), std::move(resp));
}

void Node::ExpireLeases() {
  lease_timer_ = ports_.executor->PostAfter(options_.lease_tick_ms, [this] { ExpireLeases(); });
  if (!fatal_.ok()) return;
  const int64_t now_ms = ports_.clock->MonotonicMs();
  bool revoked = false;
  for (auto& [name, account] : accounts_) {
    // Leases live at the write region; their expiry reaches the others as commits.
    if (!IsWriteRegion(account.get())) continue;
    const auto ids = account->lessor.Expired(
        now_ms, static_cast<size_t>(options_.lease_revokes_per_tick_max));
    for (int64_t id : ids) RevokeLease(account.get(), id);
    revoked |= !ids.empty();
  }
  if (revoked) MaybeWrite();
}

void Node::HashKV(const RequestContext& ctx, const HashKVRequest& req,
                  Reply<HashKVResponse> reply) {
  Account* account = FindAccount(ctx.account);
  if (auto s = CheckServing(account); !s.ok()) {
    return PostReply<HashKVResponse>(ports_.executor, reply, s);
  }
  const int64_t rev = req.revision() > 0 ? req.revision() : account->durable_rev;
  if (rev > account->durable_rev) {
    return PostReply<HashKVResponse>(ports_.executor, reply, errors::FutureRev());
  }
  if (rev < account->kv.compact_revision()) {
    return PostReply<HashKVResponse>(ports_.executor, reply, errors::Compacted());
  }
  HashKVResponse resp;
  FillHeader(resp.mutable_header());
  resp.mutable_header()->set_revision(account->durable_rev);
  const uint64_t h = account->kv.HashAt(rev);
  resp.set_hash(static_cast<uint32_t>(h ^ (h >> 32)));
  resp.set_compact_revision(account->kv.compact_revision());
  PostReply<HashKVResponse>(ports_.executor, std::move(reply), std::move(resp));
}

}  // namespace geoetcd
