#!/usr/bin/python3
"""Lease expiry in real time, geoetcd next to a reference etcd 3.4.

Each test runs the same timeline against a fresh geoetcd and a fresh etcd at the same time
and asserts geoetcd's behaviour; etcd's measured numbers are printed next to geoetcd's (and
its event shapes must agree) so the windows can be compared:

  * expiry (TTL 2 s, the minimum, and TTL 5 s): keys attached to a lease disappear in ONE
    delete revision (one watch response, every key, all at last put revision + 1), no sooner
    than TTL after the grant was sent and no later than TTL + 2 s after it was answered;
    afterwards TimeToLive answers -1 and KeepAlive TTL 0;
  * keep-alive: renewing every 0.5 s keeps a 2 s lease (and its keys) alive well past its
    TTL; once renewals stop, it expires within [TTL, TTL + 2 s] of the last renewal;
  * restart: a lease survives a graceful restart (and, for geoetcd, kill -9) with its TTL
    reset -- etcd resets the remaining TTL on recovery (plus a one election-timeout grace
    it adds when its leader is elected), geoetcd to the full TTL -- and then expires with
    its keys on schedule.

Timing bounds use the test's monotonic clock, which is the servers' clock too (same machine).

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/lease_expiry_test.py
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402
from watch_client import WatchStream, create_req, mvcc, prefix_end  # noqa: E402

LATE_S = 2.0          # expiry may come this much after TTL (etcd checks every 500 ms too)
EARLY_SLACK_S = 0.02  # millisecond rounding of the servers' timers
KEYS = 5
DELETE = mvcc.Event.DELETE


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Probe:
    """One server's view: KV/Lease stubs plus a watch on one prefix."""

    def __init__(self, server, prefix):
        self.server = server
        self.prefix = prefix
        self.stubs = server.stubs()
        self.watch = None

    def start_watch(self, start_revision=0):
        self.watch = WatchStream(self.server)
        self.watch.send(create_req(self.prefix, prefix_end(self.prefix),
                                   start_revision=start_revision))
        r = self.watch.next(5.0)
        check(r is not None and not isinstance(r, Exception) and r.created,
              "%s: watch not created: %r" % (self.server.kind, r))

    def grant(self, ttl):
        r = self.stubs.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=5)
        check(r.ID > 0 and r.TTL == ttl, "%s: grant answered %r" % (self.server.kind, r))
        return r.ID

    def attach_keys(self, lease_id):
        revs = []
        for i in range(KEYS):
            key = self.prefix + b"%d" % i
            r = self.stubs.kv.Put(rpc_pb2.PutRequest(key=key, value=b"v", lease=lease_id),
                                  timeout=5)
            revs.append(r.header.revision)
        return revs

    def wait_puts(self, n):
        got = 0
        deadline = time.monotonic() + 5
        while got < n and time.monotonic() < deadline:
            r = self.watch.next(deadline - time.monotonic())
            check(r is not None and not isinstance(r, Exception),
                  "%s: watch ended or stalled after %d puts: %r" % (self.server.kind, got, r))
            check(all(e.type != DELETE for e in r.events),
                  "%s: unexpected delete while attaching keys" % self.server.kind)
            got += len(r.events)
        check(got == n, "%s: %d put events, expected %d" % (self.server.kind, got, n))

    def wait_deletes(self, deadline):
        """(time the first delete response arrived, [responses carrying deletes]) once KEYS
        delete events arrived or the deadline passed."""
        responses = []
        first = None
        events = 0
        while events < KEYS:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r = self.watch.next(left)
            if r is None:
                break
            check(not isinstance(r, Exception), "%s: watch ended: %r" % (self.server.kind, r))
            if r.events:
                if first is None:
                    first = time.monotonic()
                responses.append(r)
                events += len(r.events)
        return first, responses

    def check_one_delete_revision(self, responses, expected_rev):
        kind = self.server.kind
        check(responses, "%s: no delete events" % kind)
        events = [e for r in responses for e in r.events]
        check(len(responses) == 1,
              "%s: the deletes came in %d watch responses (revisions %s), expected one"
              % (kind, len(responses), sorted({e.kv.mod_revision for e in events})))
        check(all(e.type == DELETE for e in events), "%s: non-delete event %r" % (kind, events))
        check(sorted(e.kv.key for e in events) ==
              [self.prefix + b"%d" % i for i in range(KEYS)],
              "%s: deleted keys %r" % (kind, [e.kv.key for e in events]))
        revs = {e.kv.mod_revision for e in events}
        check(revs == {expected_rev},
              "%s: delete revisions %s, expected all at %d" % (kind, sorted(revs), expected_rev))

    def check_gone(self, lease_id):
        kind = self.server.kind
        r = self.stubs.kv.Range(rpc_pb2.RangeRequest(key=self.prefix,
                                                     range_end=prefix_end(self.prefix)),
                                timeout=5)
        check(r.count == 0, "%s: %d keys left after expiry" % (kind, r.count))
        t = self.stubs.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id),
                                             timeout=5)
        check(t.TTL == -1, "%s: TimeToLive after expiry answered TTL %d" % (kind, t.TTL))
        ka = list(self.stubs.lease.LeaseKeepAlive(
            iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]), timeout=5))
        check(len(ka) == 1 and ka[0].TTL == 0,
              "%s: KeepAlive after expiry answered %r" % (kind, ka))

    def close(self):
        if self.watch is not None:
            self.watch.close()


