// BUGGIFY, after FoundationDB's flow: named fault sites and randomized tunables, switched
// on per run from the seed.
//
// - A run is buggified or not (decided once from the seed; half of all runs are).
// - In a buggified run each site is activated with P = 0.25 the first time it is reached
//   and stays so for the run (so one run hammers a few sites instead of sprinkling all).
// - An active site fires with P = 0.25 each time it is evaluated.
// - Tunables take their production value unless the run is buggified and their site is
//   active; then they take a random value from the given range, fixed for the run.
// Decisions are memoized by site name (never by address), so a run replays exactly.
#ifndef GEOETCD_SIM_BUGGIFY_H_
#define GEOETCD_SIM_BUGGIFY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/random.h"

namespace geoetcd::sim {

class Buggify {
 public:
  static constexpr double kSiteActivatedP = 0.25;
  static constexpr double kSiteFiresP = 0.25;

  Buggify(bool enabled, Random random) : enabled_(enabled), random_(std::move(random)) {}

  bool enabled() const { return enabled_; }
  // True when `site` is active in this run and fires this time.
  bool Fires(const std::string& site);
  // Whether `site` is active in this run (activating it on first use).
  bool Active(const std::string& site);
  // `normal` unless `site` is active; then a value from [lo, hi] fixed for the run.
  int64_t Tunable(const std::string& site, int64_t normal, int64_t lo, int64_t hi);
  // One of `choices` fixed for the run when `site` is active, else `normal`.
  int64_t Choice(const std::string& site, int64_t normal, const std::vector<int64_t>& choices);

  // Sites reached so far and whether each is active, for the run's summary.
  const std::map<std::string, bool>& sites() const { return active_; }

 private:
  bool enabled_;
  Random random_;
  std::map<std::string, bool> active_;
  std::map<std::string, int64_t> tunables_;
};

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_BUGGIFY_H_
