#!/usr/bin/python3
"""Differential conformance suite for the etcd v3 Lease service.

Every scenario runs against a FRESH pair of servers -- a reference etcd 3.4 and geoetcd --
issuing the same requests to both in parallel. Every response (all fields, defaults
included; header cluster_id/member_id/raft_term blanked) or error (gRPC code AND exact
message) is recorded and the two transcripts are compared step by step: LeaseGrant (explicit
IDs, server-chosen IDs, etcd's minimum-TTL rule, too-large TTL, existing ID), LeaseRevoke
(unknown lease; the attached keys deleted at ONE revision, checked on a watch stream event by
event), LeaseKeepAlive streams (known lease -> granted TTL, unknown -> TTL 0), LeaseTimeToLive
(with and without keys; unknown -> TTL -1), LeaseLeases, Put/Txn with a lease and with an
unknown one, and expiry deleting the keys.

Normalizations (each still asserts something real):
  * A server-chosen lease ID (LeaseGrant with ID 0) is recorded as "L<n>" when it is
    positive, and every later occurrence of that ID (ID, lease, leases[]) maps to the same
    name, so the two servers' different choices compare equal; a non-positive ID stays raw.
  * LeaseLeases and TimeToLive's keys: etcd lists them in Go map order (random), so both
    lists are sorted before comparing.
  * TimeToLive's remaining TTL counts down in real time: outside the steps marked "exact" it
    is recorded as "TTL-2..TTL" when it lies in [grantedTTL-2, grantedTTL], else raw.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/lease_conformance_test.py
      [-k substring ...] [--list] [-v] [--dump]
Exit status 0 when every scenario matches, 1 otherwise.
"""

import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from watch_client import WatchStream, create_req, prefix_end  # noqa: E402

PutRequest = rpc_pb2.PutRequest
RangeRequest = rpc_pb2.RangeRequest
DeleteRangeRequest = rpc_pb2.DeleteRangeRequest
TxnRequest = rpc_pb2.TxnRequest
RequestOp = rpc_pb2.RequestOp
Compare = rpc_pb2.Compare

MAX_LEASE_TTL = 9000000000      # etcd's MaxLeaseTTL
KEEPALIVE_TIMEOUT = 5.0         # seconds to wait for one keep-alive response


def b(x):
    return x if isinstance(x, bytes) else x.encode("utf-8")


def summarize(req):
    s = text_format.MessageToString(req, as_one_line=True, as_utf8=False)
    return s if len(s) <= 200 else s[:200] + "...(%d chars)" % len(s)


def put_op(key, value=b"", **kw):
    return RequestOp(request_put=PutRequest(key=b(key), value=b(value), **kw))


def range_op(key, range_end=b"", **kw):
    return RequestOp(request_range=RangeRequest(key=b(key), range_end=b(range_end), **kw))


def del_op(key, range_end=b"", **kw):
    return RequestOp(request_delete_range=DeleteRangeRequest(key=b(key), range_end=b(range_end),
                                                              **kw))


def lease_cmp(key, lease_id, result=Compare.EQUAL):
    return Compare(key=b(key), target=Compare.LEASE, result=result, lease=lease_id)


# --------------------------------------------------------------------------------------------
# Keep-alive stream
# --------------------------------------------------------------------------------------------

class KeepAliveStream:
    """One LeaseKeepAlive stream: send(id) then recv() the answer."""

    def __init__(self, server):
        self._requests = queue.Queue()
        self._responses = queue.Queue()

        def requests():
            while True:
                r = self._requests.get()
                if r is None:
                    return
                yield r

        self._call = server.stubs().lease.LeaseKeepAlive(requests())

        def reader():
            try:
                for r in self._call:
                    self._responses.put(r)
                self._responses.put(EOFError("stream ended"))
            except Exception as exc:
                self._responses.put(exc)

        threading.Thread(target=reader, daemon=True).start()

    def send(self, lease_id):
        self._requests.put(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))

    def recv(self, timeout=KEEPALIVE_TIMEOUT):
        try:
            return self._responses.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self._requests.put(None)
        self._call.cancel()


