// Leases of one account: which exist and which keys each one holds. Lives at the account's
// write region. Not thread-safe: lives on the Node's thread.
#ifndef GEOETCD_CORE_LESSOR_H_
#define GEOETCD_CORE_LESSOR_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "core/kv_store.h"

namespace geoetcd {

class Lessor : public LeaseIndex {
 public:
  bool Exists(int64_t lease_id) const override { return leases_.count(lease_id) != 0; }
  void Attach(int64_t lease_id, const std::string& key) override { keys_[lease_id].insert(key); }
  void Detach(int64_t lease_id, const std::string& key) override;

  // Keys attached to a lease, sorted.
  const std::set<std::string>* KeysOf(int64_t lease_id) const;

 private:
  struct Lease {
    int64_t ttl_s = 0;
  };
  std::map<int64_t, Lease> leases_;
  std::map<int64_t, std::set<std::string>> keys_;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_LESSOR_H_
