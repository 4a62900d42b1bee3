// Cosmos DB's five consistency levels as geoetcd serves them (ARCHITECTURE.md §3), the rule
// by which a request may weaken its account's level, and the session token that carries a
// session's position between requests. Pure functions; the read gate (read_gate.h) decides
// from them how a read at one region is served.
#ifndef GEOETCD_CONSISTENCY_LEVEL_H_
#define GEOETCD_CONSISTENCY_LEVEL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace geoetcd {

// Ordered from weakest to strongest: a level is at least as strong as every level below.
enum class Level {
  kEventual = 0,
  kConsistentPrefix = 1,
  kSession = 2,
  kBounded = 3,
  kStrong = 4,
};

// "strong", "bounded", "session", "consistent-prefix", "eventual": the names of
// `--consistency` and of the `geoetcd-consistency` request metadata.
const char* LevelName(Level level);
// InvalidArgument naming the value and the five names for anything else.
absl::StatusOr<Level> ParseLevel(std::string_view name);

// The level one read is served at: the account's, weakened by the request. A request may
// name any level not stronger than its account's (`requested`, from `geoetcd-consistency`);
// a stronger one is FailedPrecondition naming both levels. etcd's `serializable = true`
// means at most consistent prefix.
absl::StatusOr<Level> EffectiveLevel(Level account, bool serializable,
                                     std::optional<Level> requested);

// A session's position: `<account>:<epoch>:<revision>` in the `geoetcd-session` metadata.
// A read that sends it back is served at least at `revision` (in `epoch`) in any region.
struct SessionToken {
  std::string account;
  uint64_t epoch = 0;
  int64_t revision = 0;

  friend bool operator==(const SessionToken& a, const SessionToken& b) {
    return a.account == b.account && a.epoch == b.epoch && a.revision == b.revision;
  }
};

std::string FormatSessionToken(const SessionToken& token);
// InvalidArgument (quoting at most 64 bytes of the token) unless `text` is exactly
// account:epoch:revision with a valid account name (1..64 of [A-Za-z0-9_.-]), epoch >= 1
// and revision >= 1 in plain decimal without sign or leading zeros, or when it names
// another account than `account`.
absl::StatusOr<SessionToken> ParseSessionToken(std::string_view text, std::string_view account);

}  // namespace geoetcd

#endif  // GEOETCD_CONSISTENCY_LEVEL_H_