def on_both(fn):
    """Runs fn(server) on a fresh etcd and a fresh geoetcd in parallel; returns
    {kind: result}. A Failure (or any error) on either side fails the test."""
    etcd, geo = harness.start_pair()
    results, errors = {}, {}

    def run(srv):
        try:
            results[srv.kind] = fn(srv)
        except Exception as exc:  # reported below
            errors[srv.kind] = exc

    try:
        threads = [threading.Thread(target=run, args=(s,)) for s in (etcd, geo)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for kind in ("geoetcd", "etcd"):
            if kind in errors:
                raise Failure("%s: %s: %s" % (kind, type(errors[kind]).__name__,
                                              errors[kind]))
        check(len(results) == 2, "a side did not finish: %s" % sorted(results))
        return results
    finally:
        etcd.destroy()
        geo.destroy()


def report(what, results, fmt):
    print("  %-32s geoetcd %s | etcd %s" % (what, fmt(results["geoetcd"]),
                                             fmt(results["etcd"])))


def check_window(kind, what, lo_elapsed, hi_elapsed, ttl):
    """lo_elapsed: seconds from the earliest moment the TTL could have started (request
    sent) to the delete; hi_elapsed: from the latest (response received)."""
    check(lo_elapsed >= ttl - EARLY_SLACK_S,
          "%s: %s after %.3fs, before the %ds TTL ran out" % (kind, what, lo_elapsed, ttl))
    check(hi_elapsed <= ttl + LATE_S,
          "%s: %s only after %.3fs (TTL %ds + %.1fs allowed)" % (kind, what, hi_elapsed, ttl,
                                                                LATE_S))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def expiry(ttl):
    def run(server):
        p = Probe(server, b"exp/")
        try:
            p.start_watch()
            t_sent = time.monotonic()
            lease = p.grant(ttl)
            t_granted = time.monotonic()
            revs = p.attach_keys(lease)
            p.wait_puts(KEYS)
            # Halfway through the TTL the lease is still there with all its keys.
            time.sleep(max(0.0, t_granted + ttl / 2.0 - time.monotonic()))
            t = p.stubs.lease.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True), timeout=5)
            check(0 <= t.TTL < ttl and len(t.keys) == KEYS,
                  "%s: TimeToLive at TTL/2 answered %r" % (server.kind, t))
            first, responses = p.wait_deletes(t_granted + ttl + LATE_S + 4.0)
            check(first is not None, "%s: keys never expired (waited TTL + %.0fs)"
                  % (server.kind, LATE_S + 4.0))
            p.check_one_delete_revision(responses, revs[-1] + 1)
            p.check_gone(lease)
            return first - t_sent, first - t_granted
        finally:
            p.close()

    results = on_both(run)
    report("expiry TTL %ds: deleted after" % ttl, results,
           lambda r: "%.3f-%.3fs" % (r[1], r[0]))
    check_window("geoetcd", "the keys expired", results["geoetcd"][0], results["geoetcd"][1],
                 ttl)


def test_expiry_ttl_2s():
    expiry(2)


def test_expiry_ttl_5s():
    expiry(5)


