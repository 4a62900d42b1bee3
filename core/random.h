// A seeded, deterministic pseudo-random generator (xoshiro256**). The only source of
// randomness allowed under core/, crdt/ and consistency/.
#ifndef GEOETCD_CORE_RANDOM_H_
#define GEOETCD_CORE_RANDOM_H_

#include <cstdint>

namespace geoetcd {

class Random {
 public:
  explicit Random(uint64_t seed);

  uint64_t Next();
  // Uniform in [0, n); n must be > 0.
  uint64_t Uniform(uint64_t n);
  // Uniform in [lo, hi]; requires lo <= hi.
  int64_t Range(int64_t lo, int64_t hi);
  // True with probability p.
  bool Chance(double p);
  double NextDouble();  // [0, 1)
  // An independent generator derived from this one; advances this one.
  Random Fork();

 private:
  uint64_t s_[4];
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_RANDOM_H_
