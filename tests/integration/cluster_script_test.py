#!/usr/bin/python3
"""scripts/cluster.sh as a new user runs it: start three regions, etcdctl against each, status,
stop, start again on the same data, and its refusals (issue 10, item 9).

Uses the script's fixed ports (2379/22379/32379 and 2380/22380/32380) with the data in a
temp dir (GEOETCD_CLUSTER_DIR) and the built binary (GEOETCD_BIN).

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/cluster_script_test.py
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "scripts", "cluster.sh")
ENDPOINTS = ["127.0.0.1:2379", "127.0.0.1:22379", "127.0.0.1:32379"]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Env:
    dir = None

    @classmethod
    def get(cls):
        if cls.dir is None:
            cls.dir = harness.make_temp_dir("cluster-script-")
        return harness.clean_env({"GEOETCD_CLUSTER_DIR": cls.dir,
                                  "GEOETCD_BIN": harness.geoetcd_bin(), "ETCDCTL_API": "3"})


def script(*args, want_rc=0):
    out = subprocess.run([SCRIPT] + list(args), env=Env.get(), capture_output=True, text=True,
                         timeout=120)
    check(out.returncode == want_rc, "cluster.sh %s: rc %d (want %d)\nstdout:\n%s\nstderr:\n%s"
          % (" ".join(args), out.returncode, want_rc, out.stdout, out.stderr))
    return out


def etcdctl(endpoint, *args):
    out = subprocess.run([harness.etcdctl_bin(), "--endpoints", endpoint] + list(args),
                         env=Env.get(), capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "etcdctl %s %s: %s" % (endpoint, " ".join(args), out.stderr))
    return out.stdout


def test_start_use_status_stop():
    try:
        script("start", "3")
        # A write at every region, each read back at every region.
        for i, ep in enumerate(ENDPOINTS):
            check(etcdctl(ep, "put", "k%d" % i, "v%d" % i).strip() == "OK", "put at %s" % ep)
        for ep in ENDPOINTS:
            for i in range(3):
                got = etcdctl(ep, "get", "k%d" % i).split()
                check(got == ["k%d" % i, "v%d" % i], "get k%d at %s: %s" % (i, ep, got))
        status = script("status").stdout
        for r in ("r1", "r2", "r3"):
            check("%s: running" % r in status, "status lacks %s running:\n%s" % (r, status))
        # etcdctl's own view: three members, one leader.
        members = etcdctl(ENDPOINTS[2], "member", "list").strip().splitlines()
        check(len(members) == 3 and all(", started, " in m for m in members),
              "member list:\n%s" % "\n".join(members))
        script("start", "3", want_rc=1)  # already running
        script("stop")
        check("no cluster here" in script("status").stdout, "status after stop")
        # The data stays: a second start serves what the first stored.
        script("start", "3")
        got = etcdctl(ENDPOINTS[1], "get", "k2").split()
        check(got == ["k2", "v2"], "after restart: %s" % got)
    finally:
        subprocess.run([SCRIPT, "stop"], env=Env.get(), capture_output=True, timeout=60)


def test_refusals():
    script("start", "1", want_rc=2)
    script("start", "6", want_rc=2)
    script("bogus", want_rc=2)


if __name__ == "__main__":
    sys.exit(harness.run_tests([test_refusals, test_start_use_status_stop], Failure,
                               announce=True))
