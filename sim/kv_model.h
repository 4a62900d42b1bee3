// KvModel: a sequential model of etcd's KV semantics for the checkers: the specification a
// history is judged against. Deliberately written apart from core/kv_store so a bug there
// is not repeated here; it covers the subset of etcd the simulated workload uses (no
// sorting, filters, count_only or keys_only; single-key or range compares on version,
// create, mod, value and lease). Keys may carry leases: a lease's revocation (or expiry)
// deletes every key attached to it in one commit, and a revoked lease takes no more keys.
// Whether a lease exists is not modelled otherwise (grants and revocations of leases
// without keys make no revision); sim/lease_checker.cc judges the rest.
//
// It is an MVCC store: every version is kept, so a read at an old revision and undoing
// commits (TruncateTo, for the checker's backtracking search) are both cheap.
#ifndef GEOETCD_SIM_KV_MODEL_H_
#define GEOETCD_SIM_KV_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "etcd/etcdserverpb/rpc.pb.h"

namespace geoetcd::sim {

class KvModel {
 public:
  struct Version {
    int64_t mod_revision = 0;
    int64_t create_revision = 0;
    int64_t version = 0;  // 0: a delete (tombstone)
    std::string value;
    int64_t lease = 0;
  };

  // The newest revision (1 on an empty store, as etcd).
  int64_t revision() const { return revision_; }

  // Whether the model implements everything `op` uses.
  static bool Supports(const etcdserverpb::RequestOp& op);

  // Applies `op` at the head, as one commit at revision() + 1 if it changes anything (a
  // Range never does). Returns etcd's response; only the top-level header carries a
  // revision. REQUIRES: Supports(op); a Range's revision, if set, <= revision().
  etcdserverpb::ResponseOp Apply(const etcdserverpb::RequestOp& op, bool* changed);

  // Revokes `lease` at the head: every key attached to it is deleted, in key order, as one
  // commit at revision() + 1 (none if it holds no key: then nothing changes and the lease
  // is not marked revoked, since no revision could record it).
  void ApplyLeaseRevoke(int64_t lease, bool* changed);
  // Whether `op` puts a key with a lease a commit of this model revoked (etcd refuses such
  // a request whole). Only plain puts are judged; the workload puts no leases in txns.
  bool UsesRevokedLease(const etcdserverpb::RequestOp& op) const;
  // Live keys attached to `lease` at the head.
  int64_t KeysOfLease(int64_t lease) const;

  // The live version of `key` at `rev`, or nullptr.
  const Version* Get(const std::string& key, int64_t rev) const;

  // Visits the versions the newest commit (at revision()) wrote, in the commit's op order:
  // its watch events (a version with version == 0 is a delete).
  void ForEachVersionOfHead(
      const std::function<void(const std::string& key, const Version& v)>& visit) const;

  // Undoes every commit after `rev`. REQUIRES: rev >= 1.
  void TruncateTo(int64_t rev);

  // A hash of the live state, the revision and the leases revoked (for memoizing
  // searches).
  uint64_t StateHash() const;

 private:
  etcdserverpb::RangeResponse RangeAt(const etcdserverpb::RangeRequest& r, int64_t rev) const;
  bool CompareHolds(const etcdserverpb::Compare& c) const;
  // Appends a version at `rev` (the open commit).
  void Write(const std::string& key, Version v);
  void ApplyOp(const etcdserverpb::RequestOp& op, int64_t rev, bool* changed,
               etcdserverpb::ResponseOp* out);

  std::map<std::string, std::vector<Version>> keys_;  // versions ascending by mod_revision
  std::vector<std::pair<int64_t, std::string>> log_;  // (revision, key) of every version
  std::map<int64_t, int64_t> revoked_at_;             // lease -> the revision revoking it
  int64_t revision_ = 1;
};

// Whether two responses agree on everything the model predicts (all but inner headers and
// the top-level header revision, which the checker judges separately). On a mismatch,
// `diff` says where.
bool SameResponse(const etcdserverpb::ResponseOp& want, const etcdserverpb::ResponseOp& got,
                  std::string* diff);

// Whether an OK response of a mutation shows that it changed the store (took a revision).
bool ResponseChangedState(const etcdserverpb::ResponseOp& response);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_KV_MODEL_H_
