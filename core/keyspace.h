// The MVCC keyspace of one account: every key's versions since the last compaction, in
// memory, with etcd's revision semantics. The durable copy lives in Storage (see
// core/keyspace_codec.h); this index is rebuilt from it at startup.
//
// Revisions: the store starts at revision 1 (as etcd). A commit at revision R writes any
// number of key versions, each with a sub-revision (its index in the commit). Reads name a
// revision and see the newest version of each key with mod_revision <= it.
//
// Not thread-safe: lives on the Node's thread.
#ifndef GEOETCD_CORE_KEYSPACE_H_
#define GEOETCD_CORE_KEYSPACE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "core/bytes.h"

namespace geoetcd {

// The bytes one stored key version counts for in its account's size (core/quota.h): key and
// value plus etcd's per-key estimate (kvOverhead in server/etcdserver/quota.go).
inline constexpr int64_t kKeyVersionOverheadBytes = 256;
inline int64_t KeyVersionBytes(size_t key_bytes, size_t value_bytes) {
  return static_cast<int64_t>(key_bytes + value_bytes) + kKeyVersionOverheadBytes;
}

// One version of a key. A tombstone (delete) has version == 0.
struct KeyVersion {
  int64_t mod_revision = 0;
  int32_t sub = 0;
  int64_t create_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
  Bytes value;
  // The register stamp (crdt/register.h) of the commit that wrote this version.
  uint64_t hlc = 0;
  uint64_t origin = 0;

  bool tombstone() const { return version == 0; }
};

// A half-open key interval [begin, end) in etcd's conventions, already normalized:
// `end` empty with `single` set means the key `begin` alone; `end` empty otherwise means
// no upper bound.
struct KeyRange {
  std::string begin;
  std::string end;
  bool single = true;

  // From etcd's (key, range_end): empty range_end -> single key; "\0" -> every key >= key.
  static KeyRange FromEtcd(std::string_view key, std::string_view range_end);
  bool Contains(std::string_view key) const;
  // True when the range can hold no key (range_end <= key).
  bool Empty() const;
  bool Overlaps(const KeyRange& other) const;
};

// Identifies a stored key version: (mod_revision, sub).
struct VersionId {
  int64_t revision;
  int32_t sub;
  bool operator<(const VersionId& o) const {
    return revision != o.revision ? revision < o.revision : sub < o.sub;
  }
  bool operator==(const VersionId& o) const { return revision == o.revision && sub == o.sub; }
};

class Keyspace {
 public:
  using LiveVisitor = std::function<bool(const std::string& key, const KeyVersion& kv)>;

  Keyspace() = default;
  Keyspace(const Keyspace&) = delete;
  Keyspace& operator=(const Keyspace&) = delete;

  // The newest revision applied (1 on an empty store).
  int64_t revision() const { return revision_; }
  int64_t compact_revision() const { return compact_revision_; }
  size_t key_count() const { return keys_.size(); }
  // Keys whose newest version is not a tombstone (etcd's etcd_debugging_mvcc_keys_total),
  // maintained on every change.
  int64_t live_key_count() const { return live_keys_; }
  // Sum of KeyVersionBytes over every version held (tombstones included): what the history
  // since the last compaction stores, maintained on every change.
  int64_t stored_bytes() const { return stored_bytes_; }

  // The live version of `key` at `rev`, or nullptr if absent or deleted then.
  // REQUIRES: compact_revision() <= rev <= revision().
  const KeyVersion* Get(std::string_view key, int64_t rev) const;

  // Visits the live keys of `range` at `rev` in ascending key order until `visit` returns
  // false. REQUIRES: compact_revision() <= rev <= revision().
  void ForEachLive(const KeyRange& range, int64_t rev, const LiveVisitor& visit) const;

  // --- Mutations. A commit calls BeginCommit, then Put/Delete in op order, then EndCommit.
  // The first commit after recovery must be revision() + 1.
  // `hlc` and `origin` stamp every version the commit writes (its register stamp).
  void BeginCommit(int64_t rev, uint64_t hlc = 0, uint64_t origin = 0);
  // Returns the version written (its create_revision/version follow etcd's rules).
  const KeyVersion& Put(const std::string& key, std::string value, int64_t lease);
  // Writes a tombstone if the key is live at the commit's view; returns whether it was.
  bool Delete(const std::string& key);
  // Ends the commit. Returns the number of versions it wrote; a commit that wrote nothing
  // does not advance revision() (etcd: a txn without changes keeps the revision).
  int32_t EndCommit();
  bool in_commit() const { return commit_rev_ != 0; }

  // Drops every version superseded at or before `rev`, and keys whose newest version before
  // `rev` is a tombstone. A tombstone at exactly `rev` is kept (until a later compaction) so
  // that history from `rev` on stays complete for watchers. Reports each dropped version.
  // A `rev` at or below compact_revision() happens only after InstallRegisters: the
  // registers adopted then still hold the tombstones older than the install revision that
  // the write region drops at its later compactions, and this drops them the same way
  // (the compaction point stays). REQUIRES: not in a commit, rev <= revision().
  // `removed`, when given, receives the keys that no longer exist afterwards.
  void Compact(int64_t rev, std::vector<VersionId>* dropped,
               std::vector<std::string>* removed = nullptr);
  // Visits every key with its newest version (a tombstone included) in ascending key
  // order: the key's register.
  void ForEachNewest(const LiveVisitor& visit) const;
  // The newest version of `key` (a tombstone included), or nullptr when it has none.
  const KeyVersion* Newest(std::string_view key) const;
  // The newest version of `key` with mod_revision <= `rev` (a tombstone included): the
  // key's register as of `rev`, or nullptr when it had none then. Exact for any `rev` since
  // the last compaction; below it, a key whose register then was a compacted tombstone
  // reads as absent.
  const KeyVersion* NewestAt(std::string_view key, int64_t rev) const;
  // Visits every stored version of every key, ascending by key then revision, until
  // `visit` returns false.
  void ForEachVersion(const LiveVisitor& visit) const;

  // --- Repair (core/node_repair.cc): the keyspace becomes another region's registers at
  // `revision`. Every key keeps only its newest version, except that the keys in
  // `changes` take the given version instead or (nullopt) disappear; revision() and
  // compact_revision() both become `revision`, so no history below it is readable.
  // REQUIRES: not in a commit; every change's version has mod_revision <= revision.
  void InstallRegisters(int64_t revision,
                        const std::map<std::string, std::optional<KeyVersion>>& changes);

  // --- Recovery: versions must arrive in ascending (revision, sub) order.
  void Restore(const std::string& key, KeyVersion version);
  void SetRecoveredRevisions(int64_t revision, int64_t compact_revision);

  // Verifies ordering invariants of every key's history; aborts on corruption.
  void CheckInvariants() const;

 private:
  // Ascending mod_revision. Most keys hold one version between compactions, so it lives
  // inline in the map node: one allocation per key fewer (about 8% of RSS at 1M keys).
  using History = absl::InlinedVector<KeyVersion, 1>;
  static const KeyVersion* VisibleAt(const History& h, int64_t rev);

  std::map<std::string, History, std::less<>> keys_;
  int64_t revision_ = 1;
  // etcd starts at -1: compacting at revision 0 or 1 of a fresh store succeeds.
  int64_t compact_revision_ = -1;
  int64_t stored_bytes_ = 0;
  int64_t live_keys_ = 0;
  int64_t commit_rev_ = 0;  // non-zero while a commit is open
  int32_t commit_ops_ = 0;
  uint64_t commit_hlc_ = 0;
  uint64_t commit_origin_ = 0;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_KEYSPACE_H_
