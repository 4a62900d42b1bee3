#!/usr/bin/env python3
"""The Node.js etcd client (npm `etcd3`, @grpc/grpc-js over Node's nghttp2) against a real
etcd 3.4 and geoetcd: one scripted session (node/probe.js: put, get, prefix, count, watch,
lease put/revoke, txn both ways, an empty key, a request over the size limit, a 1 MiB value,
delete) on each server, transcripts compared line by line.

A third HTTP/2 implementation, next to grpc-go (etcdctl) and gRPC C core (python3-etcd3),
talking to geoetcd's own transport. The client is installed with `npm ci` from the pinned
package-lock.json into $GEOETCD_NODE_DIR (default: node-client/ beside GEOETCD_BIN) the first
time; node and npm are required (scripts/deps.sh test installs them). Without them, or
without the npm registry, the suite fails: it never skips.

The one known difference is pinned: a message over the receive limit gets gRPC C++'s
wording ("Received message larger than max (N vs. M)") where etcd has Go's ("grpc: received
message larger than max (N vs. M)"); see README, Compatibility.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_SRC = os.path.join(HERE, "node")
GO_WORDING = "RESOURCE_EXHAUSTED: grpc: received message larger than max"
CPP_WORDING = "RESOURCE_EXHAUSTED: Received message larger than max"


class Failure(Exception):
    pass


def node_dir():
    default = os.path.join(os.path.dirname(os.path.abspath(harness.geoetcd_bin())), "node-client")
    return os.environ.get("GEOETCD_NODE_DIR", default)


def install_client():
    """npm ci into node_dir() unless the same lock file is installed there already."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise Failure("%s is not on PATH (scripts/deps.sh test installs nodejs and npm)" % tool)
    target = node_dir()
    lock = open(os.path.join(NODE_SRC, "package-lock.json")).read()
    stamp = os.path.join(target, ".installed-lock")
    if os.path.exists(stamp) and open(stamp).read() == lock:
        return target
    os.makedirs(target, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(NODE_SRC, name), os.path.join(target, name))
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=target,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    if p.returncode != 0:
        raise Failure("npm ci failed (is the npm registry reachable?):\n%s" %
                      p.stdout.decode("utf-8", "replace")[-2000:])
    with open(stamp, "w") as f:
        f.write(lock)
    return target


def session(kind, modules):
    srv = harness.Server(kind)
    try:
        srv.start()
        env = dict(os.environ, NODE_PATH=os.path.join(modules, "node_modules"))
        p = subprocess.run(["node", os.path.join(NODE_SRC, "probe.js"),
                            "127.0.0.1:%d" % srv.client_port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=120)
        out = p.stdout.decode("utf-8", "replace").splitlines()
        if p.returncode != 0 or any(line.startswith("FAIL") for line in out):
            raise Failure("%s session failed (exit %d):\n%s" % (kind, p.returncode, "\n".join(out)))
        return out
    finally:
        srv.destroy()


def test_node_client_matches_etcd():
    modules = install_client()
    etcd = session("etcd", modules)
    geo = session("geoetcd", modules)
    if len(etcd) != len(geo) or len(geo) != 15:
        raise Failure("transcripts differ in length (%d vs %d):\netcd:\n%s\ngeoetcd:\n%s" %
                      (len(etcd), len(geo), "\n".join(etcd), "\n".join(geo)))
    pinned = 0
    for e, g in zip(etcd, geo):
        if e == g:
            continue
        if GO_WORDING in e and g == e.replace(GO_WORDING, CPP_WORDING):
            pinned += 1
            continue
        raise Failure("differs:\n  etcd:    %s\n  geoetcd: %s" % (e, g))
    if pinned != 1:
        raise Failure("expected the size-limit wording difference exactly once, saw %d" % pinned)


if __name__ == "__main__":
    sys.exit(harness.run_tests([test_node_client_matches_etcd], Failure))
