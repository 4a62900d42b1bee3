// Definitions shared by the Node's translation units (node.cc, node_lease.cc). Not part of
// the Node's interface.
#ifndef GEOETCD_CORE_NODE_INTERNAL_H_
#define GEOETCD_CORE_NODE_INTERNAL_H_

#include <memory>
#include <string>
#include <utility>

#include "core/errors.h"
#include "core/kv_store.h"
#include "core/lessor.h"
#include "core/node.h"
#include "core/quota.h"
#include "core/watch_hub.h"

namespace geoetcd {

struct Node::Account {
  Account(const std::string& name, const KvLimits& limits, int64_t lease_ttl_min_s)
      : lessor(lease_ttl_min_s), kv(name, limits, &lessor) {}
  Lessor lessor;
  KvStore kv;
  int64_t durable_rev = 1;  // reads are served here
  int64_t sealed_rev = 1;   // head revision when the in-flight batch was sealed
  int64_t pending_compact_rev = -1;
  std::unique_ptr<AutoCompactor> auto_compactor;  // null unless auto compaction is on
  AlarmSet alarms;
  // The bytes counted against the space quota (core/quota.h).
  int64_t used_bytes() const {
    return kv.keyspace().stored_bytes() +
           static_cast<int64_t>(lessor.size()) * kLeaseOverheadBytes;
  }
  std::unique_ptr<WatchHub> watches;  // declared after kv: destroyed before it
};

// Replies through the executor so a reply never runs inside the call that caused it.
template <typename T>
void PostReply(Executor* executor, Reply<T> reply, absl::StatusOr<T> result) {
  executor->Post([reply = std::move(reply), result = std::move(result)]() mutable {
    reply(std::move(result));
  });
}

}  // namespace geoetcd

#endif  // GEOETCD_CORE_NODE_INTERNAL_H_
