#!/usr/bin/python3
"""Differential conformance through the real etcdctl (ETCDCTL_API=3, -w json).

Each scenario is a list of etcdctl invocations run against a fresh reference etcd and a fresh
geoetcd. For every invocation the exit code, stdout (parsed JSON with header cluster_id /
member_id / raft_term blanked, or raw text) and the "Error: ..." lines of stderr are
compared. etcdctl's own log lines (timestamps, random client ids) are ignored.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/etcdctl_conformance_test.py
      [-k substring ...] [--list] [-v] [--dump]
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

CMD_TIMEOUT = 30  # seconds per etcdctl invocation (its own RPC timeout is 5 s)

J = ["-w", "json"]

# (name, [ (args, stdin or None), ... ])
SCENARIOS = [
    ("put_get", [
        (["put", "a", "1"] + J, None),
        (["put", "a", "2", "--prev-kv"] + J, None),
        (["put", "b", "x y z"] + J, None),
        (["get", "a"] + J, None),
        (["get", "missing"] + J, None),
        (["get", "a", "--keys-only"] + J, None),
        (["get", "a", "--consistency=s"] + J, None),
        (["get", "a"], None),                                  # simple text output
        (["get", "a", "--print-value-only"], None),
    ]),
    ("get_prefix_and_ranges", [
        (["put", "p/a", "1"], None),
        (["put", "p/b", "2"], None),
        (["put", "p/c/d", "3"], None),
        (["put", "p0", "4"], None),
        (["put", "q", "5"], None),
        (["get", "p/", "--prefix"] + J, None),
        (["get", "p", "--prefix", "--keys-only"] + J, None),
        (["get", "", "--prefix"] + J, None),
        (["get", "p0", "--from-key"] + J, None),
        (["get", "", "--from-key", "--keys-only"] + J, None),
        (["get", "p/a", "p/c"] + J, None),
        (["get", "p/", "--prefix", "--limit", "2"] + J, None),
        (["get", "zz", "--prefix"] + J, None),
        (["get", "p/", "--prefix"], None),
    ]),
    ("get_sort", [
        (["put", "k3", "c"], None),
        (["put", "k1", "e"], None),
        (["put", "k2", "a"], None),
        (["put", "k1", "e2"], None),
        (["put", "k3", "c2"], None),
        (["put", "k3", "c3"], None),
    ] + [
        (["get", "k", "--prefix", "--sort-by=" + t, "--order=" + o] + J, None)
        for t in ("KEY", "VERSION", "CREATE", "MODIFY", "VALUE")
        for o in ("ASCEND", "DESCEND")
    ] + [
        (["get", "k", "--prefix", "--sort-by=VALUE"] + J, None),
        (["get", "k", "--prefix", "--order=DESCEND"] + J, None),
        (["get", "k", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit", "2"] + J,
         None),
        (["get", "k", "--prefix", "--limit", "1"] + J, None),
    ]),
    ("get_revisions", [
        (["put", "a", "1"], None),
        (["put", "a", "2"], None),
        (["del", "a"], None),
        (["put", "a", "3"], None),
        (["get", "a", "--rev", "2"] + J, None),
        (["get", "a", "--rev", "3"] + J, None),
        (["get", "a", "--rev", "4"] + J, None),
        (["get", "a", "--rev", "5"] + J, None),
        (["get", "a", "--rev", "0"] + J, None),
        (["get", "a", "--rev", "6"] + J, None),
        (["get", "a", "--rev", "1000"] + J, None),
        (["get", "", "--prefix", "--rev", "3"] + J, None),
    ]),
    ("del", [
        (["put", "a", "1"], None),
        (["put", "b", "2"], None),
        (["put", "c", "3"], None),
        (["put", "p/x", "4"], None),
        (["put", "p/y", "5"], None),
        (["del", "a"] + J, None),
        (["del", "a"] + J, None),
        (["del", "missing", "--prev-kv"] + J, None),
        (["del", "p/", "--prefix", "--prev-kv"] + J, None),
        (["del", "b", "d"] + J, None),
        (["put", "z", "9"], None),
        (["del", "", "--from-key"] + J, None),
        (["get", "", "--prefix"] + J, None),
        (["del", "x"], None),
    ]),
    ("txn", [
        (["put", "a", "1"], None),
        (["txn"] + J, 'mod("a") > "0"\n\nput a 2\nget a\n\nput f 1\n\n'),
        (["txn"] + J, 'value("a") = "nope"\n\nput a 3\n\nput f 2\nget f\ndel a\n\n'),
        (["txn"] + J, 'version("zz") = "0"\ncreate("a") < "100"\n\nget a\n\n\n'),
        (["txn"] + J, '\nput x 1\nput y 2\nget "" --prefix\n\n\n'),
        (["txn"] + J, 'mod("f") = "0"\n\nput f 9\n\nget f --prefix\ndel f --prev-kv\n\n'),
        (["txn"] + J, '\nput dup 1\nput dup 2\n\n\n'),
        (["txn"] + J, '\nget a --rev 1000\n\n\n'),
        (["txn"], 'value("x") = "1"\n\nput x 5\n\nput x 6\n\n'),
        (["get", "", "--prefix"] + J, None),
    ]),
    ("compaction", [
        (["put", "a", "1"], None),
        (["put", "a", "2"], None),
        (["put", "a", "3"], None),
        (["put", "b", "1"], None),
        (["compaction", "3"] + J, None),
        (["compaction", "3"], None),
        (["compaction", "2"], None),
        (["get", "a", "--rev", "2"] + J, None),
        (["get", "a", "--rev", "3"] + J, None),
        (["compaction", "100"], None),
        (["compaction", "4", "--physical"], None),
        (["get", "", "--prefix"] + J, None),
    ]),
    ("put_options_and_errors", [
        (["put", "", "x"] + J, None),
        (["get", ""] + J, None),
        (["put", "a", "--ignore-value"] + J, None),
        (["put", "a", "1"] + J, None),
        (["put", "a", "--ignore-value", "--prev-kv"] + J, None),
        (["put", "a", "5", "--ignore-lease"] + J, None),
        (["put", "b", "1", "--lease=1234"] + J, None),
        (["get", "a"] + J, None),
        (["del", ""] + J, None),
    ]),
]


def parse_stdout(text):
    text = text.strip()
    if not text:
        return ""
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    return harness.decode_b64_fields(harness.blank_json_headers(obj))


def run_etcdctl(server, args, stdin):
    cmd = [harness.etcdctl_bin(), "--endpoints", server.endpoint, "--command-timeout=5s",
           "--dial-timeout=5s"] + args
    env = harness.clean_env({"ETCDCTL_API": "3"})
    try:
        p = subprocess.run(cmd, input=(stdin or "").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"exit": "timeout"}
    err = p.stderr.decode("utf-8", "replace")
    return {
        "exit": p.returncode,
        "stdout": parse_stdout(p.stdout.decode("utf-8", "replace")),
        "errors": [l.strip() for l in err.splitlines() if l.startswith("Error:")],
    }


class Session:
    """One scenario's etcdctl invocations against one server, as (label, result) steps."""

    def __init__(self, server):
        self.server = server
        self.steps = []

    def run(self, args, stdin):
        label = "etcdctl " + " ".join(a if a else '""' for a in args)
        if stdin:
            label += "  <<< %r" % stdin
        self.steps.append((label, run_etcdctl(self.server, args, stdin)))


def invoke(steps):
    """A scenario function running `steps` in order."""
    def fn(s):
        for args, stdin in steps:
            s.run(args, stdin)
    return fn


def dump_step(name, number, e, g):
    """--dump: etcd's transcript."""
    print("  %2d %s\n       -> %r" % (number, e[0], e[1]))


def main(argv):
    # on_raise=None: an exception ends the thread and the scenario fails as "did not finish"
    # (a recorded exception step could compare equal if both servers raised alike).
    return harness.run_differential(
        [(name, invoke(steps)) for name, steps in SCENARIOS], Session, argv, timeout=600,
        needs_etcdctl=True, on_raise=None, dump_step=dump_step, max_diffs_shown=None)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
