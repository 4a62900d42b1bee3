#!/usr/bin/python3
"""Backups end to end: Maintenance/Snapshot and `geoetcd snapshot restore`.

  * a snapshot taken through the raw RPC and one taken with `etcdctl snapshot save` both
    restore into a new data dir that serves exactly the source's data: every key with its
    revisions, version and lease, history since the compaction point, the revision, HashKV,
    the compaction point and the leases
  * the stream has etcd's shape: 32 KiB blobs, remaining_bytes counting down, the SHA-256
    digest alone in the last message
  * restore refuses a corrupt archive, a truncated one, an etcd (bbolt) snapshot and a
    non-empty data dir, with a clear message and nothing left behind
  * a stream cancelled mid-way leaves no checkpoint behind; concurrent snapshots all work

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/snapshot_test.py
"""

import os
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

CMD_TIMEOUT = 60
BLOB_BYTES = 32 * 1024
DIGEST_BYTES = 32


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run(cmd, env=None, timeout=CMD_TIMEOUT):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, env=harness.clean_env(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not exit within %ds" % (" ".join(cmd), timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def geoetcd(*args):
    return run([harness.geoetcd_bin()] + list(args))


def etcdctl(server, *args):
    return run([harness.etcdctl_bin(), "--endpoints", server.endpoint, "--command-timeout=30s",
                "--dial-timeout=5s"] + list(args), env={"ETCDCTL_API": "3"})


def snapshot_rpc(server):
    """Reads a whole Snapshot stream, checking etcd's shape; returns the archive bytes."""
    messages = list(server.stubs().maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=60))
    check(len(messages) >= 2, "snapshot stream has %d messages" % len(messages))
    body = b"".join(m.blob for m in messages[:-1])
    sent = 0
    for i, m in enumerate(messages[:-1]):
        check(0 < len(m.blob) <= BLOB_BYTES, "message %d carries %d bytes" % (i, len(m.blob)))
        sent += len(m.blob)
        check(m.remaining_bytes == len(body) - sent,
              "message %d: remaining_bytes %d, expected %d" % (i, m.remaining_bytes,
                                                               len(body) - sent))
    last = messages[-1]
    check(len(last.blob) == DIGEST_BYTES and last.remaining_bytes == 0,
          "last message: %d bytes, remaining %d" % (len(last.blob), last.remaining_bytes))
    return body + last.blob


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def populate(server):
    """History with overwrites, deletes, leases and a compaction; returns the lease ids."""
    kv, lease = server.stubs().kv, server.stubs().lease
    t = harness.RPC_TIMEOUT
    for i in range(30):
        kv.Put(rpc_pb2.PutRequest(key=b"k%02d" % (i % 12), value=b"v%d" % i), timeout=t)
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k03"), timeout=t)
    kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"k05", range_end=b"k07"), timeout=t)
    leases = []
    for ttl in (600, 900):
        leases.append(lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=t).ID)
    for i, lid in enumerate(leases):
        for j in range(3):
            kv.Put(rpc_pb2.PutRequest(key=b"leased/%d/%d" % (i, j), value=b"x", lease=lid),
                   timeout=t)
    head = kv.Range(rpc_pb2.RangeRequest(key=b"k00"), timeout=t).header.revision
    kv.Compact(rpc_pb2.CompactionRequest(revision=head - 10, physical=True), timeout=t)
    for i in range(8):
        kv.Put(rpc_pb2.PutRequest(key=b"after/%d" % i, value=os.urandom(100)), timeout=t)
    kv.Txn(rpc_pb2.TxnRequest(success=[
        rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"txn/a", value=b"1")),
        rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"k00"))]),
        timeout=t)
    return leases


