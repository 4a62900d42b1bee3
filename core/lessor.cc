#include "core/lessor.h"

namespace geoetcd {

void Lessor::Detach(int64_t lease_id, const std::string& key) {
  auto it = keys_.find(lease_id);
  if (it == keys_.end()) return;
  it->second.erase(key);
  if (it->second.empty()) keys_.erase(it);
}

const std::set<std::string>* Lessor::KeysOf(int64_t lease_id) const {
  auto it = keys_.find(lease_id);
  return it == keys_.end() ? nullptr : &it->second;
}

}  // namespace geoetcd
