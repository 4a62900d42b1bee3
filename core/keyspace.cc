#include "core/keyspace.h"

#include <algorithm>
#include <utility>

#include "core/check.h"

namespace geoetcd {

KeyRange KeyRange::FromEtcd(std::string_view key, std::string_view range_end) {
  KeyRange r;
  r.begin = std::string(key);
  if (range_end.empty()) {
    r.single = true;
  } else if (range_end == std::string_view("\0", 1)) {
    r.single = false;  // every key >= begin
  } else {
    r.single = false;
    r.end = std::string(range_end);
  }
  return r;
}

bool KeyRange::Contains(std::string_view key) const {
  if (single) return key == begin;
  return key >= begin && (end.empty() || key < end);
}

bool KeyRange::Empty() const { return !single && !end.empty() && end <= begin; }

bool KeyRange::Overlaps(const KeyRange& other) const {
  if (Empty() || other.Empty()) return false;
  if (single) return other.Contains(begin);
  if (other.single) return Contains(other.begin);
  // Two intervals [a, b) and [c, d) overlap iff a < d and c < b (empty end = infinity).
  const bool a_lt_d = other.end.empty() || begin < other.end;
  const bool c_lt_b = end.empty() || other.begin < end;
  return a_lt_d && c_lt_b;
}

const KeyVersion* Keyspace::VisibleAt(const History& h, int64_t rev) {
  // Newest version with mod_revision <= rev.
  auto it = std::upper_bound(h.begin(), h.end(), rev, [](int64_t r, const KeyVersion& v) {
    return r < v.mod_revision;
  });
  if (it == h.begin()) return nullptr;
  --it;
  return it->tombstone() ? nullptr : &*it;
}

const KeyVersion* Keyspace::Get(std::string_view key, int64_t rev) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return nullptr;
  return VisibleAt(it->second, rev);
}

void Keyspace::ForEachLive(const KeyRange& range, int64_t rev, const LiveVisitor& visit) const {
  if (range.single) {
    auto it = keys_.find(range.begin);
    if (it == keys_.end()) return;
    if (const KeyVersion* v = VisibleAt(it->second, rev)) visit(it->first, *v);
    return;
  }
  if (range.Empty()) return;
  for (auto it = keys_.lower_bound(range.begin); it != keys_.end(); ++it) {
    if (!range.end.empty() && it->first >= range.end) break;
    const KeyVersion* v = VisibleAt(it->second, rev);
    if (v != nullptr && !visit(it->first, *v)) break;
  }
}

void Keyspace::BeginCommit(int64_t rev, uint64_t hlc, uint64_t origin) {
  CHECK(commit_rev_ == 0);
  CHECK(rev == revision_ + 1);
  commit_rev_ = rev;
  commit_ops_ = 0;
  commit_hlc_ = hlc;
  commit_origin_ = origin;
}

const KeyVersion& Keyspace::Put(const std::string& key, std::string value, int64_t lease) {
  CHECK(commit_rev_ != 0);
  History& h = keys_[key];
  KeyVersion v;
  v.mod_revision = commit_rev_;
  v.sub = commit_ops_++;
  v.lease = lease;
  v.value = std::move(value);
  v.hlc = commit_hlc_;
  v.origin = commit_origin_;
  const KeyVersion* prev = h.empty() || h.back().tombstone() ? nullptr : &h.back();
  v.create_revision = prev ? prev->create_revision : commit_rev_;
  v.version = prev ? prev->version + 1 : 1;
  if (prev == nullptr) ++live_keys_;
  stored_bytes_ += KeyVersionBytes(key.size(), v.value.size());
  h.push_back(std::move(v));
  return h.back();
}

bool Keyspace::Delete(const std::string& key) {
  CHECK(commit_rev_ != 0);
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.empty() || it->second.back().tombstone()) return false;
  KeyVersion t;
  t.mod_revision = commit_rev_;
  t.sub = commit_ops_++;
  t.hlc = commit_hlc_;
  t.origin = commit_origin_;
  stored_bytes_ += KeyVersionBytes(key.size(), 0);
  --live_keys_;
  it->second.push_back(std::move(t));
  return true;
}

int32_t Keyspace::EndCommit() {
  CHECK(commit_rev_ != 0);
  const int32_t ops = commit_ops_;
  if (ops > 0) revision_ = commit_rev_;
  commit_rev_ = 0;
  commit_ops_ = 0;
  return ops;
}

