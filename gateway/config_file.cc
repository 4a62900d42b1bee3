#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "gateway/config_internal.h"
#include "yaml-cpp/yaml.h"

namespace geoetcd::config_internal {
namespace {

// ---------------------------------------------------------------------------------------
// The config file: YAML read by yaml-cpp, of which geoetcd uses the top-level mapping, as
// etcd does: each key is a flag name, each value a scalar or a list of scalars. Nested
// mappings are recognised only so they can be skipped or refused.

struct YamlEntry {
  enum class Shape { kNull, kScalar, kList, kNested };
  std::string key;
  int line = 0;
  Shape shape = Shape::kNull;
  std::string value;               // kScalar
  std::vector<std::string> items;  // kList
};

absl::Status YamlError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", what));
}

int LineOf(const YAML::Node& node) { return node.Mark().line + 1; }

bool IsFlagName(const std::string& key) {
  constexpr char kFlagNameChars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
  return !key.empty() && key.find_first_not_of(kFlagNameChars) == std::string::npos;
}

// Whether the scalar starting at `pos` of `text`, if quoted, has its closing quote. yaml-cpp
// 0.7 accepts a quoted scalar left open at the end of the file (Go's yaml, which etcd uses,
// refuses it), and the value then swallows every setting after it.
bool QuoteClosed(const std::string& text, size_t pos) {
  if (pos >= text.size() || (text[pos] != '\'' && text[pos] != '"')) return true;
  const char quote = text[pos];
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (quote == '"' && text[i] == '\\') {
      ++i;  // an escape: the next character is not the end
    } else if (text[i] == quote) {
      if (quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;  // '' is a quote inside a single-quoted scalar
        continue;
      }
      return true;
    }
  }
  return false;
}

// The shape and text of one setting. `value_bytes` counts the bytes of every value taken
// so far: without aliases they cannot exceed the file, so an alias repeated to blow a
// small file up into gigabytes stops at the file bound instead.
absl::Status ReadYamlValue(const std::string& text, const YAML::Node& value, YamlEntry* entry,
                           int64_t* value_bytes) {
  const auto take = [&](const std::string& text) {
    *value_bytes += static_cast<int64_t>(text.size());
    return *value_bytes <= kConfigFileBytesMax;
  };
  bool within_bound = true;
  if (value.IsScalar() && !QuoteClosed(text, static_cast<size_t>(value.Mark().pos))) {
    return YamlError(LineOf(value), "a quoted value is not closed");
  }
  if (value.IsScalar()) {
    entry->shape = YamlEntry::Shape::kScalar;
    entry->value = value.Scalar();
    within_bound = take(entry->value);
  } else if (value.IsMap()) {
    entry->shape = YamlEntry::Shape::kNested;
  } else if (value.IsSequence()) {
    entry->shape = YamlEntry::Shape::kList;
    for (const YAML::Node& item : value) {
      if (item.IsNull()) continue;
      if (item.IsScalar() && !QuoteClosed(text, static_cast<size_t>(item.Mark().pos))) {
        return YamlError(LineOf(item), "a quoted value is not closed");
      }
      if (!item.IsScalar()) {
        entry->shape = YamlEntry::Shape::kNested;  // A list of lists or mappings.
        entry->items.clear();
        break;
      }
      entry->items.push_back(item.Scalar());
      within_bound = within_bound && take(entry->items.back());
      if (!within_bound) break;
    }
  }
  if (!within_bound) {
    return YamlError(entry->line, absl::StrCat("the values add up to more than ",
                                               kConfigFileBytesMax, " bytes (aliases?)"));
  }
  return absl::OkStatus();
}

// A syntax error as yaml-cpp reports it, at the line it names.
absl::Status YamlSyntaxError(const YAML::Exception& e) {
  if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("invalid YAML: ", e.msg));
  return YamlError(e.mark.line + 1, e.msg);
}

