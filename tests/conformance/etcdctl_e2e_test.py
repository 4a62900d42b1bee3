#!/usr/bin/python3
"""etcdctl end to end: the long-running and multi-process etcdctl commands, side by side.

Each scenario runs the same etcdctl timeline (ETCDCTL_API=3, /usr/bin/etcdctl 3.4) against a
fresh reference etcd 3.4 and a fresh geoetcd, both named m1, in parallel. Every step records
an etcdctl invocation's exit code, its stdout and its stderr minus etcdctl's own JSON log
lines, and the two transcripts are compared step by step. Covered: `watch` (live with
--prev-kv, a prefix watch, `watch -i` fed on stdin), `lease grant / keep-alive --once /
timetolive --keys / revoke / list`, `lock` (two contenders; with a command), `elect`
(campaign, `elect -l` listener, takeover when the leader exits), `endpoint health / status /
hashkv` (table and json, also --cluster), `defrag`, `member list` (table and json) and
`alarm list`. (`snapshot save` and `alarm disarm` belong to the quota/snapshot suites.)

Normalizations, each keeping what etcd fixes:
  * the server's own endpoint and URLs become <endpoint>, <client url>, <peer url>;
  * 16-hex-digit IDs (leases, members, lock and election keys) become <id1>, <id2>, ... in
    order of first appearance, and the same numbers in JSON (ID, leader, ...) likewise, so
    the servers' different ID choices compare while their reuse is still checked;
  * header cluster_id / member_id / raft_term are blanked; `took = ...` durations,
    DB sizes, raft term/index and hashes are reduced to their shape; TimeToLive's remaining
    seconds to "in [TTL-2, TTL]"; etcd 3.4 lists a lease's keys in map order, so they are
    sorted;
  * each server's version string becomes <version>; the version itself is one step, pinned
    for geoetcd in KNOWN_DIFFERENCES (it reports etcd 3.5).

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/etcdctl_e2e_test.py
      [-k substring ...] [--list] [-v] [--dump]
"""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

CMD_TIMEOUT = 20        # seconds for one short etcdctl invocation
LINE_TIMEOUT = 8.0      # seconds to wait for expected output of a long-running etcdctl
QUIET = 0.4             # seconds of silence that end "whatever else it printed"
REGISTER_WAIT = 1.5     # seconds for a live watch / contender to reach the server
GEOETCD_VERSION = "3.5.17"  # gateway/admin_services.h kEtcdCompatibleVersion

# Deliberate differences: step label -> (geoetcd's exact value, why).
KNOWN_DIFFERENCES = {
    "server version (endpoint status -w json)": (
        ("value", GEOETCD_VERSION),
        "geoetcd reports an etcd 3.5 release >= 3.5.13 (Kubernetes' progress-based reads)"),
}

# Lease and member IDs: etcdctl prints them as %016x, but lock and election keys as %x, and
# geoetcd's random lease IDs may have leading zeros, so 12 to 16 digits, named by value.
HEX_ID = re.compile(r"\b[0-9a-f]{12,16}\b")
TOOK = re.compile(r"took = [0-9.]+(?:ns|µs|us|ms|s)")
REMAINING = re.compile(r"granted with TTL\((\d+)s\), remaining\((-?\d+)s\)")
ATTACHED = re.compile(r"attached keys\(\[([^\]]*)\]\)")
ID_FIELDS = ("ID", "id", "leader", "lease")
BLANKED = ("cluster_id", "member_id", "raft_term")


# --------------------------------------------------------------------------------------------
# A session: one scenario against one server
# --------------------------------------------------------------------------------------------

