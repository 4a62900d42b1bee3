#!/usr/bin/python3
"""kill -9 durability of geoetcd.

Rounds (3): 16 writer threads Put unique keys as fast as they can; every ACKNOWLEDGED put
(key, value, header.revision) is recorded. The server is killed with SIGKILL in the middle of
the load, restarted on the same data dir, and then:
  * every acknowledged put of every round so far is present with its value, and its
    mod_revision == create_revision == the acknowledged revision (version 1: keys are unique);
  * no two acknowledged puts share a revision;
  * unacknowledged puts that did survive carry exactly the value that was written;
  * no key appears that was never written;
  * the store revision is >= the max acknowledged revision;
  * a new Put gets a revision strictly greater than the store revision seen after restart.

Also: a second geoetcd on the same data dir while the first runs must fail quickly
(non-zero exit within a few seconds) and name the data dir on stderr; the first keeps serving.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/crash_test.py
"""

import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

import grpc  # noqa: E402

WRITERS = 16
ROUNDS = 3
PREFIX = b"crash/"
SECOND_INSTANCE_DEADLINE = 10.0   # seconds for the second instance to give up


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Writers:
    """N threads doing unique-key Puts over their own channels until stopped."""

    def __init__(self, server, round_no, n=WRITERS):
        self.server = server
        self.round_no = round_no
        self.n = n
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked = []        # (key, value, revision)
        self.attempted = {}    # key -> value (acked or not)
        self.errors = {}       # code name -> count
        self.threads = []

    def _run(self, idx):
        channel = grpc.insecure_channel(self.server.endpoint)
        stub = harness.rpc_pb2_grpc.KVStub(channel)
        rng = random.Random(idx * 7919 + self.round_no)
        seq = 0
        try:
            while not self.stop_flag.is_set():
                key = b"%sr%d/w%02d/%06d" % (PREFIX, self.round_no, idx, seq)
                value = b"v-%d-%d-%d-%016x" % (self.round_no, idx, seq, rng.getrandbits(64))
                seq += 1
                with self.lock:
                    self.attempted[key] = value
                try:
                    resp = stub.Put(rpc_pb2.PutRequest(key=key, value=value),
                                    timeout=harness.RPC_TIMEOUT)
                except grpc.RpcError as exc:
                    with self.lock:
                        name = exc.code().name
                        self.errors[name] = self.errors.get(name, 0) + 1
                    # After the kill every call fails; do not spin.
                    time.sleep(0.01)
                    continue
                with self.lock:
                    self.acked.append((key, value, resp.header.revision))
        finally:
            channel.close()

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(harness.RPC_TIMEOUT + 5)
        alive = [t for t in self.threads if t.is_alive()]
        check(not alive, "%d writer threads did not stop" % len(alive))

    def acked_count(self):
        with self.lock:
            return len(self.acked)


def read_all(server):
    """{key: KeyValue} for every key under PREFIX, plus the header revision."""
    stub = server.stubs().kv
    resp = stub.Range(rpc_pb2.RangeRequest(key=PREFIX, range_end=b"crash0"),
                      timeout=30)
    return {kv.key: kv for kv in resp.kvs}, resp.header.revision


def verify(server, all_acked, all_attempted, label):
    kvs, store_rev = read_all(server)
    problems = []
    revs = {}
    for key, value, rev in all_acked:
        kv = kvs.get(key)
        if kv is None:
            problems.append("acked put LOST: key=%r rev=%d" % (key, rev))
            continue
        if kv.value != value:
            problems.append("acked put %r: value %r != acked %r" % (key, kv.value, value))
        if kv.mod_revision != rev:
            problems.append("acked put %r: mod_revision %d != acked revision %d"
                            % (key, kv.mod_revision, rev))
        if kv.create_revision != rev or kv.version != 1:
            problems.append("acked put %r: create_revision=%d version=%d (expected %d, 1)"
                            % (key, kv.create_revision, kv.version, rev))
        if rev in revs:
            problems.append("revision %d acknowledged for two puts: %r and %r"
                            % (rev, revs[rev], key))
        revs[rev] = key
    for key, kv in kvs.items():
        if key not in all_attempted:
            problems.append("unexpected key %r (never written)" % key)
        elif kv.value != all_attempted[key]:
            problems.append("unacked key %r has value %r, written %r"
                            % (key, kv.value, all_attempted[key]))
    max_acked = max((r for _, _, r in all_acked), default=0)
    if store_rev < max_acked:
        problems.append("store revision %d < max acknowledged revision %d"
                        % (store_rev, max_acked))
    for p in problems[:30]:
        print("    " + p)
    if len(problems) > 30:
        print("    ... %d more problems" % (len(problems) - 30))
    check(not problems, "%s: %d durability problems" % (label, len(problems)))
    return store_rev, max_acked, len(kvs)