# --------------------------------------------------------------------------------------------
# A session: one scenario against one server, recording every step
# --------------------------------------------------------------------------------------------

class Session:
    def __init__(self, server):
        self.server = server
        self.stubs = server.stubs()
        self.steps = []        # (label, result)
        self.names = {}        # server-chosen lease ID (str) -> "L<n>"
        self.closers = []

    # -- ID mapping ----------------------------------------------------------------------------
    def name_lease(self, lease_id):
        key = str(lease_id)
        if key not in self.names:
            self.names[key] = "L%d" % (len(self.names) + 1)
        return self.names[key]

    def map_ids(self, obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("ID", "lease") and isinstance(v, str) and v in self.names:
                    obj[k] = self.names[v]
                else:
                    self.map_ids(v)
        elif isinstance(obj, list):
            for v in obj:
                self.map_ids(v)
        return obj

    def label(self, text):
        for actual, name in self.names.items():
            text = text.replace(actual, name)
        return text

    # -- recording -----------------------------------------------------------------------------
    def record(self, label, result):
        self.steps.append((self.label(label), result))

    def note(self, label, value):
        """A derived value, compared like a response."""
        self.record(label, ("value", value))

    def _rpc(self, service, method, req, label=None, post=None):
        fn = getattr(getattr(self.stubs, service), method)
        res = harness.call_raw(fn, req)
        if res[0] == "ok":
            d = self.map_ids(harness.normalize(res[1]))
            if post:
                post(d)
            norm = ("ok", d)
        else:
            norm = res
        self.record(label or "%s{%s}" % (method, summarize(req)), norm)
        return res[1] if res[0] == "ok" else None

    # -- Lease ---------------------------------------------------------------------------------
    def grant(self, ttl, lease_id=0, label=None):
        """LeaseGrant; returns the granted ID (None on error). With lease_id 0 the server
        picks the ID: a positive one is named L<n> before the response is recorded."""
        req = rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id)
        res = harness.call_raw(self.stubs.lease.LeaseGrant, req)
        if res[0] == "ok" and lease_id == 0 and res[1].ID > 0:
            self.name_lease(res[1].ID)
        norm = ("ok", self.map_ids(harness.normalize(res[1]))) if res[0] == "ok" else res
        self.record(label or "LeaseGrant{%s}" % summarize(req), norm)
        return res[1].ID if res[0] == "ok" else None

    def revoke(self, lease_id):
        return self._rpc("lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id))

    def ttl(self, lease_id, keys=False, exact=False):
        def approx(d):
            d["keys"].sort()  # etcd 3.4 lists them in Go map order (random); geoetcd sorted
            granted, left = int(d["grantedTTL"]), int(d["TTL"])
            if not exact and granted > 0 and granted - 2 <= left <= granted:
                d["TTL"] = "TTL-2..TTL"
        label = "LeaseTimeToLive{ID: %d%s}%s" % (lease_id, " keys" if keys else "",
                                                 " exact" if exact else "")
        return self._rpc("lease", "LeaseTimeToLive",
                         rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys), label, approx)

    def leases(self):
        def sort(d):
            d["leases"].sort(key=lambda e: str(e["ID"]))
        return self._rpc("lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), "LeaseLeases",
                         sort)

    def keepalive_stream(self):
        ka = KeepAliveStream(self.server)
        self.closers.append(ka.close)
        return ka

    def keepalive(self, ka, lease_id):
        """One request on stream `ka`; records the response (or the stream's end)."""
        ka.send(lease_id)
        r = ka.recv()
        label = "LeaseKeepAlive{ID: %d}" % lease_id
        if r is None:
            self.record(label, ("error", "no response within %.0fs" % KEEPALIVE_TIMEOUT))
        elif isinstance(r, Exception):
            code = r.code().name if hasattr(r, "code") else type(r).__name__
            details = r.details() if hasattr(r, "details") else str(r)
            self.record(label, ("error", code, details))
        else:
            self.record(label, ("ok", self.map_ids(harness.normalize(r))))
        return r

    # -- KV ------------------------------------------------------------------------------------
    def put(self, key, value=b"", **kw):
        return self._rpc("kv", "Put", PutRequest(key=b(key), value=b(value), **kw))

    def range(self, key, range_end=b"", **kw):
        return self._rpc("kv", "Range", RangeRequest(key=b(key), range_end=b(range_end), **kw))

    def range_all(self):
        return self.range(b"\x00", b"\x00")

    def range_prefix(self, prefix):
        return self.range(prefix, prefix_end(prefix))

    def delete(self, key, range_end=b"", **kw):
        return self._rpc("kv", "DeleteRange",
                         DeleteRangeRequest(key=b(key), range_end=b(range_end), **kw))

    def txn(self, compare=(), success=(), failure=()):
        return self._rpc("kv", "Txn", TxnRequest(compare=list(compare), success=list(success),
                                                 failure=list(failure)))

    # -- Watch ---------------------------------------------------------------------------------
    def watch_prefix(self, prefix, **kw):
        """A watch stream on `prefix`; the created response is recorded."""
        w = WatchStream(self.server)
        self.closers.append(w.close)
        w.send(create_req(prefix, prefix_end(prefix), **kw))
        self.record_watch("watch created on %r" % prefix, w.collect(responses=1))
        return w

    def record_watch(self, label, responses):
        out = []
        for r in responses:
            if isinstance(r, Exception):
                out.append({"stream error": type(r).__name__})
            else:
                d = self.map_ids(harness.normalize(r))
                d.pop("watch_id", None)  # etcd 3.4 numbers watchers from 0 too; not the point
                out.append(d)
        self.note(label, out)

    def watch_events(self, w, label, events):
        self.record_watch(label, w.collect(events=events))

    def close(self):
        for c in self.closers:
            try:
                c()
            except Exception:
                pass


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

