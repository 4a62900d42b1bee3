#include "consistency/level.h"

#include <algorithm>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace geoetcd {

namespace {

constexpr Level kLevels[] = {Level::kStrong, Level::kBounded, Level::kSession,
                             Level::kConsistentPrefix, Level::kEventual};

bool ValidAccount(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

// Plain decimal, no sign, no leading zero, at least 1.
template <typename T>
bool ParsePositive(std::string_view s, T* out) {
  if (s.empty() || s.size() > 20 || s[0] == '0' ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), out) && *out >= 1;
}

}  // namespace

const char* LevelName(Level level) {
  switch (level) {
    case Level::kStrong:
      return "strong";
    case Level::kBounded:
      return "bounded";
    case Level::kSession:
      return "session";
    case Level::kConsistentPrefix:
      return "consistent-prefix";
    case Level::kEventual:
      return "eventual";
  }
  return "unknown";
}

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  for (Level level : kLevels) {
    if (name == LevelName(level)) return level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("geoetcd: unknown consistency level \"", std::string(name.substr(0, 64)),
                   "\" (strong, bounded, session, consistent-prefix or eventual)"));
}

absl::StatusOr<Level> EffectiveLevel(Level account, bool serializable,
                                     std::optional<Level> requested) {
  Level level = account;
  if (requested.has_value()) {
    if (*requested > account) {
      return absl::FailedPreconditionError(absl::StrCat(
          "geoetcd: consistency level ", LevelName(*requested),
          " is stronger than the account's level ", LevelName(account)));
    }
    level = *requested;
  }
  if (serializable) level = std::min(level, Level::kConsistentPrefix);
  return level;
}

std::string FormatSessionToken(const SessionToken& token) {
  return absl::StrCat(token.account, ":", token.epoch, ":", token.revision);
}

absl::StatusOr<SessionToken> ParseSessionToken(std::string_view text, std::string_view account) {
  const std::vector<absl::string_view> split =
      absl::StrSplit(absl::string_view(text.data(), text.size()), ':');
  std::vector<std::string_view> parts;
  for (absl::string_view p : split) parts.emplace_back(p.data(), p.size());
  SessionToken token;
  if (parts.size() != 3 || !ValidAccount(parts[0]) || !ParsePositive(parts[1], &token.epoch) ||
      !ParsePositive(parts[2], &token.revision)) {
    return absl::InvalidArgumentError(
        absl::StrCat("geoetcd: malformed session token \"", std::string(text.substr(0, 64)),
                     "\" (want account:epoch:revision)"));
  }
  token.account = std::string(parts[0]);
  if (token.account != account) {
    return absl::InvalidArgumentError(absl::StrCat("geoetcd: session token of account \"",
                                                   token.account, "\" sent for account \"",
                                                   std::string(account), "\""));
  }
  return token;
}

}  // namespace geoetcd