def test_kill9_rounds():
    srv = harness.Server("geoetcd")
    all_acked = []
    all_attempted = {}
    try:
        srv.start()
        rng = random.Random(2024)
        for rnd in range(1, ROUNDS + 1):
            w = Writers(srv, rnd)
            w.start()
            # Let the load build up, then kill at a random moment mid-load.
            check(harness.wait_until(lambda: w.acked_count() >= 50, 20),
                  "round %d: fewer than 50 puts acknowledged within 20s (got %d, errors %s)"
                  % (rnd, w.acked_count(), w.errors))
            time.sleep(rng.uniform(1.0, 2.5))
            before_kill = w.acked_count()
            srv.kill9()
            w.stop()
            all_acked.extend(w.acked)
            all_attempted.update(w.attempted)
            print("  round %d: killed after %d acked puts (%d at kill), %d attempted, errors %s"
                  % (rnd, len(w.acked), before_kill, len(w.attempted), w.errors))
            check(len(w.acked) >= 50, "round %d: too little load" % rnd)

            t0 = time.monotonic()
            srv.start(new_ports=False)
            print("  round %d: restarted in %.2fs" % (rnd, time.monotonic() - t0))
            store_rev, max_acked, nkeys = verify(srv, all_acked, all_attempted,
                                                 "round %d" % rnd)
            resp = srv.stubs().kv.Put(rpc_pb2.PutRequest(key=b"after-restart/%d" % rnd,
                                                         value=b"x"),
                                      timeout=harness.RPC_TIMEOUT)
            check(resp.header.revision > store_rev and resp.header.revision > max_acked,
                  "round %d: new put got revision %d, store revision was %d, max acked %d"
                  % (rnd, resp.header.revision, store_rev, max_acked))
            print("  round %d: ok (store rev %d, max acked %d, %d keys, new put rev %d)"
                  % (rnd, store_rev, max_acked, nkeys, resp.header.revision))
    finally:
        srv.destroy()


def test_second_instance_same_data_dir():
    first = harness.Server("geoetcd", name="g1")
    second = None
    try:
        first.start()
        first.stubs().kv.Put(rpc_pb2.PutRequest(key=b"lock-test", value=b"1"),
                             timeout=harness.RPC_TIMEOUT)
        second = harness.Server("geoetcd", name="g1", data_dir=first.data_dir)
        t0 = time.monotonic()
        second.spawn()
        try:
            rc = second.proc.wait(SECOND_INSTANCE_DEADLINE)
        except Exception:
            rc = None
        elapsed = time.monotonic() - t0
        err = second.stderr_text()
        check(rc is not None,
              "second instance on the same data dir still running after %.0fs (stderr: %r)"
              % (SECOND_INSTANCE_DEADLINE, err[-500:]))
        check(rc != 0, "second instance exited with code 0 (stderr: %r)" % err[-500:])
        check(first.data_dir in err or os.path.realpath(first.data_dir) in err,
              "second instance stderr does not mention the data dir %s: %r"
              % (first.data_dir, err[-800:]))
        print("  second instance exited with %d after %.2fs: %s"
              % (rc, elapsed, err.strip().splitlines()[-1][:200] if err.strip() else ""))
        check(first.alive(), "first instance died")
        resp = first.stubs().kv.Range(rpc_pb2.RangeRequest(key=b"lock-test"),
                                      timeout=harness.RPC_TIMEOUT)
        check(len(resp.kvs) == 1 and resp.kvs[0].value == b"1",
              "first instance lost data after the second start attempt")
    finally:
        if second is not None:
            second.destroy()
        first.destroy()


TESTS = [test_kill9_rounds, test_second_instance_same_data_dir]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