class Proc:
    """A long-running etcdctl whose stdout lines are read by a thread."""

    def __init__(self, session, args, stdin=False):
        self.session = session
        self.args = args
        self.p = subprocess.Popen(session.cmd(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  env=session.env, start_new_session=True)
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err.append),
                         daemon=True).start()

    @staticmethod
    def _read(f, sink):
        for raw in iter(f.readline, b""):
            sink(raw.decode("utf-8", "replace").rstrip("\n"))

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def close_stdin(self):
        self.p.stdin.close()

    def read(self, n, timeout=LINE_TIMEOUT, quiet=QUIET):
        """At least n lines (or what came before the timeout), then whatever follows within
        `quiet` seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.lines.get(timeout=left))
            except queue.Empty:
                break
        while True:
            try:
                out.append(self.lines.get(timeout=quiet))
            except queue.Empty:
                return out

    def exited(self):
        return self.p.poll() is not None

    def stop(self, sig=signal.SIGINT):
        """Signals the process if it still runs; returns its exit code."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)
            return "did not exit on %s" % sig

    def errors(self):
        time.sleep(0.05)  # the stderr reader may lag the exit by a moment
        return [l for l in self.err if not l.startswith('{"level"')]


class Session:
    def __init__(self, server):
        self.server = server
        self.steps = []
        self.ids = {}
        self.procs = []
        self.env = harness.clean_env({"ETCDCTL_API": "3"})

    def cmd(self, args):
        return [harness.etcdctl_bin(), "--endpoints", self.server.endpoint,
                "--dial-timeout=5s", "--command-timeout=10s"] + list(args)

    # -- normalization ---------------------------------------------------------------------------
    def id_name(self, hex_id):
        value = int(hex_id, 16)
        if value not in self.ids:
            self.ids[value] = "<id%d>" % (len(self.ids) + 1)
        return self.ids[value]

    def norm_text(self, text):
        srv = self.server
        text = text.replace(srv.client_url, "<client url>").replace(srv.peer_url, "<peer url>")
        text = text.replace(srv.endpoint, "<endpoint>")
        text = text.replace("3.4.23" if srv.kind == "etcd" else GEOETCD_VERSION, "<version>")
        text = TOOK.sub("took = <duration>", text)

        def remaining(m):
            granted, left = int(m.group(1)), int(m.group(2))
            shown = "in [TTL-2, TTL]" if granted - 2 <= left <= granted else str(left)
            return "granted with TTL(%ss), remaining(%s)" % (m.group(1), shown)

        text = REMAINING.sub(remaining, text)
        text = ATTACHED.sub(lambda m: "attached keys([%s])" % " ".join(sorted(m.group(1).split())),
                            text)
        return HEX_ID.sub(lambda m: self.id_name(m.group(0)), text)

    def norm_json(self, obj, parent=None):
        if isinstance(obj, dict):
            for k, v in list(obj.items()):
                if k in BLANKED:
                    obj[k] = harness.BLANK
                elif k in ID_FIELDS and isinstance(v, int) and v != 0:
                    obj[k] = self.id_name("%016x" % (v % 2 ** 64))
                elif k == "version" and isinstance(v, str):
                    obj[k] = "<version>"
                elif k in ("dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex",
                           "raftTerm", "hash") and isinstance(v, int):
                    obj[k] = "<%s>" % ("positive" if v > 0 else v)
                elif k in ("took",):
                    obj[k] = "<duration>"
                elif k in ("TTL", "ttl") and parent == "lease-ttl" and isinstance(v, int):
                    granted = obj.get("granted-ttl", obj.get("grantedTTL"))
                    if isinstance(granted, int) and granted - 2 <= v <= granted:
                        obj[k] = "in [TTL-2, TTL]"
                elif k in ("keys", "leases") and isinstance(v, list):
                    # etcd 3.4 lists both in Go map order.
                    obj[k] = sorted(self.norm_json(v, parent), key=str)
                else:
                    obj[k] = self.norm_json(v, parent)
        elif isinstance(obj, list):
            return [self.norm_json(v, parent) for v in obj]
        elif isinstance(obj, str):
            return self.norm_text(obj)
        return obj

    def norm_output(self, lines, json_out=False, parent=None):
        if json_out:
            out = []
            for line in lines:
                try:
                    out.append(self.norm_json(json.loads(line), parent))
                except ValueError:
                    out.append(self.norm_text(line))
            return out
        return [self.norm_text(l) for l in lines]

    # -- recording -------------------------------------------------------------------------------
    def record(self, label, value):
        self.steps.append((label, ("value", value)))

    def run(self, args, stdin=None, label=None, json_out=False, parent=None, sort_from=None):
        """One short etcdctl invocation: records exit code, stdout and stderr (minus logs);
        returns its raw stdout. sort_from: sort stdout's lines from that index on."""
        try:
            p = subprocess.run(self.cmd(args), input=(stdin or "").encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                               timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.record(label or "etcdctl " + " ".join(args), {"exit": "timeout"})
            return ""
        out = p.stdout.decode("utf-8", "replace")
        err = [l for l in p.stderr.decode("utf-8", "replace").splitlines()
               if not l.startswith('{"level"')]
        stdout = self.norm_output(out.splitlines(), json_out, parent)
        if sort_from is not None:
            stdout = stdout[:sort_from] + sorted(stdout[sort_from:])
        self.record(label or "etcdctl " + " ".join(args), {
            "exit": p.returncode,
            "stdout": stdout,
            "stderr": self.norm_output(err),
        })
        return out

    def spawn(self, args, stdin=False):
        proc = Proc(self, args, stdin)
        self.procs.append(proc)
        return proc

    def record_lines(self, label, lines):
        self.record(label, self.norm_output(lines))

    def record_exit(self, label, proc, sig=signal.SIGINT):
        code = proc.stop(sig)
        self.record(label, {"exit": code, "stderr": self.norm_output(proc.errors())})

    def kv_put(self, key, value):
        """A write through gRPC (so etcdctl's own output stays the only thing compared)."""
        self.server.stubs().kv.Put(rpc_pb2.PutRequest(key=key.encode(), value=value.encode()),
                                   timeout=5)

    def kv_delete(self, key):
        self.server.stubs().kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key.encode()),
                                           timeout=5)

    def close(self):
        for p in self.procs:
            if not p.exited():
                p.stop(signal.SIGKILL)


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

