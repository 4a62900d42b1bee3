#include "gateway/config.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gateway/config_internal.h"

extern char** environ;

// ParseServerFlags: which sources count, in which order (config_internal.h names the files
// that read each), and --version.
namespace geoetcd {
namespace {

using config_internal::ApplyConfigFile;
using config_internal::ApplyEnvironment;
using config_internal::ArgvResult;
using config_internal::Collected;
using config_internal::Finalize;
using config_internal::FlagToEnv;
using config_internal::kConfigFileFlag;
using config_internal::kEnvPrefix;
using config_internal::ParseArgv;

constexpr char kGeoetcdVersion[] = "0.1.0";
constexpr char kEtcdApiVersion[] = "3.5";

std::vector<std::string> EnvIgnoredByConfigFile(const std::map<std::string, std::string>& env) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : env) {
    if (absl::StartsWith(key, kEnvPrefix) && !value.empty() && key != FlagToEnv(kConfigFileFlag)) {
      keys.push_back(key);
    }
  }
  return keys;
}

absl::StatusOr<ServerConfig> ConfigFromFile(const std::string& path, bool path_from_env,
                                            const ArgvResult& argv,
                                            const std::map<std::string, std::string>& env) {
  Collected collected;
  absl::Status status = ApplyConfigFile(path, &collected);
  if (status.ok()) status = Finalize(/*from_flags=*/false, &collected);
  if (!status.ok()) return status;
  ServerConfig config = std::move(collected.config);
  config.config_file = path;
  const char* const source = path_from_env ? "ETCD_CONFIG_FILE" : "--config-file";
  std::vector<std::string> notices;
  if (!argv.flags_given.empty()) {
    notices.push_back(absl::StrCat(source, " is set, so these command-line flags are ignored: ",
                                   absl::StrJoin(argv.flags_given, ", ")));
  }
  std::vector<std::string> env_keys = EnvIgnoredByConfigFile(env);
  if (!env_keys.empty()) {
    notices.push_back(absl::StrCat(source, " is set, so these environment variables are ",
                                   "ignored: ", absl::StrJoin(env_keys, ", ")));
  }
  config.warnings.insert(config.warnings.begin(), notices.begin(), notices.end());
  return config;
}

}  // namespace

absl::StatusOr<ParseOutcome> ParseServerFlags(int argc, const char* const* argv,
                                              const std::map<std::string, std::string>& env) {
  if (argc > 1 &&
      (absl::string_view(argv[1]) == "gateway" || absl::string_view(argv[1]) == "grpc-proxy")) {
    return absl::UnimplementedError(
        absl::StrCat("the etcd subcommand '", argv[1], "' is not supported by geoetcd"));
  }
  ArgvResult argv_result;
  absl::Status status = ParseArgv(argc, argv, &argv_result);
  if (!status.ok()) return status;
  ParseOutcome outcome;
  if (argv_result.help) {
    outcome.kind = ParseOutcome::kHelp;
    outcome.help_text = HelpText();
    return outcome;
  }
  if (argv_result.version) {
    outcome.kind = ParseOutcome::kVersion;
    return outcome;
  }
  std::string config_file = argv_result.config_file;
  const bool path_from_env = config_file.empty();
  if (path_from_env) {
    auto it = env.find(FlagToEnv(kConfigFileFlag));
    if (it != env.end()) config_file = it->second;
  }
  if (!config_file.empty()) {
    absl::StatusOr<ServerConfig> config =
        ConfigFromFile(config_file, path_from_env, argv_result, env);
    if (!config.ok()) return config.status();
    outcome.config = *std::move(config);
    return outcome;
  }
  Collected& collected = argv_result.collected;
  status = ApplyEnvironment(env, argv_result, &collected);
  if (status.ok()) status = Finalize(/*from_flags=*/true, &collected);
  if (!status.ok()) return status;
  outcome.config = std::move(collected.config);
  return outcome;
}

std::map<std::string, std::string> CurrentEnvironment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    absl::string_view text = *entry;
    const size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
  }
  return env;
}

std::string VersionText() {
#if defined(__x86_64__)
  constexpr char kArch[] = "amd64";
#elif defined(__aarch64__)
  constexpr char kArch[] = "arm64";
#else
  constexpr char kArch[] = "unknown";
#endif
#if defined(__linux__)
  constexpr char kOs[] = "linux";
#elif defined(__APPLE__)
  constexpr char kOs[] = "darwin";
#else
  constexpr char kOs[] = "unknown";
#endif
#ifdef GEOETCD_GIT_SHA
  constexpr char kGitSha[] = GEOETCD_GIT_SHA;
#else
  constexpr char kGitSha[] = "not provided";
#endif
  return absl::StrCat("geoetcd Version: ", kGeoetcdVersion, "\n",
                      "API version (etcd compatible): ", kEtcdApiVersion, "\n",
                      "Git SHA: ", kGitSha, "\n", "Compiler: C++ ", __VERSION__, "\n",
                      "OS/Arch: ", kOs, "/", kArch, "\n");
}

}  // namespace geoetcd
