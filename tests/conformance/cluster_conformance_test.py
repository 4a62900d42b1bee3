#!/usr/bin/python3
"""Three members side by side: a real three-member etcd 3.4 and three geoetcd regions, each
started with the same etcd cluster flags, driven by the real etcdctl (issue 10: "three
regions started with etcd's flags behave as one linearizable etcd cluster").

The same etcdctl invocations go to the second and third member of each cluster in turn
(for geoetcd: regions that are not the write region, so every mutation is forwarded). Every
result is compared: exit code, stdout (-w json, header cluster_id / member_id / raft_term
blanked) and the "Error:" lines. The cluster-wide commands are compared by shape: `member
list` (names, peer and client URLs, learner flags), `endpoint status --cluster` (one entry
per member, exactly one leader), `endpoint health --cluster`.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/cluster_conformance_test.py
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

J = ["-w", "json"]
NAMES = ["m1", "m2", "m3"]

# (member index, args, stdin)
STEPS = [
    (1, ["put", "a", "1"] + J, None),
    (2, ["get", "a"] + J, None),
    (2, ["put", "a", "2", "--prev-kv"] + J, None),
    (1, ["get", "a", "--consistency=l"] + J, None),
    (1, ["txn", "-w", "json"], 'value("a") = "2"\n\nput b x\nget a\n\nput b y\n\n'),
    (2, ["txn", "-w", "json"], 'value("a") = "nope"\n\nput c 1\n\nput c 2\n\n'),
    (2, ["get", "", "--prefix"] + J, None),
    (1, ["del", "b", "--prev-kv"] + J, None),
    (2, ["get", "b"] + J, None),
    (1, ["put", "d", "v", "--lease=1234abcd"], None),  # unknown lease: W's error
    (2, ["compaction", "3"], None),
    (1, ["get", "a", "--rev=2"] + J, None),            # compacted away
    (1, ["compaction", "100"], None),                  # a future revision
    (2, ["get", "a", "--rev=4"] + J, None),
    (1, ["get", "", "--prefix", "--consistency=s", "--keys-only"] + J, None),
]


class Failure(Exception):
    pass


def etcdctl(endpoints, args, stdin=None, blank=True):
    p = subprocess.run([harness.etcdctl_bin(), "--endpoints", endpoints, "--command-timeout=5s",
                        "--dial-timeout=5s"] + args, input=(stdin or "").encode(),
                       capture_output=True, env=harness.clean_env({"ETCDCTL_API": "3"}),
                       timeout=30)
    out = p.stdout.decode("utf-8", "replace").strip()
    try:
        out = json.loads(out)
        out = harness.decode_b64_fields(harness.blank_json_headers(out) if blank else out)
    except ValueError:
        pass
    stderr = p.stderr.decode("utf-8", "replace")
    errors = [l.strip() for l in stderr.splitlines() if l.startswith("Error:")]
    return {"exit": p.returncode, "stdout": out, "errors": errors, "stderr": stderr}


def start_cluster(kind):
    servers = [harness.Server(kind=kind, name=n) for n in NAMES]
    for s in servers:
        s.client_port = harness.free_port()
        s.peer_port = harness.free_port()
    cluster = ",".join("%s=%s" % (s.name, s.peer_url) for s in servers)
    for s in servers:
        args = ["--name", s.name, "--data-dir", s.data_dir,
                "--listen-client-urls", s.client_url, "--advertise-client-urls", s.client_url,
                "--listen-peer-urls", s.peer_url, "--initial-advertise-peer-urls", s.peer_url,
                "--initial-cluster", cluster, "--initial-cluster-token", "conformance"]
        if kind == "etcd":
            args += ["--logger", "zap", "--log-level", "error"]
        s.args_override = args
        s.spawn(new_ports=False)
    for s in servers:
        s.wait_ready(timeout=60)
    return servers


def members_shape(servers):
    got = etcdctl(servers[2].endpoint, ["member", "list"] + J)
    if got["exit"] != 0:
        return got
    return sorted((m.get("name"), tuple(m.get("peerURLs", [])), tuple(m.get("clientURLs", [])),
                   bool(m.get("isLearner", False))) for m in got["stdout"]["members"])


def status_shape(servers):
    got = etcdctl(servers[1].endpoint, ["endpoint", "status", "--cluster"] + J, blank=False)
    if got["exit"] != 0:
        return got
    entries = got["stdout"]
    leaders = {e["Status"]["leader"] for e in entries}
    ids = {e["Status"]["header"]["member_id"] for e in entries}
    return {"endpoints": sorted(e["Endpoint"].rsplit(":", 1)[0] for e in entries),
            "one_leader_agreed": len(leaders) == 1 and leaders <= ids}


def health_shape(servers):
    got = etcdctl(servers[0].endpoint, ["endpoint", "health", "--cluster"])
    text = (got["stdout"] if isinstance(got["stdout"], str) else "") + got["stderr"]
    return {"exit": got["exit"], "healthy": text.count("is healthy")}


def main():
    try:
        harness.geoetcd_bin()
        harness.etcd_bin()
        harness.etcdctl_bin()
    except harness.HarnessError as exc:
        print("FATAL: %s" % exc)
        print("0 passed, 1 failed")
        return 1
    results = {}
    for kind in ("etcd", "geoetcd"):
        servers = start_cluster(kind)
        try:
            steps = []
            for i, args, stdin in STEPS:
                r = etcdctl(servers[i].endpoint, args, stdin)
                del r["stderr"]  # etcdctl's own log lines: timestamps, client ids
                steps.append(r)
            # Member URLs differ between the two clusters by port only: compare their count.
            members = members_shape(servers)
            if isinstance(members, list):
                members = [(n, len(p), len(c), l) for n, p, c, l in members]
            status = status_shape(servers)
            if isinstance(status, dict) and "endpoints" in status:
                status["endpoints"] = len(status["endpoints"])
            results[kind] = {"steps": steps, "members": members, "status": status,
                             "health": health_shape(servers)}
        finally:
            for s in servers:
                s.destroy()
    passed = failed = 0
    e, g = results["etcd"], results["geoetcd"]
    for n, (i, args, _) in enumerate(STEPS):
        label = "m%d: etcdctl %s" % (i + 1, " ".join(args))
        if e["steps"][n] == g["steps"][n]:
            passed += 1
        else:
            failed += 1
            print("FAIL %s\n  etcd    %r\n  geoetcd %r" % (label, e["steps"][n], g["steps"][n]))
    for what in ("members", "status", "health"):
        if e[what] == g[what]:
            passed += 1
        else:
            failed += 1
            print("FAIL %s\n  etcd    %r\n  geoetcd %r" % (what, e[what], g[what]))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
