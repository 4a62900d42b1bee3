// Leases of one account: which exist, when each expires, and which keys each one holds.
// Lives at the account's write region. Expiry is measured on the monotonic clock the
// caller passes in (the Node's Clock port). Not thread-safe: lives on the Node's thread.
#ifndef GEOETCD_CORE_LESSOR_H_
#define GEOETCD_CORE_LESSOR_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/kv_store.h"

namespace geoetcd {

// etcd's MaxLeaseTTL.
inline constexpr int64_t kLeaseTtlMaxS = 9'000'000'000;
// etcd's minimum TTL: ceil(1.5 x the default 1 s election timeout).
inline constexpr int64_t kLeaseTtlMinSDefault = 2;

class Lessor : public LeaseIndex {
 public:
  explicit Lessor(int64_t ttl_min_s = kLeaseTtlMinSDefault) : ttl_min_s_(ttl_min_s) {}

  bool Exists(int64_t lease_id) const override { return leases_.count(lease_id) != 0; }
  void Attach(int64_t lease_id, const std::string& key) override { keys_[lease_id].insert(key); }
  void Detach(int64_t lease_id, const std::string& key) override;

  // The TTL a grant of `ttl_s` gets (raised to the minimum), or etcd's error.
  absl::StatusOr<int64_t> GrantedTtl(int64_t ttl_s) const;
  void Grant(int64_t id, int64_t ttl_s, int64_t now_ms);
  // Forgets the lease and its key attachments (the caller deletes the keys).
  void Remove(int64_t id);
  // Restarts the lease's TTL; returns the TTL, or 0 if the lease is unknown or expired.
  int64_t Renew(int64_t id, int64_t now_ms);
  // Whole seconds left, truncated as etcd does (a full TTL reads TTL - 1); -1 if unknown.
  int64_t RemainingS(int64_t id, int64_t now_ms) const;
  int64_t GrantedTtlOf(int64_t id) const;
  // Leases whose expiry passed, soonest first, at most `max` of them.
  std::vector<int64_t> Expired(int64_t now_ms, size_t max) const;
  std::vector<int64_t> Ids() const;
  // Keys attached to a lease, sorted.
  std::vector<std::string> KeysOf(int64_t lease_id) const;
  size_t size() const { return leases_.size(); }
  // Forgets every lease and attachment (a region adopting another's state).
  void Clear() {
    leases_.clear();
    keys_.clear();
  }

 private:
  struct Lease {
    int64_t ttl_s = 0;
    int64_t expiry_ms = 0;
  };
  int64_t ttl_min_s_;
  std::map<int64_t, Lease> leases_;
  std::map<int64_t, std::set<std::string>> keys_;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_LESSOR_H_