def test_keepalive_extends():
    ttl = 2
    hold_s = 5.0

    def run(server):
        p = Probe(server, b"ka/")
        try:
            p.start_watch()
            lease = p.grant(ttl)
            revs = p.attach_keys(lease)
            p.wait_puts(KEYS)
            # Renew every 0.5 s over 2.5 TTLs on one stream; every answer is the full TTL.
            import queue
            requests = queue.Queue()

            def gen():
                while True:
                    r = requests.get()
                    if r is None:
                        return
                    yield r

            stream = p.stubs.lease.LeaseKeepAlive(gen())
            t_end = time.monotonic() + hold_s
            last_sent = None
            try:
                while time.monotonic() < t_end:
                    last_sent = time.monotonic()
                    requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease))
                    r = next(stream)
                    check(r.ID == lease and r.TTL == ttl,
                          "%s: keep-alive answered %r" % (server.kind, r))
                    last_answered = time.monotonic()
                    # Nothing may expire while renewals go on.
                    quiet = p.watch.next(max(0.0, last_sent + 0.5 - time.monotonic()))
                    check(quiet is None,
                          "%s: watch event while the lease was kept alive: %r"
                          % (server.kind, quiet))
            finally:
                requests.put(None)
                stream.cancel()
            r = p.stubs.kv.Range(rpc_pb2.RangeRequest(key=b"ka/", range_end=b"ka0"),
                                 timeout=5)
            check(r.count == KEYS, "%s: %d keys left after %.0fs of renewals (TTL %ds)"
                  % (server.kind, r.count, hold_s, ttl))
            first, responses = p.wait_deletes(last_answered + ttl + LATE_S + 4.0)
            check(first is not None, "%s: keys never expired after the renewals stopped"
                  % server.kind)
            p.check_one_delete_revision(responses, revs[-1] + 1)
            p.check_gone(lease)
            return first - last_sent, first - last_answered
        finally:
            p.close()

    results = on_both(run)
    report("after the last keep-alive", results, lambda r: "%.3f-%.3fs" % (r[1], r[0]))
    check_window("geoetcd", "the keys expired after the last renewal", results["geoetcd"][0],
                 results["geoetcd"][1], ttl)


def restart_case(kill9):
    ttl = 6
    wait_before_restart = 3.0

    def run(server):
        p = Probe(server, b"rs/")
        try:
            lease = p.grant(ttl)
            t_granted = time.monotonic()
            revs = p.attach_keys(lease)
            time.sleep(max(0.0, t_granted + wait_before_restart - time.monotonic()))
            t_stop = time.monotonic()
            if kill9:
                server.kill9()
            else:
                server.stop()
            server.start(new_ports=False)
            t_ready = time.monotonic()
            p.stubs = server.stubs()
            t = p.stubs.lease.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease, keys=True), timeout=5)
            # Not reset, at most ttl - wait_before_restart = 3 s would be left.
            check(t.grantedTTL == ttl and ttl - 1 <= t.TTL <= ttl + 1 and len(t.keys) == KEYS,
                  "%s: after the restart TimeToLive answered TTL %d grantedTTL %d keys %d "
                  "(the TTL should be reset to about %d)" % (server.kind, t.TTL, t.grantedTTL,
                                                             len(t.keys), ttl))
            p.start_watch(start_revision=revs[-1] + 1)
            first, responses = p.wait_deletes(t_ready + ttl + LATE_S + 4.0)
            check(first is not None, "%s: keys never expired after the restart" % server.kind)
            p.check_one_delete_revision(responses, revs[-1] + 1)
            p.check_gone(lease)
            return t.TTL, first - t_stop, first - t_ready, t_ready - t_stop
        finally:
            p.close()

    return on_both(run) if not kill9 else {"geoetcd": run_geo_only(run)}


def run_geo_only(fn):
    geo = harness.Server("geoetcd").start()
    try:
        return fn(geo)
    finally:
        geo.destroy()


def test_lease_survives_restart_with_ttl_reset():
    results = restart_case(kill9=False)
    report("TTL right after the restart", results, lambda r: "%d" % r[0])
    report("restart took", results, lambda r: "%.3fs" % r[3])
    report("expired after the restart", results, lambda r: "%.3f-%.3fs" % (r[2], r[1]))
    ttl_left, since_stop, since_ready, _ = results["geoetcd"]
    check(ttl_left <= 6, "geoetcd: TTL %d after the restart exceeds the granted 6" % ttl_left)
    # geoetcd resets the TTL when it recovers, between the stop and readiness.
    check_window("geoetcd", "the keys expired after the restart", since_stop, since_ready, 6)


def test_lease_survives_kill9_with_ttl_reset():
    results = restart_case(kill9=True)
    ttl_left, since_stop, since_ready, took = results["geoetcd"]
    print("  geoetcd after kill -9: TTL %d, restart took %.3fs, expired %.3f-%.3fs after"
          % (ttl_left, took, since_ready, since_stop))
    check_window("geoetcd", "the keys expired after kill -9", since_stop, since_ready, 6)


TESTS = [
    test_expiry_ttl_2s,
    test_expiry_ttl_5s,
    test_keepalive_extends,
    test_lease_survives_restart_with_ttl_reset,
    test_lease_survives_kill9_with_ttl_reset,
]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
