// Deliberately wrong behaviours, switched on only by the simulator (`geoetcd-sim
// --inject-bug`) to prove that its checkers catch them (docs/simulation.md).
//
// They exist only in the simulator's build of core/ (geoetcd_core_sim, compiled with
// GEOETCD_INJECTED_BUGS): there each flag is a bool; in the server's build (geoetcd_core)
// each is a constexpr false, so InjectedBugs holds nothing and every seam it guards is dead
// code the compiler removes. gateway/server.cc asserts that.
#ifndef GEOETCD_CORE_INJECTED_BUGS_H_
#define GEOETCD_CORE_INJECTED_BUGS_H_

#ifdef GEOETCD_INJECTED_BUGS
#define GEOETCD_BUG_FLAG bool
#else
#define GEOETCD_BUG_FLAG static constexpr bool
#endif

namespace geoetcd {

struct InjectedBugs {
  // Replies to mutations before their commit is durable.
  GEOETCD_BUG_FLAG ack_before_fsync = false;
  // Serves Range one revision behind the durable revision.
  GEOETCD_BUG_FLAG stale_linearizable_read = false;
  // Synced watchers lose the first event of every revision divisible by 10 (WatchHub).
  GEOETCD_BUG_FLAG skip_watch_event = false;
  // Recovery ignores the newest durable commit, so the next write reuses its revision.
  GEOETCD_BUG_FLAG reuse_revision_after_crash = false;
  // A multi-op Txn is persisted by two separately synced storage writes, so a crash
  // between them persists part of it.
  GEOETCD_BUG_FLAG txn_not_atomic = false;
  // A lease's revoke or expiry deletes its keys one commit (revision) per key.
  GEOETCD_BUG_FLAG lease_revoke_not_atomic = false;
  // A region applies a replicated entry that arrives ahead of a gap, skipping the gap.
  GEOETCD_BUG_FLAG apply_out_of_order = false;
  // A region acknowledges every replicated entry it receives but drops every 7th unapplied.
  GEOETCD_BUG_FLAG drop_replicated_commit = false;
  // A forwarding region answers its client as soon as W answers, before applying W's index.
  GEOETCD_BUG_FLAG ack_forward_before_apply = false;
  // A region repairing from another keeps its own register where it is older than the
  // source's (the merge picks the older write), and installs the result anyway.
  GEOETCD_BUG_FLAG merge_prefers_older = false;
};

}  // namespace geoetcd

#endif  // GEOETCD_CORE_INJECTED_BUGS_H_