SCENARIOS = []
scenario = harness.scenario_registry(SCENARIOS)


@scenario
def sc_grant_explicit_ids(s):
    s.grant(60, 100)
    s.grant(60, 100)                      # existing ID
    s.grant(30, 100)
    s.grant(MAX_LEASE_TTL + 1, 100)       # etcd checks the TTL before the ID
    s.grant(60, -1)                       # etcd accepts a negative explicit ID
    s.grant(60, 2 ** 63 - 1)
    s.grant(60, 101)
    s.ttl(100, exact=True)                # truncated seconds left: 59 right after the grant
    s.ttl(-1)
    s.ttl(2 ** 63 - 1, keys=True)
    s.leases()
    s.range("a")                          # a grant writes no key: revision still 1


@scenario
def sc_grant_ttl_rules(s):
    s.grant(1, 201)                       # below the minimum: raised to 2
    s.grant(0, 202)
    s.grant(-5, 203)
    s.grant(2, 204)
    s.grant(3, 205)
    s.grant(MAX_LEASE_TTL, 206)
    s.grant(MAX_LEASE_TTL + 1, 207)       # too large
    s.grant(2 ** 62, 208)
    s.grant(-(2 ** 62), 209)
    for lease_id in (201, 202, 203, 205, 206, 207):
        s.ttl(lease_id)
    s.ttl(206, exact=True)
    s.leases()


@scenario
def sc_grant_server_chosen_ids(s):
    l1 = s.grant(30)
    l2 = s.grant(30)
    l3 = s.grant(1)                       # server-chosen ID with the minimum-TTL rule
    s.note("three distinct server-chosen IDs", len({l1, l2, l3}) == 3)
    s.ttl(l1, keys=True)
    s.ttl(l3)
    s.put("k", "v", lease=l1)
    s.range("k")
    s.ttl(l1, keys=True)
    s.revoke(l2)
    s.leases()
    ka = s.keepalive_stream()
    s.keepalive(ka, l1)
    s.keepalive(ka, l2)
    s.revoke(l1)
    s.range("k")
    s.leases()