SCENARIOS = []
scenario = harness.scenario_registry(SCENARIOS)


@scenario
def sc_watch_live_prev_kv(s):
    s.kv_put("k", "v0")
    w = s.spawn(["watch", "k", "--prev-kv"])
    time.sleep(REGISTER_WAIT)
    s.kv_put("k", "v1")
    s.kv_put("other", "x")
    s.kv_put("k", "v2")
    s.kv_delete("k")
    # PUT/prev key/prev value/key/value per put; DELETE/prev key/prev value/key/"" last.
    s.record_lines("watch k --prev-kv output", w.read(15))
    s.record_exit("watch k --prev-kv exit on SIGINT", w)
    j = s.spawn(["watch", "k", "--rev", "2", "--prev-kv", "-w", "json"])
    # The replayed history comes as one watch response: one JSON line.
    s.record("watch k --rev 2 --prev-kv -w json output",
             s.norm_output(j.read(1), json_out=True))
    s.record_exit("watch -w json exit on SIGINT", j)


@scenario
def sc_watch_prefix(s):
    w = s.spawn(["watch", "--prefix", "p/"])
    time.sleep(REGISTER_WAIT)
    s.kv_put("p/a", "1")
    s.kv_put("q", "not watched")
    s.kv_put("p/b/c", "2")
    s.kv_put("p", "not under p/")
    s.kv_delete("p/a")
    s.record_lines("watch --prefix p/ output", w.read(9))
    s.record_exit("watch --prefix exit on SIGINT", w)
    r = s.spawn(["watch", "p/", "p0", "--rev", "1"])   # a key range replaying history
    s.record_lines("watch p/ p0 --rev 1 output", r.read(9))
    s.record_exit("watch range exit on SIGINT", r)


