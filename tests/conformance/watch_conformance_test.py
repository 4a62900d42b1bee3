#!/usr/bin/python3
"""Differential conformance suite for the etcd v3 Watch service.

Every scenario runs against a FRESH pair of servers -- a reference etcd and geoetcd -- and
issues the same writes and watch requests to both (in parallel). Each step records the watch
responses received (all fields, defaults included; header cluster_id/member_id/raft_term
blanked; long values summarized), and the two transcripts are compared step by step, event
by event.

Responses of different watchers on one stream are compared per watch id: etcd sends them in
map order, which is random. Within one watcher, responses are compared in order. A step waits
until the expected responses arrived, then a short quiet period, so a missing or extra
response shows up as a diff.

Watch messages come from tests/conformance/watch_client.py (compiled from the tree's protos:
the python3-etcd3 stubs lack watch_id, fragment and WatchProgressRequest).

Where the reference etcd 3.4 is known to differ from etcd 3.5 (which geoetcd follows), the step
checks geoetcd against 3.5's answer and reports etcd 3.4's as a KNOWN DIFF.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/watch_conformance_test.py
      [-k substring ...] [--list] [-v]
Exit status 0 when every scenario matches, 1 otherwise.
"""

import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import rpc_pb2 as kv_rpc  # noqa: E402  (python3-etcd3's stubs, for KV calls)
from watch_client import (NODELETE, NOPUT, WatchStream, b, cancel_req, create_req, mvcc,  # noqa
                          pb, prefix_end, progress_req)

NONE_WAIT = 0.6      # seconds a step expecting nothing listens
MIB = 1024 * 1024


def norm(r):
    if isinstance(r, Exception):
        return {"stream error": type(r).__name__}
    return harness.normalize(r)


def by_watch_id(responses):
    """{watch_id: [normalized responses in order]}, keys as strings for a stable diff."""
    out = {}
    for r in responses:
        key = "error" if isinstance(r, Exception) else str(r.watch_id)
        out.setdefault(key, []).append(norm(r))
    return out


# --------------------------------------------------------------------------------------------
# A session: one scenario against one server, recording every step
# --------------------------------------------------------------------------------------------

class Session:
    def __init__(self, server):
        self.server = server
        self.kv = server.stubs().kv
        self.steps = []
        self.streams = []

    def record(self, label, value):
        self.steps.append((label, ("value", value)))

    def record_known_diff(self, label, value, expected, why):
        """A step where the reference etcd 3.4 is known to answer differently from etcd 3.5
        (`why`): geoetcd must give `expected`, 3.5's answer; etcd's is only reported."""
        if self.server.kind == "geoetcd":
            ok = value == expected
            self.record(label, "as etcd 3.5" if ok else {"geoetcd": value, "etcd 3.5": expected})
        else:
            KNOWN_DIFFS.append((label, why, value))
            self.record(label, "as etcd 3.5")

    def _kv(self, method, req):
        res = harness.call_raw(getattr(self.kv, method), req)
        if res[0] != "ok":
            self.record("%s failed" % method, list(res))
            return None
        return res[1]

    def put(self, key, value=b""):
        r = self._kv("Put", kv_rpc.PutRequest(key=b(key), value=b(value)))
        return r.header.revision if r else -1

    def delete(self, key, range_end=b""):
        return self._kv("DeleteRange", kv_rpc.DeleteRangeRequest(key=b(key),
                                                                 range_end=b(range_end)))

    def txn_puts(self, *pairs):
        ops = [kv_rpc.RequestOp(request_put=kv_rpc.PutRequest(key=b(k), value=b(v)))
               for k, v in pairs]
        return self._kv("Txn", kv_rpc.TxnRequest(success=ops))

    def compact(self, revision):
        return self._kv("Compact", kv_rpc.CompactionRequest(revision=revision))

    def stream(self):
        w = WatchStream(self.server)
        self.streams.append(w)
        return w

    def close(self):
        for w in self.streams:
            w.close()