absl::StatusOr<std::vector<YamlEntry>> ParseConfigYaml(const std::string& text) {
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return YamlSyntaxError(e);
  }
  if (documents.size() > 1) {
    return YamlError(LineOf(documents[1]), "a second YAML document (one is the whole config)");
  }
  std::vector<YamlEntry> entries;
  if (documents.empty() || documents[0].IsNull()) return entries;
  const YAML::Node& root = documents[0];
  if (!root.IsMap()) return YamlError(LineOf(root), "expected 'key: value'");
  int64_t value_bytes = 0;
  for (const auto& setting : root) {
    YamlEntry entry;
    entry.line = LineOf(setting.first);
    entry.key = setting.first.IsScalar() ? setting.first.Scalar() : "";
    if (!IsFlagName(entry.key)) {
      return YamlError(entry.line, absl::StrCat("invalid key '", entry.key, "'"));
    }
    absl::Status status = ReadYamlValue(text, setting.second, &entry, &value_bytes);
    if (!status.ok()) return status;
    entries.push_back(std::move(entry));
  }
  return entries;
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open config file \"", path, "\": ", std::strerror(errno)));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
    if (static_cast<int64_t>(text.size()) > kConfigFileBytesMax) break;
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read config file \"", path, "\""));
  }
  if (static_cast<int64_t>(text.size()) > kConfigFileBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file \"", path, "\" is larger than ", kConfigFileBytesMax, " bytes"));
  }
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.erase(0, 3);
  return text;
}

absl::Status ApplyYamlEntry(const YamlEntry& entry, const std::string& where,
                            Collected* collected) {
  std::vector<std::string>& warnings = collected->config.warnings;
  FlagRef ref = LookupFlag(entry.key);
  if (entry.shape == YamlEntry::Shape::kNested && ref.flag == nullptr) {
    std::string line =
        absl::StrCat(where, ": nested block '", entry.key, "' is not supported; ignored");
    if (absl::EndsWith(entry.key, "transport-security")) absl::StrAppend(&line, " (", kNoTls, ")");
    warnings.push_back(std::move(line));
    return absl::OkStatus();
  }
  if (!ref.found()) {
    warnings.push_back(absl::StrCat(where, ": unknown key '", entry.key, "'; ignored"));
    return absl::OkStatus();
  }
  std::string value;
  switch (entry.shape) {
    case YamlEntry::Shape::kNull:
      return absl::OkStatus();  // As in etcd, a key without a value keeps the default.
    case YamlEntry::Shape::kNested:
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": '", entry.key, "' needs a value, not a nested block"));
    case YamlEntry::Shape::kList:
      value = absl::StrJoin(entry.items, ",");
      break;
    case YamlEntry::Shape::kScalar:
      value = entry.value;
      break;
  }
  // etcd reads its YAML into time.Duration fields, where a bare number is nanoseconds.
  if (ref.flag != nullptr && ref.flag->kind == ValueKind::kDuration && AllDigits(value)) {
    absl::StrAppend(&value, "ns");
  }
  absl::Status status = ApplyValue(ref, value, /*check_bool=*/false, collected);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": invalid value \"", value, "\" for ",
                                                   entry.key, ": ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyConfigFile(const std::string& path, Collected* collected) {
  absl::StatusOr<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::vector<YamlEntry>> entries = ParseConfigYaml(*text);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file \"", path, "\" ", entries.status().message()));
  }
  std::map<std::string, int> first_line;
  for (const YamlEntry& entry : *entries) {
    const std::string where = absl::StrCat("config file \"", path, "\" line ", entry.line);
    auto [it, fresh] = first_line.emplace(entry.key, entry.line);
    if (!fresh) {
      collected->config.warnings.push_back(absl::StrCat(
          where, ": key '", entry.key, "' repeats line ", it->second, "; the later value wins"));
    }
    absl::Status status = ApplyYamlEntry(entry, where, collected);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace geoetcd::config_internal
