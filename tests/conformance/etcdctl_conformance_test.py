#!/usr/bin/python3
"""Differential conformance through the real etcdctl (ETCDCTL_API=3, -w json).

Each scenario is a list of etcdctl invocations run against a fresh reference etcd and a fresh
geoetcd. For every invocation the exit code, stdout (parsed JSON with header cluster_id /
member_id / raft_term blanked, or raw text) and the "Error: ..." lines of stderr are
compared. etcdctl's own log lines (timestamps, random client ids) are ignored.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/etcdctl_conformance_test.py
      [-k substring ...] [-v] [--dump]
"""

import base64
import json
import os
import subprocess
import sys
import threading
import time

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


def decode_b64_fields(obj):
    """Render base64 key/value fields (etcdctl -w json) readably."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("key", "value") and isinstance(v, str):
                try:
                    obj[k] = harness.render_bytes(base64.b64decode(v, validate=True))
                except Exception:
                    pass
            else:
                decode_b64_fields(v)
    elif isinstance(obj, list):
        for v in obj:
            decode_b64_fields(v)
    return obj


def parse_stdout(text):
    text = text.strip()
    if not text:
        return ""
    try:
        obj = json.loads(text)
    except ValueError:
        return text
    return decode_b64_fields(harness.blank_json_headers(obj))


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


def run_on(server, steps, out):
    results = []
    for args, stdin in steps:
        results.append(run_etcdctl(server, args, stdin))
    out[server.kind] = results


def run_scenario(name, steps, verbose=False, dump=False):
    t0 = time.monotonic()
    try:
        etcd, geo = harness.start_pair()
    except Exception as exc:
        return ["could not start servers: %s" % exc]
    try:
        out = {}
        threads = [threading.Thread(target=run_on, args=(srv, steps, out)) for srv in (etcd, geo)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        if len(out) != 2:
            return ["scenario did not finish"]
        before = len(harness.DIFFS)
        for i, (args, stdin) in enumerate(steps):
            label = "etcdctl " + " ".join(a if a else '""' for a in args)
            if stdin:
                label += "  <<< %r" % stdin
            if dump:
                print("  %2d %s\n       -> %r" % (i + 1, label, out["etcd"][i]))
            harness.compare("%s step %d: %s" % (name, i + 1, label), out["etcd"][i],
                            out["geoetcd"][i])
        if not geo.alive():
            harness.DIFFS.append(("%s: geoetcd exited (code %s)" % (name, geo.proc.returncode),
                                  "    stderr tail:\n" + geo.stderr_tail(2000)))
        if verbose:
            print("  %-30s %.2fs" % (name, time.monotonic() - t0))
        return harness.DIFFS[before:]
    finally:
        etcd.destroy()
        geo.destroy()


def main(argv):
    verbose = "-v" in argv
    dump = "--dump" in argv
    filters = [argv[i + 1] for i, a in enumerate(argv) if a == "-k" and i + 1 < len(argv)]
    try:
        harness.geoetcd_bin()
        harness.etcd_bin()
        harness.etcdctl_bin()
    except harness.HarnessError as exc:
        print("FATAL: %s" % exc)
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for name, steps in SCENARIOS:
        if filters and not any(f in name for f in filters):
            continue
        diffs = run_scenario(name, steps, verbose, dump)
        if diffs:
            failed += 1
            print("FAIL %s" % name)
            for d in diffs:
                print("  DIFF %s\n%s" % d if isinstance(d, tuple) else "  %s" % d)
        else:
            passed += 1
            print("ok   %s" % name)
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