def run_etcdctl(server, args, seconds):
    """etcdctl for `seconds` (watch never exits by itself); returns its stdout lines."""
    cmd = [harness.etcdctl_bin(), "--endpoints", server.endpoint] + list(args)
    env = harness.clean_env({"ETCDCTL_API": "3"})
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=seconds)
        out = p.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
    return out.decode("utf-8", "replace").splitlines()


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

SCENARIOS = []  # (name, fn) or (name, fn, extra server args)
KNOWN_DIFFS = []  # (step, why, etcd 3.4's answer) of record_known_diff steps


def blank_json(obj):
    """etcdctl -w json spells the header "Header"; blank its per-cluster fields too."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("header", "Header") and isinstance(v, dict):
                for f in harness.BLANKED_HEADER_FIELDS:
                    if f in v:
                        v[f] = harness.BLANK
            blank_json(v)
    elif isinstance(obj, list):
        for v in obj:
            blank_json(v)
    return obj


scenario = harness.scenario_registry(SCENARIOS)


@scenario
def sc_watch_from_past_revision(s):
    s.put("a", "1")
    s.put("b", "2")
    s.put("a", "3")
    s.delete("a")
    s.put("a", "5")
    w = s.stream()
    w.send(create_req("a", start_revision=2))
    s.record("created, then history in one response", [norm(r) for r in w.collect(events=4)])
    s.put("a", "6")
    s.put("b", "7")
    s.record("live events", [norm(r) for r in w.collect(events=1)])
    w.send(create_req("b", start_revision=4))   # nothing to replay for b from 4
    s.record("no history to replay", [norm(r) for r in w.collect(responses=2)])


@scenario
def sc_watch_from_now_and_future(s):
    s.put("k", "1")
    w = s.stream()
    w.send(create_req("k"))
    s.record("created at current revision", [norm(r) for r in w.collect(responses=1)])
    w.send(create_req("k", start_revision=5))
    s.record("created for future", [norm(r) for r in w.collect(responses=1)])
    for i in range(4):
        s.put("k", "v%d" % i)
    s.record("events", by_watch_id(w.collect(events=6)))


@scenario
def sc_watch_prev_kv(s):
    s.put("k", "1")
    s.put("k", "2")
    s.delete("k")
    s.put("k", "3")
    w = s.stream()
    w.send(create_req("k", start_revision=2, prev_kv=True))
    s.record("history with prev_kv", [norm(r) for r in w.collect(events=4)])
    s.put("k", "4")
    s.delete("k")
    s.put("k", "5")
    s.record("live with prev_kv", [norm(r) for r in w.collect(events=3)])


@scenario
def sc_watch_filters(s):
    s.put("k", "1")
    s.delete("k")
    w = s.stream()
    w.send(create_req("k", start_revision=1, filters=[NOPUT]))
    w.send(create_req("k", start_revision=1, filters=[NODELETE]))
    w.send(create_req("k", start_revision=1, filters=[NOPUT, NODELETE]))
    s.record("history filtered", by_watch_id(w.collect(responses=5)))
    s.put("k", "2")
    s.put("k", "3")
    s.delete("k")
    s.record("live filtered", by_watch_id(w.collect(events=3)))


@scenario
def sc_watch_ranges_and_prefixes(s):
    w = s.stream()
    w.send(create_req("b", "d"))              # [b, d)
    w.send(create_req("p/", prefix_end("p/")))
    w.send(create_req("c", "\x00"))           # every key >= c
    w.send(create_req("\x00", "\x00"))        # every key
    w.send(create_req("", "\x00"))            # empty key: "\0"
    w.send(create_req("", ""))                # the single key "\0"
    s.record("created", [norm(r) for r in w.collect(responses=6)])
    for k in ("a", "b", "c", "c\x00", "d", "p", "p/", "p/x", "p0", "\x00", "\xff"):
        s.put(k, "v")
    s.txn_puts(("b", "t"), ("p/y", "t"), ("z", "t"))
    s.delete("a", "z")
    s.record("events per watcher", by_watch_id(w.collect(events=50)))


@scenario
def sc_watch_many_on_one_stream(s):
    s.put("x", "1")
    w = s.stream()
    for k in ("x", "y", "z"):
        w.send(create_req(k))
    s.record("created in request order", [norm(r) for r in w.collect(responses=3)])
    s.txn_puts(("z", "1"), ("x", "2"), ("y", "3"))
    s.record("one revision, one response each", by_watch_id(w.collect(events=3)))


@scenario
def sc_watch_cancel(s):
    w = s.stream()
    w.send(create_req("k"))
    w.send(create_req("j"))
    s.record("created", [norm(r) for r in w.collect(responses=2)])
    s.put("k", "1")
    s.record("event", [norm(r) for r in w.collect(events=1)])
    w.send(cancel_req(0))
    s.record("cancel known id", [norm(r) for r in w.collect(responses=1)])
    w.send(cancel_req(0))
    w.send(cancel_req(42))
    s.record("cancel unknown ids: nothing", [norm(r) for r in w.collect(quiet=NONE_WAIT)])
    s.put("k", "2")
    s.put("j", "1")
    s.record("only the live watcher", [norm(r) for r in w.collect(events=1)])


@scenario
def sc_watch_client_ids_and_duplicates(s):
    w = s.stream()
    w.send(create_req("a", watch_id=5))
    w.send(create_req("a", watch_id=5))
    w.send(create_req("a"))
    w.send(create_req("a", watch_id=1))
    w.send(create_req("a"))
    s.record("ids and the duplicate error", [norm(r) for r in w.collect(responses=5)])
    s.put("a", "1")
    s.record("events", by_watch_id(w.collect(events=4)))


@scenario
def sc_watch_create_errors(s):
    w = s.stream()
    w.send(create_req("b", "a"))
    w.send(create_req("b", "b"))
    s.record("key >= range_end", [norm(r) for r in w.collect(responses=2)])
    w.send(create_req("a"))
    s.record("stream still usable", [norm(r) for r in w.collect(responses=1)])


@scenario
def sc_watch_negative_start_revision(s):
    w = s.stream()
    w.send(create_req("a", start_revision=-1))
    expected = pb.WatchResponse(header=pb.ResponseHeader(revision=1), watch_id=-1, created=True,
                                canceled=True,
                                cancel_reason="etcdserver: mvcc: required revision has been "
                                              "compacted")
    s.record_known_diff("negative start", [norm(r) for r in w.collect(responses=1)],
                        [norm(expected)],
                        "etcd 3.5 refuses a negative start_revision (v3rpc/watch.go); 3.4 "
                        "creates the watcher")


@scenario
def sc_watch_progress_request_without_watchers(s):
    s.put("a", "1")
    w = s.stream()
    w.send(progress_req())
    s.record_known_diff("progress request on a stream without watchers",
                        [norm(r) for r in w.collect(quiet=NONE_WAIT)], [],
                        "etcd 3.5 answers through a watcher (progressIfSync): none, no answer; "
                        "3.4 always answers")


@scenario
def sc_watch_from_compaction_revision_sees_its_delete(s):
    s.put("k", "1")
    s.delete("k")                       # revision 3
    s.put("other", "x")
    s.compact(3)
    w = s.stream()
    w.send(create_req("\x00", "\x00", start_revision=3))
    got = [norm(r) for r in w.collect(events=2, timeout=1.5)]
    s.record("created", got[:1])
    expected = pb.WatchResponse(header=pb.ResponseHeader(revision=4), events=[
        mvcc.Event(type=mvcc.Event.DELETE, kv=mvcc.KeyValue(key=b"k", mod_revision=3)),
        mvcc.Event(kv=mvcc.KeyValue(key=b"other", value=b"x", create_revision=4, mod_revision=4,
                                    version=1))])
    s.record_known_diff("history from the compaction revision", got[1:], [norm(expected)],
                        "etcd before 3.4.34/3.5.15 drops a delete at exactly the compaction "
                        "revision from history (etcd #18089, fixed by #18274)")


@scenario
def sc_watch_compaction_cancel(s):
    for i in range(6):
        s.put("k", "v%d" % i)           # revisions 2..7
    s.compact(5)
    w = s.stream()
    w.send(create_req("k", start_revision=3))
    s.record("below the compaction point", [norm(r) for r in w.collect(responses=2)])
    w.send(create_req("k", start_revision=5, prev_kv=True))
    s.record("at the compaction point", [norm(r) for r in w.collect(responses=2)])
    s.put("k", "live")
    s.record("only the second watcher", by_watch_id(w.collect(events=1)))


@scenario
def sc_watch_progress_request(s):
    s.put("a", "1")
    w = s.stream()
    w.send(create_req("a"))
    w.send(create_req("b", "c"))
    s.record("created", [norm(r) for r in w.collect(responses=2)])
    s.put("x", "2")
    w.send(progress_req())
    s.record("progress, all synced", [norm(r) for r in w.collect(responses=1)])
    s.put("a", "3")
    s.record("event", [norm(r) for r in w.collect(events=1)])
    w.send(progress_req())
    s.record("progress again", [norm(r) for r in w.collect(responses=1)])


@scenario(args=["--experimental-watch-progress-notify-interval", "300ms"])
def sc_watch_progress_notify(s):
    s.put("a", "1")
    w = s.stream()
    w.send(create_req("a", progress_notify=True))
    w.send(create_req("b"))                       # did not ask for it
    first = w.collect(responses=3, timeout=3.0, quiet=0.0)
    s.record("created, then a progress notification",
             [norm(r) for r in first[:3]])


@scenario
def sc_watch_fragment(s):
    big = b"v" * MIB
    for k in ("a", "b", "c"):
        s.put(k, big)
    w = s.stream()
    w.send(create_req("a", "d", start_revision=2, fragment=True))
    s.record("fragmented history", [norm(r) for r in w.collect(events=3)])
    w2 = s.stream()
    w2.send(create_req("a", "d", start_revision=2))
    s.record("whole without fragment", [norm(r) for r in w2.collect(events=3)])


@scenario
def sc_watch_long_history_in_batches(s):
    threads = []
    for t in range(4):
        def writer(t=t):
            for i in range(300):
                s.put("h%d" % t, "%d" % i)
        threads.append(threading.Thread(target=writer))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    w = s.stream()
    w.send(create_req("h", prefix_end("h"), start_revision=2))
    got = w.collect(events=1200, timeout=10.0)
    s.record("created", norm(got[0]))
    s.record("events per response", [len(r.events) for r in got[1:]])
    s.record("header revisions", [r.header.revision for r in got[1:]])
    s.record("revisions dense", [e.kv.mod_revision for r in got[1:] for e in r.events]
             == list(range(2, 1202)))


@scenario
def sc_etcdctl_watch(s):
    s.put("k", "1")
    s.put("k", "2")
    s.delete("k")
    s.put("p/a", "x")
    s.put("k", "3")
    s.record("etcdctl watch k --rev 1", run_etcdctl(s.server, ["watch", "k", "--rev", "1"], 2.0))
    s.record("etcdctl watch --prev-kv", run_etcdctl(
        s.server, ["watch", "k", "--rev", "1", "--prev-kv"], 2.0))
    s.record("etcdctl watch --prefix", run_etcdctl(
        s.server, ["watch", "--prefix", "", "--rev", "2"], 2.0))
    out = run_etcdctl(s.server, ["watch", "k", "--rev", "2", "-w", "json"], 2.0)
    s.record("etcdctl watch -w json", [blank_json(json.loads(line)) for line in out])


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

def report_known_diffs():
    for step, why, etcd_answer in KNOWN_DIFFS:
        print("KNOWN DIFF %s: %s\n    etcd 3.4 answered: %s"
              % (step, why, harness._fmt(etcd_answer)))


def main(argv):
    # Known differences are settled inside the steps (Session.record_known_diff).
    return harness.run_differential(
        SCENARIOS, Session, argv, timeout=180, on_raise=harness.record_exception_line,
        dump_step=None, label_both=True, max_diffs_shown=None, summary="watch",
        report=report_known_diffs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
