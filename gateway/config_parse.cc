#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "gateway/config_internal.h"

// Values from the command line (Go flag package syntax) and from ETCD_* variables.
namespace geoetcd::config_internal {
namespace {

void WarnIgnored(const IgnoredFlag& ignored, Collected* collected) {
  if (!collected->ignored_warned.insert(ignored.name).second) return;
  std::string line = absl::StrCat("flag --", ignored.name, " has no effect in geoetcd; ignored");
  if (*ignored.why != '\0') absl::StrAppend(&line, " (", ignored.why, ")");
  collected->config.warnings.push_back(std::move(line));
}

absl::Status NotAFlag(absl::string_view arg, absl::string_view previous_bool_flag) {
  std::string message = absl::StrCat("\"", arg, "\" is not a valid flag");
  if (!previous_bool_flag.empty()) {
    absl::StrAppend(&message, " (a bool flag takes its value as --", previous_bool_flag, "=", arg,
                    ")");
  }
  return absl::InvalidArgumentError(message);
}

// One argv entry as Go's flag package reads it: -name, --name, -name=value, --name=value.
struct FlagArg {
  absl::string_view name;
  std::optional<absl::string_view> value;  // after '=', when given so
};

absl::StatusOr<FlagArg> SplitFlagArg(absl::string_view arg, absl::string_view previous_bool_flag) {
  if (arg.size() < 2 || arg[0] != '-') return NotAFlag(arg, previous_bool_flag);
  absl::string_view body = arg.substr(arg[1] == '-' ? 2 : 1);
  if (body.empty() || body[0] == '-' || body[0] == '=') {
    return absl::InvalidArgumentError(absl::StrCat("bad flag syntax: ", arg));
  }
  FlagArg flag_arg{body, std::nullopt};
  if (size_t eq = body.find('='); eq != absl::string_view::npos) {
    flag_arg.name = body.substr(0, eq);
    flag_arg.value = body.substr(eq + 1);
  }
  return flag_arg;
}

}  // namespace

absl::Status ApplyValue(const FlagRef& ref, absl::string_view value, bool check_bool,
                        Collected* collected) {
  if (ref.flag != nullptr) {
    absl::Status status = ref.flag->set(value, &collected->config);
    if (status.ok()) collected->explicitly_set.insert(ref.flag->name);
    return status;
  }
  if (check_bool && ref.ignored->kind == IgnoredKind::kBool && !ParseGoBool(value)) {
    return absl::InvalidArgumentError("not a bool (use true or false)");
  }
  WarnIgnored(*ref.ignored, collected);
  return absl::OkStatus();
}

absl::Status ValueError(absl::string_view value, absl::string_view where,
                        const absl::Status& cause) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value \"", value, "\" for ", where, ": ", cause.message()));
}

absl::Status ParseArgv(int argc, const char* const* argv, ArgvResult* result) {
  std::string previous_bool_flag;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      return i + 1 < argc ? NotAFlag(argv[i + 1], "") : absl::OkStatus();
    }
    absl::StatusOr<FlagArg> flag_arg = SplitFlagArg(arg, previous_bool_flag);
    if (!flag_arg.ok()) return flag_arg.status();
    const absl::string_view name = flag_arg->name;
    std::optional<absl::string_view> value = flag_arg->value;
    previous_bool_flag.clear();
    if (name == "h" || name == "help") {
      result->help = true;  // Go's flag package stops at -help.
      return absl::OkStatus();
    }
    const bool is_config_file = name == kConfigFileFlag;
    FlagRef ref = LookupFlag(name);
    if (name != kVersionFlag && !is_config_file && !ref.found()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag: --", name));
    }
    const bool takes_value = is_config_file || (name != kVersionFlag && ref.takes_value());
    if (!value.has_value()) {
      if (takes_value) {
        if (i + 1 >= argc) {
          return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: --", name));
        }
        value = argv[++i];
      } else {
        value = "true";
        previous_bool_flag = std::string(name);
      }
    }
    if (name == kVersionFlag) {
      std::optional<bool> on = ParseGoBool(*value);
      if (!on) return ValueError(*value, "--version", absl::InvalidArgumentError("not a bool"));
      result->version = *on;
      continue;
    }
    if (is_config_file) {
      result->config_file = std::string(*value);
      continue;
    }
    if (result->names_given.insert(std::string(name)).second) {
      result->flags_given.push_back(absl::StrCat("--", name));
    }
    if (ref.flag != nullptr) result->setters_given.insert(ref.flag->set);
    absl::Status status = ApplyValue(ref, *value, /*check_bool=*/true, &result->collected);
    if (!status.ok()) return ValueError(*value, absl::StrCat("--", name), status);
  }
  return absl::OkStatus();
}

absl::Status ApplyEnvironment(const std::map<std::string, std::string>& env, const ArgvResult& argv,
                              Collected* collected) {
  std::vector<std::string>& warnings = collected->config.warnings;
  for (const auto& [key, value] : env) {
    if (!absl::StartsWith(key, kEnvPrefix) || key == FlagToEnv(kConfigFileFlag)) continue;
    if (key == FlagToEnv(kVersionFlag)) {
      if (!value.empty()) {
        warnings.push_back(absl::StrCat("environment variable ", key, " cannot be set; ignored"));
      }
      continue;
    }
    std::string name = absl::AsciiStrToLower(key.substr(std::strlen(kEnvPrefix)));
    absl::StrReplaceAll({{"_", "-"}}, &name);
    FlagRef ref = LookupFlag(name);
    if (!ref.found() || FlagToEnv(name) != key) {
      warnings.push_back(absl::StrCat("unrecognized environment variable ", key, "; ignored"));
      continue;
    }
    const bool shadowed = argv.names_given.count(name) > 0 ||
                          (ref.flag != nullptr && argv.setters_given.count(ref.flag->set) > 0);
    if (shadowed) {
      warnings.push_back(absl::StrCat("environment variable ", key,
                                      " is shadowed by a command-line flag; ignored"));
      continue;
    }
    if (value.empty()) continue;
    absl::Status status = ApplyValue(ref, value, /*check_bool=*/true, collected);
    if (!status.ok()) return ValueError(value, key, status);
  }
  return absl::OkStatus();
}

}  // namespace geoetcd::config_internal