@scenario
def sc_watch_interactive(s):
    s.kv_put("k", "v0")
    w = s.spawn(["watch", "-i"], stdin=True)
    w.send("watch k --prev-kv")
    w.send("watch --prefix p/")
    time.sleep(REGISTER_WAIT)
    s.kv_put("k", "v1")
    s.record_lines("after put k (prev-kv watcher)", w.read(5))
    s.kv_put("p/a", "1")
    s.record_lines("after put p/a (prefix watcher)", w.read(3))
    s.kv_delete("k")
    s.record_lines("after delete k", w.read(5))
    w.send("watch k --rev 1")                             # replays k's history
    s.record_lines("after 'watch k --rev 1'", w.read(9))
    w.send("progress")                                    # every watcher is synced
    s.record_lines("after 'progress'", sorted(w.read(3)))
    w.send("bogus")                                       # complains on stderr
    s.record_lines("after 'bogus'", w.read(0))
    w.close_stdin()                                       # etcdctl exits on EOF
    deadline = time.monotonic() + 5
    while not w.exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    s.record("exited by itself on EOF", w.exited())
    s.record_exit("watch -i exit", w, signal.SIGKILL)


@scenario
def sc_lease_commands(s):
    def first_id(out):
        m = HEX_ID.search(out)
        return m.group(0) if m else "0"

    lease = first_id(s.run(["lease", "grant", "60"]))
    s.run(["lease", "list"])
    s.run(["put", "b", "1", "--lease=" + lease])
    s.run(["put", "a", "1", "--lease=" + lease])
    s.run(["lease", "timetolive", lease])
    s.run(["lease", "timetolive", lease, "--keys"])
    s.run(["lease", "timetolive", lease, "--keys", "-w", "json"], json_out=True,
          parent="lease-ttl")
    s.run(["lease", "keep-alive", "--once", lease])
    s.run(["lease", "keep-alive", "--once", lease, "-w", "json"], json_out=True)
    second = "%016x" % json.loads(s.run(["lease", "grant", "30", "-w", "json"],
                                        json_out=True) or '{"ID": 0}')["ID"]
    s.run(["lease", "list"], sort_from=1)                 # etcd lists in map order
    s.run(["lease", "list", "-w", "json"], json_out=True)
    s.run(["lease", "revoke", lease])
    s.run(["get", "", "--prefix", "--keys-only"])
    s.run(["lease", "timetolive", lease, "--keys"])
    s.run(["lease", "keep-alive", "--once", lease])        # unknown now: exit 2
    s.run(["lease", "revoke", lease])                      # NotFound: exit 1
    s.run(["lease", "revoke", "zz"])                       # not hex: etcdctl's own error
    s.run(["put", "c", "1", "--lease=" + lease])
    s.run(["lease", "grant", "1"])                         # raised to the 2 s minimum
    ka = s.spawn(["lease", "keep-alive", second])
    s.record_lines("lease keep-alive: the first renewal", ka.read(1, quiet=0.1)[:1])
    s.record_exit("lease keep-alive exit on SIGINT", ka)


@scenario
def sc_lock_two_contenders(s):
    a = s.spawn(["lock", "L"])
    s.record_lines("first contender holds the lock", a.read(1))
    # Waiters queue by the creation revision of their keys: start the third only once the
    # second is surely queued.
    b = s.spawn(["lock", "L"])
    time.sleep(REGISTER_WAIT)
    c = s.spawn(["lock", "L", "--", "sh", "-c", 'echo "got $ETCD_LOCK_KEY"'])
    time.sleep(REGISTER_WAIT)
    s.record_lines("second and third wait while the first holds it", b.read(0, quiet=0.1)
                   + c.read(0, quiet=0.1))
    s.record_exit("first contender releases on SIGINT", a)
    s.record_lines("second contender acquires after the release", b.read(1))
    s.record_lines("the command still waits", c.read(0, quiet=0.1))
    s.record_exit("second contender releases on SIGTERM", b, signal.SIGTERM)
    s.record_lines("the command runs once the lock is free", c.read(1))
    deadline = time.monotonic() + 10
    while not c.exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    s.record_exit("the command's lock exits with the command", c)
    s.run(["lock", "L", "--", "sh", "-c", 'echo "$ETCD_LOCK_KEY rev $ETCD_LOCK_REV"; exit 3'])
    s.run(["lock", "L", "echo", "free again"])
    s.run(["get", "L", "--prefix", "--keys-only"])      # every lock key is gone


