// KvWorkload: simulated etcd clients, each with at most one request outstanding (like
// etcd's robustness tests), issuing Range (point, prefix, limited, historical), Put,
// DeleteRange (point and range), Txn (compare-and-swap chains on mod_revision, multi-key
// writes guarded by a compare) and Compact, recording every invocation and completion in
// the History. A request without a reply before the client's timeout is recorded with an
// unknown outcome ("maybe applied") and the client moves on.
//
// Every written value is unique ("c<client>.<seq>"), which lets the checkers tell which
// write a read observed.
//
// Leases: clients grant leases (mostly with IDs of their own, unique per client, sometimes
// letting the server choose), attach keys to them with Put, keep some alive and leave the
// others to expire, ask their time to live, revoke them, and now and then send a
// keep-alive, time-to-live or revoke for an ID nobody granted.
//
// An extra client, the auditor, reads the whole keyspace on demand (after each restart
// and at the end of the run), so lost acknowledged writes cannot hide.
#ifndef GEOETCD_SIM_WORKLOAD_H_
#define GEOETCD_SIM_WORKLOAD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/random.h"
#include "sim/history.h"
#include "sim/sim_world.h"

namespace geoetcd::sim {

struct KvReply {
  absl::Status status;  // not OK: the error the server returned
  KvResponse response;
};

// How a client reaches the cluster. `reply` runs at most once, in a later event, and not at
// all when the request or its reply is lost.
class KvEndpoint {
 public:
  virtual ~KvEndpoint() = default;
  virtual void Call(int32_t client, const KvCall& call, std::function<void(KvReply)> reply) = 0;
};

struct WorkloadConfig {
  int32_t clients = 8;
  // Lease requests (grant, keep-alive, time-to-live, revoke, put with a lease) are in the
  // mix unless this is false. Granted TTLs are drawn from [1, lease_ttl_max_s] seconds.
  bool leases = true;
  int64_t lease_ttl_max_s = 3;
  // A lease a client grants is left to expire (never kept alive) with this probability.
  double lease_abandon_p = 0.3;
  // Leases a client holds at most.
  size_t leases_held_max = 2;
  int64_t ops = 2000;  // requests issued by the regular clients, in total
  int32_t keys = 16;
  int64_t think_us_max = 10'000;   // pause before each request: uniform in [0, max]
  int64_t timeout_us = 1'000'000;  // a client gives up waiting after this
  int32_t txn_keys_max = 3;        // keys written by one multi-key txn
  // Historical reads pick one of the client's last this-many observed revisions.
  size_t revisions_remembered_max = 32;
};

class KvWorkload {
 public:
  KvWorkload(SimWorld* world, History* history, KvEndpoint* endpoint, WorkloadConfig config,
             Random random);
  KvWorkload(const KvWorkload&) = delete;
  KvWorkload& operator=(const KvWorkload&) = delete;

  // Schedules every regular client's first request.
  void Start();
  // Every request was issued and has completed or timed out.
  bool done() const;
  int64_t issued() const { return issued_; }

  // The auditor reads the whole keyspace unless it is already waiting for a reply.
  void Audit();
  bool auditing() const { return clients_.back().outstanding >= 0; }
  int32_t auditor() const { return config_.clients; }

  static std::string KeyName(int32_t i);
  // A key only `client` writes, with its leases ("k/s<client>.<i>": inside the keyspace,
  // after every KeyName).
  static std::string SessionKey(int32_t client, uint64_t i);
  // The [key, range_end) of the whole keyspace.
  static const char* KeyPrefix() { return "k/"; }
  static const char* KeyPrefixEnd() { return "k0"; }

 private:
  struct HeldLease {
    int64_t id = 0;
    bool kept_alive = true;  // false: left to expire
  };
  struct Client {
    int32_t id = 0;
    Random random{0};
    int64_t outstanding = -1;             // history index of the request awaiting a reply
    int64_t seq = 0;                      // numbers this client's values
    int64_t lease_seq = 0;                // numbers the lease IDs this client picks
    std::map<std::string, int64_t> mods;  // last mod_revision seen per key (0: absent)
    std::vector<int64_t> revisions;       // recently observed header revisions
    std::vector<HeldLease> leases;        // granted to this client, not known to be gone
  };

  void ScheduleNext(Client& c);
  void Issue(Client& c, KvCall call);
  void OnReply(int32_t client, int64_t index, KvReply reply);
  void OnTimeout(int32_t client, int64_t index);
  void Learn(Client& c, const HistoryOp& op);

  KvCall Generate(Client& c);
  // A lease request, or false when the client has no lease for the one it drew.
  bool GenerateLease(Client& c, int pick, KvCall* call);
  void LearnLease(Client& c, const HistoryOp& op);
  void ForgetLease(Client& c, int64_t id);
  std::string NextValue(Client& c);
  std::string RandomKey(Client& c);
  int64_t ObservedRevision(Client& c);

  SimWorld* world_;
  History* history_;
  KvEndpoint* endpoint_;
  WorkloadConfig config_;
  std::vector<Client> clients_;  // the regular clients, then the auditor
  int64_t issued_ = 0;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_WORKLOAD_H_
