// Checkers: judge a run's History (sim/history.h) against etcd's specification.
//
// etcd gives every commit a revision, and an etcd-compatible store must too: a write's
// response names its revision, a read's response names the revision it read at. The model
// (sim/kv_model.h) assigns revisions deterministically (each commit takes the next one), so
// in ANY linearization the acknowledged commits sit in revision order, and a read that
// answered at revision H sits after commit H and before commit H+1. That turns most of the
// linearizability question into direct checks, each linear or n log n:
//
// - "revision":   acknowledged commits have unique revisions >= 2; the revisions no
//                 acknowledged commit claims (holes) can be matched, one to one, with
//                 operations of unknown outcome invoked early enough to have made them.
// - "durability": after each crash, the restarted node recovered at least the newest
//                 revision acknowledged before the crash, and no later read answers below it.
// - "linearizability": real-time order agrees with commit order (if A returned before B
//                 was invoked, A is not ordered after B), and replaying the commits in
//                 revision order through the model reproduces every response: each read's
//                 data at its revision, each write's prev_kv, deleted count and txn branch.
//                 Holes are filled by operations of unknown outcome, pinned by the unique
//                 values reads observed where possible and searched (with a budget) where
//                 not. Unknown outcomes count as "maybe applied, at any time after their
//                 invocation" (return time +infinity).
// - "watch":      each watch session received, for every revision it vouches for (up to
//                 its newest event or bookmark), exactly the model's events of that commit
//                 in its range, in order, with the right prev_kv, one response per revision,
//                 nothing twice, and nothing at or below a bookmark after it.
// - "wgl":        an independent check that trusts no revision: porcupine-style WGL search
//                 per key (P-compositionality), over each operation's projection onto a
//                 value register (multi-key txns and ranges project onto every key they
//                 touch, which is sound: a linearization of the whole projects onto one of
//                 each key).
// - "lease":      see CheckLeases below.
//
// Leases: a lease's revoke or expiry deletes every key attached to it in one commit that
// no KV request made. "revision", "linearizability" and "wgl" account for it with one
// deleter per lease that keys were attached to (sim/lease_view.h): the acknowledged revoke,
// whose commit (if it made one) is at its header revision, or else an operation of unknown
// outcome that may happen any time after the lease's grant, at most once, deleting every
// key then attached to the lease (the model, sim/kv_model.h, knows each key's lease).
//
// CheckInvariants() of every component after every event is one more checker; the
// simulation runs it (sim/simulation.h).
#ifndef GEOETCD_SIM_CHECKERS_H_
#define GEOETCD_SIM_CHECKERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sim/history.h"

namespace geoetcd::sim {

struct CheckOptions {
  // Slots the revision-ordered replay may process while searching placements for writes
  // of unknown outcome; beyond it the check is inconclusive (noted, not a violation).
  int64_t replay_steps_max = 2'000'000;
  // WGL search steps per key; beyond it that key is inconclusive.
  int64_t wgl_steps_max = 1'000'000;
  // How much faster than real time a server's monotonic clock may run (its drift bound):
  // a lease granted a TTL of t seconds lasts at least t / this many seconds of real time.
  double lease_clock_rate_max = 1.1;
  // Tests of the checker itself: fill each hole with the op the server really committed
  // there when it is known (HistoryOp::server_revision, ground truth no real client has).
  // If the replay then fails on a correct run, one of the search's pruning rules is unsound.
  bool oracle_only = false;
};

struct CheckResult {
  bool ok = true;
  std::string checker;  // the failing checker's name when !ok
  std::string detail;
  std::vector<std::string> notes;  // inconclusive searches and other remarks

  static CheckResult Violation(std::string checker, std::string detail) {
    CheckResult r;
    r.ok = false;
    r.checker = std::move(checker);
    r.detail = std::move(detail);
    return r;
  }
};

CheckResult CheckRevisions(const History& history);
CheckResult CheckDurability(const History& history);
// The watch properties that need no model (ordered, atomic, bookmarkable, created first,
// compaction cancels justified); see sim/watch_view.h. The rest (reliable, unique, prev_kv
// correct, resumable) needs the commit at each revision and runs inside
// CheckLinearizability, which reports those violations as "watch".
CheckResult CheckWatchStructure(const History& history);
CheckResult CheckLinearizability(const History& history, const CheckOptions& options);
CheckResult CheckPerKeyWgl(const History& history, const CheckOptions& options);
// The lease properties the KV checkers do not cover (sim/lease_checker.cc): answers of
// grants, keep-alives and time-to-live; unknown IDs; a lease known gone stays gone with
// its keys; no lease ends before its TTL (restarts included), and restarts reset TTLs.
CheckResult CheckLeases(const History& history, const CheckOptions& options);

// Runs every checker above in that order. The first failure is the result; the others'
// failures are appended to its notes.
CheckResult CheckHistory(const History& history, const CheckOptions& options);

}  // namespace geoetcd::sim

#endif  // GEOETCD_SIM_CHECKERS_H_