def state(server):
    """Everything a restore must reproduce, as comparable plain data."""
    s = server.stubs()
    t = harness.RPC_TIMEOUT
    everything = rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0")
    head = s.kv.Range(everything, timeout=t)
    rev = head.header.revision
    hkv = s.maintenance.HashKV(rpc_pb2.HashKVRequest(revision=0), timeout=t)
    history = {}
    for r in range(hkv.compact_revision, rev + 1):
        req = rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=r)
        history[r] = [harness.to_dict(kv) for kv in s.kv.Range(req, timeout=t).kvs]
    leases = {}
    for l in s.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest(), timeout=t).leases:
        ttl = s.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=l.ID, keys=True),
                                      timeout=t)
        leases[l.ID] = (ttl.grantedTTL, sorted(ttl.keys))
    return {
        "revision": rev,
        "kvs": [harness.to_dict(kv) for kv in head.kvs],
        "hash": hkv.hash,
        "compact_revision": hkv.compact_revision,
        "history": history,
        "leases": leases,
    }


def check_same_state(want, got, what):
    diffs = harness.diff_values(want, got)
    check(not diffs, "%s differs from the source:\n  %s" % (what, "\n  ".join(diffs[:20])))


def restore_and_compare(archive_path, want, label):
    rc, out, err = geoetcd("snapshot", "status", archive_path)
    check(rc == 0 and "ok" in out, "%s: snapshot status rc=%d out=%r err=%r"
          % (label, rc, out, err))
    data_dir = os.path.join(harness.make_temp_dir("geoetcd-restored-"), "data")
    rc, out, err = geoetcd("snapshot", "restore", archive_path, "--data-dir", data_dir)
    check(rc == 0, "%s: restore rc=%d err=%r" % (label, rc, err))
    check("restored" in out, "%s: restore printed %r" % (label, out))
    restored = harness.Server("geoetcd", name="g1", data_dir=data_dir).start()
    try:
        check_same_state(want, state(restored), "%s: the restored server" % label)
        # Revisions continue where the source stopped.
        put = restored.stubs().kv.Put(rpc_pb2.PutRequest(key=b"next", value=b"1"),
                                      timeout=harness.RPC_TIMEOUT)
        check(put.header.revision == want["revision"] + 1,
              "%s: next revision %d" % (label, put.header.revision))
    finally:
        restored.destroy()


def test_rpc_and_etcdctl_snapshots_restore_to_identical_data():
    geo = harness.Server("geoetcd").start()
    try:
        populate(geo)
        want = state(geo)
        check(len(want["leases"]) == 2 and want["compact_revision"] > 1, "setup: %r" % want)
        tmp = harness.make_temp_dir("geoetcd-snap-")
        rpc_path = os.path.join(tmp, "rpc.db")
        write_file(rpc_path, snapshot_rpc(geo))
        ctl_path = os.path.join(tmp, "etcdctl.db")
        rc, out, err = etcdctl(geo, "snapshot", "save", ctl_path)
        check(rc == 0 and "Snapshot saved at %s" % ctl_path in out,
              "etcdctl snapshot save rc=%d out=%r err=%r" % (rc, out, err[-500:]))
        check(os.path.exists(ctl_path) and not os.path.exists(ctl_path + ".part"),
              "etcdctl left %r" % os.listdir(tmp))
        check(os.path.getsize(ctl_path) % 512 == DIGEST_BYTES, "etcdctl file size")
        check(state(geo) == want, "taking snapshots changed the source")
        check(os.listdir(os.path.join(geo.data_dir, "snapshot-tmp")) == [],
              "checkpoints left behind")
        restore_and_compare(rpc_path, want, "RPC snapshot")
        restore_and_compare(ctl_path, want, "etcdctl snapshot")
        # Not etcd's format: etcdctl cannot read it (docs/operations.md says so).
        rc, _, _ = run([harness.etcdctl_bin(), "snapshot", "status", ctl_path],
                       env={"ETCDCTL_API": "3"})
        check(rc != 0, "etcdctl snapshot status accepted a geoetcd archive")
    finally:
        geo.destroy()


def expect_refused(archive_path, data_dir, needle):
    rc, out, err = geoetcd("snapshot", "restore", archive_path, "--data-dir", data_dir)
    check(rc == 1, "restore of %s: rc=%d out=%r err=%r" % (archive_path, rc, out, err))
    check(needle in err, "restore of %s: %r does not say %r" % (archive_path, err, needle))


