// Go's time.ParseDuration, which etcd's flags and config file use for every duration, read
// with absl::ParseDuration (abseil takes Go's syntax). Shared by the server's configuration
// (gateway/config.h) and geoetcd-bench (bench/options.h), so both read "1h30m" alike.
#ifndef GEOETCD_GATEWAY_GO_DURATION_H_
#define GEOETCD_GATEWAY_GO_DURATION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace geoetcd {

// Go's time.ParseDuration ("10m", "1h30m", "5s", "100ms", "1.5s", ".5s", "1500us", "1500µs",
// "0", "-2s"), within Go's range of an int64 count of nanoseconds. Errors are InvalidArgument
// in Go's words: `invalid duration "x"`, `missing unit in duration "5"`,
// `unknown unit "x" in duration "5x"`, and `overflow in duration "..."` past Go's range.
absl::StatusOr<absl::Duration> ParseGoDuration(absl::string_view text);

// ParseGoDuration in whole milliseconds, truncated toward zero ("999999ns" is 0).
absl::StatusOr<int64_t> ParseGoDurationMs(const std::string& text);

}  // namespace geoetcd

#endif  // GEOETCD_GATEWAY_GO_DURATION_H_
