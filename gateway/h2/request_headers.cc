#include "gateway/h2/request_headers.h"

#include <string>

namespace geoetcd::h2 {
namespace {

// RFC 9113 §8.2.1: 0x00-0x20, 0x41-0x5a and 0x7f-0xff never appear in a field name, and ':'
// only as a pseudo-header's first character.
bool IsNameChar(unsigned char c) {
  return c > 0x20 && c < 0x7f && !(c >= 'A' && c <= 'Z') && c != ':';
}

bool IsWellFormedName(std::string_view name) {
  if (name.empty()) return false;
  if (name[0] == ':') name.remove_prefix(1);
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

bool IsWellFormedValue(std::string_view value) {
  for (unsigned char c : value) {
    if (c == 0 || c == '\r' || c == '\n') return false;
  }
  if (value.empty()) return true;
  const auto ws = [](char c) { return c == ' ' || c == '\t'; };
  return !ws(value.front()) && !ws(value.back());
}

// RFC 9113 §8.2.2: HTTP/1.1 connection management has no place in HTTP/2.
bool IsConnectionSpecific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

}  // namespace

std::string_view HeaderBlockCheck::Add(std::string_view name, std::string_view value) {
  if (!IsWellFormedName(name)) return "malformed field name";
  if (!IsWellFormedValue(value)) return "malformed field value";
  if (name[0] != ':') {
    regular_seen_ = true;
    if (IsConnectionSpecific(name)) return "connection-specific field";
    if (name == "te" && value != "trailers") return "te other than trailers";
    return {};
  }
  if (kind_ == HeaderBlockKind::kTrailers) return "pseudo-header in trailers";
  if (regular_seen_) return "pseudo-header after a regular field";
  bool* seen;
  if (name == ":method") {
    seen = &method_;
    connect_ = value == "CONNECT";
  } else if (name == ":scheme") {
    seen = &scheme_;
  } else if (name == ":path") {
    seen = &path_;
    path_empty_ = value.empty();
  } else if (name == ":authority") {
    seen = &authority_;
  } else {
    return "unknown pseudo-header";
  }
  if (*seen) return "repeated pseudo-header";
  *seen = true;
  return {};
}

std::string_view HeaderBlockCheck::Finish() const {
  if (kind_ == HeaderBlockKind::kTrailers) return {};
  if (!method_) return "no :method";
  if (connect_) return {};  // RFC 9113 §8.5: CONNECT has neither :scheme nor :path
  if (!scheme_ || !path_) return "no :scheme or :path";
  if (path_empty_) return "empty :path";
  return {};
}

std::string_view MalformedReason(const std::vector<HeaderField>& fields, HeaderBlockKind kind) {
  HeaderBlockCheck check(kind);
  for (const HeaderField& f : fields) {
    if (std::string_view reason = check.Add(f.name, f.value); !reason.empty()) return reason;
  }
  return check.Finish();
}

bool IsGrpcMetadata(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.';
    if (!ok) return false;
  }
  if (name.size() >= 4 && name.substr(name.size() - 4) == "-bin") return true;
  for (unsigned char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace geoetcd::h2
