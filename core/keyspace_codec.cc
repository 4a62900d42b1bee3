#include "core/keyspace_codec.h"

namespace geoetcd::codec {
namespace {

void AppendBigEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t ReadBigEndian(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

}  // namespace

bool ValidAccountName(std::string_view account) {
  if (account.empty() || account.size() > 64) return false;
  for (char c : account) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string AccountPrefix(std::string_view account) {
  return "a/" + std::string(account) + "/";
}

std::string CommitPrefix(std::string_view account) { return AccountPrefix(account) + "c/"; }

std::string CommitKey(std::string_view account, int64_t revision) {
  std::string k = CommitPrefix(account);
  AppendBigEndian(&k, static_cast<uint64_t>(revision), 8);
  return k;
}

std::string ForwardMarkerPrefix() { return "n/fwd/"; }

std::string ForwardMarkerKey(uint64_t origin, uint64_t id) {
  std::string k = ForwardMarkerPrefix();
  AppendBigEndian(&k, origin, 8);
  AppendBigEndian(&k, id, 8);
  return k;
}

std::string LogPrefix(std::string_view account) { return AccountPrefix(account) + "g/"; }

std::string LogKey(std::string_view account, uint64_t index) {
  std::string k = LogPrefix(account);
  AppendBigEndian(&k, index, 8);
  return k;
}

bool ParseLogKey(std::string_view account, std::string_view key, uint64_t* index) {
  const std::string prefix = LogPrefix(account);
  if (key.size() != prefix.size() + 8 || key.substr(0, prefix.size()) != prefix) return false;
  uint64_t v = 0;
  for (size_t i = prefix.size(); i < key.size(); ++i) {
    v = (v << 8) | static_cast<unsigned char>(key[i]);
  }
  *index = v;
  return true;
}

std::string VersionPrefix(std::string_view account) { return AccountPrefix(account) + "r/"; }

std::string VersionKey(std::string_view account, VersionId id) {
  std::string k = VersionPrefix(account);
  AppendBigEndian(&k, static_cast<uint64_t>(id.revision), 8);
  AppendBigEndian(&k, static_cast<uint32_t>(id.sub), 4);
  return k;
}

std::string MetaKey(std::string_view account) { return AccountPrefix(account) + "meta"; }

std::string LeasePrefix(std::string_view account) { return AccountPrefix(account) + "l/"; }

std::string LeaseKey(std::string_view account, int64_t lease_id) {
  std::string k = LeasePrefix(account);
  AppendBigEndian(&k, static_cast<uint64_t>(lease_id), 8);
  return k;
}

std::string AlarmsKey(std::string_view account) { return AccountPrefix(account) + "alarms"; }

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<uint8_t>(end.back()) != 0xff) {
      end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return end;  // every byte was 0xff: no upper bound
}

bool ParseVersionKey(std::string_view account, std::string_view key, VersionId* id) {
  const std::string prefix = VersionPrefix(account);
  if (key.size() != prefix.size() + 12 || key.substr(0, prefix.size()) != prefix) return false;
  key.remove_prefix(prefix.size());
  id->revision = static_cast<int64_t>(ReadBigEndian(key, 8));
  id->sub = static_cast<int32_t>(ReadBigEndian(key.substr(8), 4));
  return true;
}

KeyRecord ToRecord(const std::string& key, const KeyVersion& v) {
  KeyRecord r;
  r.set_key(key);
  r.set_hlc(v.hlc);
  r.set_origin(v.origin);
  if (v.tombstone()) {
    r.set_tombstone(true);
    return r;
  }
  r.set_value(v.value.data(), v.value.size());
  r.set_create_revision(v.create_revision);
  r.set_version(v.version);
  r.set_lease(v.lease);
  return r;
}

KeyVersion FromRecord(const KeyRecord& r, VersionId id) {
  KeyVersion v;
  v.mod_revision = id.revision;
  v.sub = id.sub;
  v.hlc = r.hlc();
  v.origin = r.origin();
  if (r.tombstone()) return v;
  v.value = r.value();
  v.create_revision = r.create_revision();
  v.version = r.version();
  v.lease = r.lease();
  return v;
}

}  // namespace geoetcd::codec