def test_restore_refuses_bad_archives_and_used_dirs():
    geo = harness.Server("geoetcd").start()
    try:
        populate(geo)
        archive = snapshot_rpc(geo)
    finally:
        geo.destroy()
    tmp = harness.make_temp_dir("geoetcd-snap-bad-")
    target = os.path.join(tmp, "target")
    cases = [
        ("corrupt.db", archive[:len(archive) // 2] + bytes([archive[len(archive) // 2] ^ 1]) +
         archive[len(archive) // 2 + 1:], "SHA-256 mismatch"),
        ("half.db", archive[:len(archive) // 2], "truncated"),
        ("nodigest.db", archive[:-DIGEST_BYTES], "truncated"),
        ("empty.db", b"", "not a geoetcd snapshot"),
    ]
    for name, data, needle in cases:
        path = os.path.join(tmp, name)
        write_file(path, data)
        expect_refused(path, target, needle)
        check(not os.path.exists(target), "%s: restore left %s behind" % (name, target))
        rc, _, err = geoetcd("snapshot", "status", path)
        check(rc == 1 and needle in err, "snapshot status of %s: rc=%d %r" % (name, rc, err))

    # A real etcd snapshot (bbolt) is recognized and refused with a clear message.
    etcd = harness.Server("etcd").start()
    try:
        etcd.stubs().kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"1"), timeout=harness.RPC_TIMEOUT)
        etcd_path = os.path.join(tmp, "etcd.db")
        rc, _, err = etcdctl(etcd, "snapshot", "save", etcd_path)
        check(rc == 0, "etcdctl snapshot save against etcd: %r" % err[-500:])
    finally:
        etcd.destroy()
    expect_refused(etcd_path, target, "is an etcd (bbolt) snapshot")
    check(not os.path.exists(target), "bbolt restore left %s behind" % target)

    good = os.path.join(tmp, "good.db")
    write_file(good, archive)
    os.makedirs(target)
    write_file(os.path.join(target, "keep-me"), b"x")
    expect_refused(good, target, "is not empty")
    check(os.listdir(target) == ["keep-me"], "restore touched a non-empty dir")


def test_cancelled_stream_leaves_no_checkpoint_and_concurrent_snapshots_work():
    geo = harness.Server("geoetcd").start()
    try:
        kv = geo.stubs().kv
        for i in range(64):  # ~4 MiB of incompressible values: many blobs
            kv.Put(rpc_pb2.PutRequest(key=b"big/%d" % i, value=os.urandom(64 * 1024)),
                   timeout=harness.RPC_TIMEOUT)
        scratch = os.path.join(geo.data_dir, "snapshot-tmp")
        stream = geo.stubs().maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=60)
        first = next(stream)
        check(first.remaining_bytes > 0, "the stream ended before it could be cancelled")
        check(len(os.listdir(scratch)) == 1, "no checkpoint while streaming: %r"
              % os.listdir(scratch))
        stream.cancel()
        check(harness.wait_until(lambda: os.listdir(scratch) == [], 10),
              "checkpoint left after cancel: %r" % os.listdir(scratch))

        results = {}

        def save(i):
            path = os.path.join(harness.make_temp_dir("geoetcd-snap-par-"), "s%d.db" % i)
            results[i] = (etcdctl(geo, "snapshot", "save", path), path)

        threads = [threading.Thread(target=save, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, ((rc, out, err), path) in sorted(results.items()):
            check(rc == 0, "concurrent snapshot %d: rc=%d %r" % (i, rc, err[-500:]))
            rc, out, err = geoetcd("snapshot", "status", path)
            check(rc == 0 and "ok" in out, "concurrent snapshot %d: %r" % (i, err))
            check(os.path.getsize(path) > 64 * 64 * 1024, "snapshot %d too small" % i)
        check(os.listdir(scratch) == [], "checkpoints left: %r" % os.listdir(scratch))
    finally:
        geo.destroy()


TESTS = [
    test_rpc_and_etcdctl_snapshots_restore_to_identical_data,
    test_restore_refuses_bad_archives_and_used_dirs,
    test_cancelled_stream_leaves_no_checkpoint_and_concurrent_snapshots_work,
]

if __name__ == "__main__":
    sys.exit(harness.run_tests(TESTS, Failure, announce="-v" in sys.argv))