@scenario
def sc_elect(s):
    e1 = s.spawn(["elect", "E", "p1"])
    s.record_lines("first candidate wins (key, proposal)", e1.read(2))
    listener = s.spawn(["elect", "-l", "E"])
    s.record_lines("listener shows the leader", listener.read(2))
    e2 = s.spawn(["elect", "E", "p2"])
    time.sleep(REGISTER_WAIT)
    s.record_lines("second candidate waits", e2.read(0, quiet=0.1))
    s.record_exit("first candidate resigns on SIGINT", e1)
    s.record_lines("second candidate takes over", e2.read(2))
    s.record_lines("listener shows the new leader", listener.read(2))
    s.record_exit("second candidate resigns on SIGINT", e2)
    s.record_lines("listener after the last leader left", listener.read(0, quiet=1.0))
    s.record_exit("listener exit on SIGINT", listener)
    s.run(["get", "E", "--prefix", "--keys-only"])


@scenario
def sc_endpoint_member_alarm(s):
    s.run(["put", "a", "1"])
    s.run(["endpoint", "health"])
    s.run(["endpoint", "health", "-w", "json"], json_out=True)
    s.run(["endpoint", "health", "--cluster"])
    s.run(["endpoint", "status", "-w", "table"], label="etcdctl endpoint status -w table")
    out = s.run(["endpoint", "status", "-w", "json"], json_out=True)
    try:
        version = json.loads(out)[0]["Status"]["version"]
    except (ValueError, LookupError, TypeError):
        version = "unparsable: %r" % out
    s.record("server version (endpoint status -w json)", version)
    s.run(["endpoint", "status", "--cluster", "-w", "table"])
    s.run(["endpoint", "hashkv", "-w", "table"])
    s.run(["endpoint", "hashkv", "-w", "json"], json_out=True)
    s.run(["endpoint", "hashkv", "--rev", "1", "-w", "json"], json_out=True)
    s.run(["defrag"])
    s.run(["defrag", "--cluster"])
    s.run(["member", "list"])
    s.run(["member", "list", "-w", "table"])
    s.run(["member", "list", "-w", "json"], json_out=True)
    s.run(["alarm", "list"])
    s.run(["alarm", "list", "-w", "json"], json_out=True)
    s.run(["get", "a"])


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------

def table_rows(lines):
    """An etcdctl table as rows of stripped cells (column widths depend on the values)."""
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines if l.startswith("|")]


def shape_tables(steps):
    """Tables compare cell by cell; DB SIZE, RAFT TERM/INDEX and HASH cells by shape."""
    for _, (kind, value) in steps:
        if not isinstance(value, dict) or not any(isinstance(l, str) and l.startswith("+-")
                                                  for l in value.get("stdout", [])):
            continue
        rows = table_rows(value["stdout"])
        if rows:
            header = rows[0]
            for row in rows[1:]:
                for i, name in enumerate(header):
                    if i < len(row) and name in ("DB SIZE", "RAFT TERM", "RAFT INDEX",
                                                 "RAFT APPLIED INDEX", "HASH"):
                        row[i] = "<set>" if row[i] else ""
        value["stdout"] = rows


def main(argv):
    # Both servers are named m1 (member list output names them).
    return harness.run_differential(
        SCENARIOS, Session, argv, KNOWN_DIFFERENCES, server_name="m1", timeout=180,
        needs_etcdctl=True, on_raise=lambda s, tb: s.record("scenario raised", tb),
        after=lambda s: shape_tables(s.steps))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