@scenario
def sc_revoke_unknown_and_empty(s):
    s.revoke(999)
    s.revoke(0)
    s.revoke(-7)
    s.put("a", "1")
    s.grant(60, 301)
    s.revoke(301)                         # no keys: the revision does not move
    s.range("a")
    s.revoke(301)
    s.ttl(301, keys=True)
    s.put("b", "1", lease=301)
    s.txn(success=[put_op("c", "1", lease=301)])
    ka = s.keepalive_stream()
    s.keepalive(ka, 301)
    s.leases()
    s.range_all()


@scenario
def sc_revoke_deletes_keys_at_one_revision(s):
    w = s.watch_prefix("k/", prev_kv=True)
    s.grant(60, 400)
    s.grant(60, 401)
    for k in ("k/c", "k/a", "k/e", "k/b", "k/d"):
        s.put(k, "v-" + k, lease=400)
    s.put("k/f", "other lease", lease=401)
    s.put("k/g", "no lease")
    s.txn(success=[put_op("k/h", "h", lease=400), put_op("k/i", "i", lease=400)])
    s.put("k/a", "overwritten, still leased", lease=400)
    s.put("k/e", "overwritten without the lease")   # detaches k/e
    s.watch_events(w, "watch events of the writes", 11)
    s.ttl(400, keys=True)
    s.revoke(400)
    # One response, six DELETE events (k/e was detached), all at the revoke's revision,
    # with prev_kv.
    s.watch_events(w, "watch events of the revoke", 6)
    s.range_prefix("k/")
    s.ttl(401, keys=True)
    s.revoke(401)
    s.watch_events(w, "watch events of the second revoke", 1)
    s.range_prefix("k/")
    s.leases()


@scenario
def sc_revoke_server_chosen_lease_on_watch(s):
    w = s.watch_prefix("p/")
    lease = s.grant(60)
    s.txn(success=[put_op("p/%02d" % i, str(i), lease=lease) for i in range(12)])
    s.watch_events(w, "watch events of the txn", 12)
    s.range_prefix("p/")
    s.revoke(lease)
    s.watch_events(w, "watch events of the revoke", 12)
    s.range_prefix("p/")


@scenario
def sc_keepalive_stream(s):
    s.grant(10, 500)
    s.grant(30, 501)
    ka = s.keepalive_stream()
    s.keepalive(ka, 500)                  # known: TTL back to the granted 10
    s.keepalive(ka, 999)                  # unknown: TTL 0, stream stays open
    s.keepalive(ka, 0)
    s.keepalive(ka, -3)
    s.keepalive(ka, 501)
    time.sleep(1.2)
    s.ttl(500)
    s.keepalive(ka, 500)
    s.ttl(500, exact=True)                # renewed: 9 whole seconds left
    ka2 = s.keepalive_stream()            # a second stream on the same lease
    s.keepalive(ka2, 500)
    s.revoke(500)
    s.keepalive(ka, 500)                  # revoked: TTL 0
    s.keepalive(ka2, 501)
    s.leases()


@scenario
def sc_timetolive_keys(s):
    s.grant(100, 600)
    s.ttl(600, keys=True)
    s.ttl(600)
    for k in ("b", "a", "c", "a/x"):
        s.put(k, "1", lease=600)
    s.ttl(600, keys=True)
    s.ttl(600)                            # keys not asked: none listed
    s.put("a", "2")                       # a put without the lease detaches the key
    s.ttl(600, keys=True)
    s.put("b", "3", ignore_lease=True)    # keeps the lease
    s.range("b")
    s.put("b", "4", lease=600, ignore_lease=True)  # both: etcd's "lease is provided"
    s.delete("c")
    s.ttl(600, keys=True)
    s.grant(100, 601)
    s.put("b", "5", lease=601)            # moves b to the other lease
    s.ttl(600, keys=True)
    s.ttl(601, keys=True)
    s.delete("a", "b")                    # deletes a/x (still attached) through a range
    s.ttl(600, keys=True)
    s.ttl(12345, keys=True)               # unknown: TTL -1, grantedTTL 0, no keys
    s.range_all()


