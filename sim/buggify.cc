#include "sim/buggify.h"

#include "core/check.h"

namespace geoetcd::sim {

bool Buggify::Active(const std::string& site) {
  if (!enabled_) return false;
  auto [it, inserted] = active_.try_emplace(site, false);
  if (inserted) it->second = random_.Chance(kSiteActivatedP);
  return it->second;
}

bool Buggify::Fires(const std::string& site) { return Active(site) && random_.Chance(kSiteFiresP); }

int64_t Buggify::Tunable(const std::string& site, int64_t normal, int64_t lo, int64_t hi) {
  CHECK(lo <= hi);
  if (!Active(site)) return normal;
  auto [it, inserted] = tunables_.try_emplace(site, 0);
  if (inserted) it->second = random_.Range(lo, hi);
  return it->second;
}

int64_t Buggify::Choice(const std::string& site, int64_t normal,
                        const std::vector<int64_t>& choices) {
  CHECK(!choices.empty());
  if (!Active(site)) return normal;
  auto [it, inserted] = tunables_.try_emplace(site, 0);
  if (inserted) it->second = choices[random_.Uniform(choices.size())];
  return it->second;
}

}  // namespace geoetcd::sim
