// Internal to gateway/config*.cc: the pieces ParseServerFlags (config.h) is made of, shared
// between the files that hold them. Not for use outside the config files.
//
//   config_flags.cc     the flag tables (etcd's flags, those geoetcd ignores) and --help
//   config_parse.cc     values from argv (Go flag syntax) and ETCD_* variables
//   config_file.cc      values from the --config-file YAML (yaml-cpp)
//   config_validate.cc  URLs, ranges and cross-flag rules, once every source is applied
//   config.cc           ParseServerFlags: which sources, in which order; --version
#ifndef GEOETCD_GATEWAY_CONFIG_INTERNAL_H_
#define GEOETCD_GATEWAY_CONFIG_INTERNAL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gateway/config.h"

namespace geoetcd::config_internal {

inline constexpr char kEnvPrefix[] = "ETCD_";
// Handled by the parser itself rather than through the tables.
inline constexpr char kConfigFileFlag[] = "config-file";
inline constexpr char kVersionFlag[] = "version";
inline constexpr char kNoTls[] = "TLS is not supported yet";

// ---------------------------------------------------------------------------------------
// Scalars in Go's spelling (config_flags.cc).

bool AllDigits(absl::string_view s);
// Strips spaces and tabs, and a trailing '\r'.
absl::string_view Trim(absl::string_view s);
// strconv.ParseBool.
std::optional<bool> ParseGoBool(absl::string_view s);
// A non-negative decimal integer; a leading '+' is allowed, as in Go.
absl::Status ParseCount(absl::string_view s, int64_t* out);

// ---------------------------------------------------------------------------------------
// The flag tables (config_flags.cc).

enum class ValueKind { kString, kCount, kUrls, kDuration, kEnum };
using Setter = absl::Status (*)(absl::string_view value, ServerConfig* config);

struct Flag {
  const char* name;
  ValueKind kind;
  Setter set;
  const char* section;       // --help grouping
  const char* default_text;  // as --help shows it
  const char* help;
};

// etcd flags that geoetcd accepts but does not act on.
enum class IgnoredKind {
  kValue,   // takes a value
  kBool,    // Go bool flag: bare, or =true/=false
  kLegacy,  // etcd's own ignored pre-v2 flags: bool-like, any value after '='
};

struct IgnoredFlag {
  const char* name;
  IgnoredKind kind;
  const char* why;  // appended to the warning when non-empty
};

struct FlagRef {
  const Flag* flag = nullptr;
  const IgnoredFlag* ignored = nullptr;

  bool found() const { return flag != nullptr || ignored != nullptr; }
  bool takes_value() const { return flag != nullptr || ignored->kind == IgnoredKind::kValue; }
};

// The flag named `name` (without dashes) in either table; found() is false for neither.
FlagRef LookupFlag(absl::string_view name);
// --foo-bar <-> ETCD_FOO_BAR.
std::string FlagToEnv(absl::string_view name);

// ---------------------------------------------------------------------------------------
// Values from one source: argv + env, or the config file (config_parse.cc).

struct Collected {
  ServerConfig config;
  std::set<std::string> explicitly_set;  // meaningful flag names given a value
  std::set<std::string> ignored_warned;
};

// Sets a flag's value. For an ignored flag only records the warning; `check_bool` asks for
// Go bool syntax on ignored bool flags (argv and env; YAML has its own booleans).
absl::Status ApplyValue(const FlagRef& ref, absl::string_view value, bool check_bool,
                        Collected* collected);

// `invalid value "<value>" for <where>: <cause>`.
absl::Status ValueError(absl::string_view value, absl::string_view where,
                        const absl::Status& cause);

struct ArgvResult {
  bool help = false;
  bool version = false;
  std::string config_file;
  std::vector<std::string> flags_given;  // in order, for the --config-file warning
  std::set<Setter> setters_given;        // shadows env for the flag and its aliases
  std::set<std::string> names_given;
  Collected collected;
};

// argv in Go flag package syntax; argv[0] is the program.
absl::Status ParseArgv(int argc, const char* const* argv, ArgvResult* result);

// ETCD_* variables for flags argv did not give, as etcd's flags.SetFlagsFromEnv.
absl::Status ApplyEnvironment(const std::map<std::string, std::string>& env, const ArgvResult& argv,
                              Collected* collected);

// ---------------------------------------------------------------------------------------
// The config file (config_file.cc): reads `path` (at most kConfigFileBytesMax bytes) and
// applies its settings. Errors and warnings name the file and the line.
absl::Status ApplyConfigFile(const std::string& path, Collected* collected);

// ---------------------------------------------------------------------------------------
// Cross-field defaults and validation, after all sources are applied (config_validate.cc).
// `from_flags` is false for the config file, where etcd keeps its default advertise URL.
absl::Status Finalize(bool from_flags, Collected* collected);

}  // namespace geoetcd::config_internal

#endif  // GEOETCD_GATEWAY_CONFIG_INTERNAL_H_
