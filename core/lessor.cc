#include "core/lessor.h"

#include <algorithm>

#include "core/errors.h"

namespace geoetcd {

void Lessor::Detach(int64_t lease_id, const std::string& key) {
  auto it = keys_.find(lease_id);
  if (it == keys_.end()) return;
  it->second.erase(key);
  if (it->second.empty()) keys_.erase(it);
}

absl::StatusOr<int64_t> Lessor::GrantedTtl(int64_t ttl_s) const {
  if (ttl_s > kLeaseTtlMaxS) return errors::LeaseTTLTooLarge();
  return std::max(ttl_s, ttl_min_s_);
}

void Lessor::Grant(int64_t id, int64_t ttl_s, int64_t now_ms) {
  leases_[id] = Lease{ttl_s, now_ms + ttl_s * 1000};
}

void Lessor::Remove(int64_t id) {
  leases_.erase(id);
  keys_.erase(id);
}

int64_t Lessor::Renew(int64_t id, int64_t now_ms) {
  auto it = leases_.find(id);
  if (it == leases_.end() || it->second.expiry_ms <= now_ms) return 0;
  it->second.expiry_ms = now_ms + it->second.ttl_s * 1000;
  return it->second.ttl_s;
}

int64_t Lessor::RemainingS(int64_t id, int64_t now_ms) const {
  auto it = leases_.find(id);
  if (it == leases_.end()) return -1;
  // etcd truncates the nanoseconds left, which are always a little under the TTL once any
  // time has passed: right after a grant or renewal it answers TTL - 1. Milliseconds cannot
  // see that sliver, so a remainder of exactly N whole seconds counts as just under N.
  const int64_t left_ms = it->second.expiry_ms - now_ms;
  return left_ms <= 0 ? 0 : (left_ms - 1) / 1000;
}

int64_t Lessor::GrantedTtlOf(int64_t id) const {
  auto it = leases_.find(id);
  return it == leases_.end() ? 0 : it->second.ttl_s;
}

std::vector<int64_t> Lessor::Expired(int64_t now_ms, size_t max) const {
  std::vector<std::pair<int64_t, int64_t>> due;  // (expiry, id)
  for (const auto& [id, lease] : leases_) {
    if (lease.expiry_ms <= now_ms) due.emplace_back(lease.expiry_ms, id);
  }
  std::sort(due.begin(), due.end());
  std::vector<int64_t> ids;
  for (size_t i = 0; i < due.size() && i < max; ++i) ids.push_back(due[i].second);
  return ids;
}

std::vector<int64_t> Lessor::Ids() const {
  std::vector<int64_t> ids;
  for (const auto& entry : leases_) ids.push_back(entry.first);
  return ids;
}

std::vector<std::string> Lessor::KeysOf(int64_t lease_id) const {
  auto it = keys_.find(lease_id);
  if (it == keys_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

}  // namespace geoetcd
