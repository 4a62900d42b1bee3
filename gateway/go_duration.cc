#include "gateway/go_duration.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace geoetcd {
namespace {

constexpr char kDigitsAndPoint[] = "0123456789.";
constexpr char kMicroSign[] = "\xC2\xB5s";  // µs (U+00B5), which Go accepts
constexpr char kGreekMu[] = "\xCE\xBCs";    // μs (U+03BC), which Go accepts

bool IsGoUnit(absl::string_view unit) {
  for (absl::string_view known : {"ns", "us", "ms", "s", "m", "h"}) {
    if (unit == known) return true;
  }
  return unit == kMicroSign || unit == kGreekMu;
}

// Why `text` is not a Go duration, in Go's words. Go reads a sign, then alternating runs of
// a number and of a unit (everything up to the next digit or '.'); the first run that does
// not fit names the error.
absl::Status GoDurationError(absl::string_view text) {
  const auto error = [text](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(why, " duration \"", text, "\""));
  };
  absl::string_view s = text;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  while (!s.empty() && absl::string_view(kDigitsAndPoint).find(s[0]) != absl::string_view::npos) {
    const size_t unit_start = s.find_first_not_of(kDigitsAndPoint);
    if (unit_start == absl::string_view::npos) return error("missing unit in");
    const size_t unit_end = s.find_first_of(kDigitsAndPoint, unit_start);
    const absl::string_view unit = s.substr(unit_start, unit_end - unit_start);
    if (!IsGoUnit(unit)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown unit \"", unit, "\" in duration \"", text, "\""));
    }
    s = unit_end == absl::string_view::npos ? absl::string_view() : s.substr(unit_end);
  }
  return error("invalid");
}

}  // namespace

absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text) {
  const std::string ascii = absl::StrReplaceAll(text, {{kMicroSign, "us"}, {kGreekMu, "us"}});
  absl::Duration duration;
  // absl also reads "inf" and "-inf", which Go does not.
  if (absl::StrContains(ascii, "inf") || !absl::ParseDuration(ascii, &duration)) {
    return GoDurationError(text);
  }
  if (duration > absl::Nanoseconds(std::numeric_limits<int64_t>::max()) ||
      duration < absl::Nanoseconds(std::numeric_limits<int64_t>::min())) {
    return absl::InvalidArgumentError(absl::StrCat("overflow in duration \"", text, "\""));
  }
  return duration;
}

absl::StatusOr<int64_t> ParseGoDurationMs(const std::string& text) {
  absl::StatusOr<absl::Duration> duration = ParseGoDuration(text);
  if (!duration.ok()) return duration.status();
  return absl::ToInt64Milliseconds(*duration);  // Truncates toward zero.
}

}  // namespace geoetcd