@scenario
def sc_put_with_lease(s):
    s.put("a", "1", lease=999)            # unknown lease
    s.put("a", "1", lease=-1)
    s.put("a", "1", lease=0)
    s.grant(60, 700)
    s.put("a", "2", lease=700, prev_kv=True)
    s.put("b", "2", lease=700)
    s.range("a", "c")
    s.put("a", "3", lease=999)            # unknown lease: the key keeps its old lease
    s.range("a")
    s.revoke(700)
    s.range("a", "c")
    s.put("a", "4", lease=700)            # revoked lease
    s.put("a", "5", ignore_value=True, lease=700)
    s.range_all()


@scenario
def sc_txn_with_lease(s):
    s.grant(60, 800)
    s.grant(60, 801)
    s.txn(success=[put_op("a", "1", lease=800), put_op("b", "1", lease=801)])
    s.range("a", "c")
    s.txn(success=[put_op("c", "1", lease=999)])                      # unknown lease
    s.txn(compare=[lease_cmp("a", 800)], success=[put_op("d", "1", lease=999)],
          failure=[put_op("e", "1")])                                 # taken branch: error
    s.txn(compare=[lease_cmp("a", 801)], success=[put_op("d", "1", lease=999)],
          failure=[put_op("e", "1", lease=801)])                      # untaken branch: ok
    s.txn(compare=[lease_cmp("b", 801)], success=[range_op("a", "z")])
    s.txn(compare=[lease_cmp("b", 0, Compare.NOT_EQUAL)], success=[range_op("b")])
    s.txn(compare=[lease_cmp("zz", 0)], success=[range_op("zz")])     # missing key: lease 0
    s.txn(success=[RequestOp(request_txn=TxnRequest(
        success=[put_op("f", "1", lease=800), del_op("b")]))])       # nested txn
    s.ttl(800, keys=True)
    s.ttl(801, keys=True)
    s.txn(success=[put_op("g", "1", lease=800), put_op("g", "2", lease=801)])  # duplicate key
    s.txn(success=[put_op("g", "1", lease=800), del_op("a")])
    s.revoke(800)
    s.range_all()
    s.ttl(801, keys=True)


@scenario
def sc_leases_list(s):
    explicit = [1000 + i for i in range(8)]
    for lease_id in explicit:
        s.grant(60, lease_id)
    chosen = [s.grant(60) for _ in range(4)]
    s.leases()
    for lease_id in explicit[::2] + chosen[:2]:
        s.revoke(lease_id)
    s.leases()
    for lease_id in explicit[1::2] + chosen[2:]:
        s.revoke(lease_id)
    s.leases()


@scenario
def sc_expiry_deletes_keys(s):
    """A minimum-TTL lease expires on its own: its keys go in one revision, and afterwards
    the lease is unknown everywhere. (Timing is checked by tests/integration.)"""
    w = s.watch_prefix("e/", prev_kv=True)
    s.grant(2, 900)
    s.grant(60, 901)
    for k in ("e/1", "e/2", "e/3"):
        s.put(k, k, lease=900)
    s.put("e/4", "kept", lease=901)
    s.watch_events(w, "watch events of the writes", 4)
    time.sleep(2.0)
    # etcd checks expiry every 500 ms; allow several seconds on a loaded machine.
    s.record_watch("watch events of the expiry", w.collect(events=3, timeout=8.0))
    s.ttl(900, keys=True)
    ka = s.keepalive_stream()
    s.keepalive(ka, 900)
    s.revoke(900)
    s.range_prefix("e/")
    s.leases()


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

# Deliberate differences: (scenario, step label) -> (geoetcd's exact answer, why). None so
# far: the Lease service matches etcd 3.4 everywhere tested.
KNOWN_DIFFERENCES = {}


def dump_step(name, number, e, g):
    """--dump: etcd's transcript."""
    print("  %2d %s\n       -> %s" % (number, e[0], harness.describe_result(e[1])
                                      if e[1][0] in ("ok", "error") else e[1]))


def main(argv):
    return harness.run_differential(SCENARIOS, Session, argv, KNOWN_DIFFERENCES,
                                    dump_step=dump_step)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