void Keyspace::Compact(int64_t rev, std::vector<VersionId>* dropped,
                       std::vector<std::string>* removed) {
  CHECK(commit_rev_ == 0);
  CHECK(rev <= revision_);
  for (auto it = keys_.begin(); it != keys_.end();) {
    History& h = it->second;
    // Index of the newest version at or before rev; everything older is superseded.
    size_t keep_from = 0;
    while (keep_from + 1 < h.size() && h[keep_from + 1].mod_revision <= rev) ++keep_from;
    if (h[keep_from].mod_revision > rev) keep_from = 0;  // all versions are newer than rev
    // A delete before `rev` leaves nothing; one at exactly `rev` stays until the next
    // compaction, so a watch starting at `rev` still sees it (etcd #18089, fixed by #18274).
    else if (h[keep_from].tombstone() && h[keep_from].mod_revision < rev) ++keep_from;
    for (size_t i = 0; i < keep_from; ++i) {
      dropped->push_back({h[i].mod_revision, h[i].sub});
      stored_bytes_ -= KeyVersionBytes(it->first.size(), h[i].value.size());
    }
    h.erase(h.begin(), h.begin() + static_cast<std::ptrdiff_t>(keep_from));
    if (h.empty() && removed != nullptr) removed->push_back(it->first);
    it = h.empty() ? keys_.erase(it) : std::next(it);
  }
  compact_revision_ = std::max(compact_revision_, rev);
}

void Keyspace::ForEachNewest(const LiveVisitor& visit) const {
  for (const auto& [key, h] : keys_) {
    if (!h.empty() && !visit(key, h.back())) return;
  }
}

const KeyVersion* Keyspace::Newest(std::string_view key) const {
  auto it = keys_.find(key);
  return it == keys_.end() || it->second.empty() ? nullptr : &it->second.back();
}

const KeyVersion* Keyspace::NewestAt(std::string_view key, int64_t rev) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return nullptr;
  const History& h = it->second;
  for (size_t i = h.size(); i > 0; --i) {
    if (h[i - 1].mod_revision <= rev) return &h[i - 1];
  }
  return nullptr;
}

void Keyspace::ForEachVersion(const LiveVisitor& visit) const {
  for (const auto& [key, h] : keys_) {
    for (const KeyVersion& v : h) {
      if (!visit(key, v)) return;
    }
  }
}

void Keyspace::InstallRegisters(int64_t revision,
                                const std::map<std::string, std::optional<KeyVersion>>& changes) {
  CHECK(!in_commit());
  for (auto& [key, h] : keys_) {
    if (h.size() > 1) h.erase(h.begin(), h.end() - 1);
  }
  for (const auto& [key, version] : changes) {
    if (!version.has_value()) {
      keys_.erase(key);
      continue;
    }
    CHECK(version->mod_revision <= revision);
    History& h = keys_[key];
    h.clear();
    h.push_back(*version);
  }
  stored_bytes_ = 0;
  live_keys_ = 0;
  for (const auto& [key, h] : keys_) {
    stored_bytes_ += KeyVersionBytes(key.size(), h.back().value.size());
    if (!h.back().tombstone()) ++live_keys_;
  }
  revision_ = revision;
  compact_revision_ = revision;
}

void Keyspace::Restore(const std::string& key, KeyVersion version) {
  History& h = keys_[key];
  CHECK(h.empty() || h.back().mod_revision < version.mod_revision);
  revision_ = std::max(revision_, version.mod_revision);
  stored_bytes_ += KeyVersionBytes(key.size(), version.value.size());
  const bool was_live = !h.empty() && !h.back().tombstone();
  live_keys_ += (version.tombstone() ? 0 : 1) - (was_live ? 1 : 0);
  h.push_back(std::move(version));
}

void Keyspace::SetRecoveredRevisions(int64_t revision, int64_t compact_revision) {
  CHECK(revision >= revision_);
  CHECK(compact_revision <= revision);
  revision_ = revision;
  compact_revision_ = compact_revision;
}

void Keyspace::CheckInvariants() const {
  CHECK(compact_revision_ <= revision_);
  int64_t stored_bytes = 0;
  int64_t live_keys = 0;
  for (const auto& [key, h] : keys_) {
    CHECK(!h.empty());
    if (!h.back().tombstone()) ++live_keys;
    for (size_t i = 0; i < h.size(); ++i) {
      const KeyVersion& v = h[i];
      stored_bytes += KeyVersionBytes(key.size(), v.value.size());
      CHECK(v.mod_revision <= revision_);
      if (i > 0) CHECK(h[i - 1].mod_revision < v.mod_revision);
      if (v.tombstone()) continue;
      const bool created_here = i == 0 ? v.version >= 1 : h[i - 1].tombstone();
      if (i > 0 && !h[i - 1].tombstone()) {
        CHECK(v.version == h[i - 1].version + 1);
        CHECK(v.create_revision == h[i - 1].create_revision);
      }
      CHECK(created_here || i > 0);
      CHECK(v.create_revision <= v.mod_revision);
    }
  }
  CHECK(stored_bytes == stored_bytes_);
  CHECK(live_keys == live_keys_);
}

}  // namespace geoetcd
