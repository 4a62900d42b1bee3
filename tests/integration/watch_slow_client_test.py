#!/usr/bin/python3
"""A watch client that stops reading must not make geoetcd buffer without bound.

One stream watches a prefix and then reads nothing while writers put VOLUME_BYTES of values
under it. Were the server to queue every event for that stream, it would hold at least
VOLUME_BYTES more than without the watcher; geoetcd instead bounds the stream's queue and
drops the watcher to catch-up-from-history. The keyspace itself keeps every version in
memory until compaction, so the test compares against a baseline run of the same writes
without a watcher. It checks that:
  * the server's peak RSS exceeds the baseline's by less than EXTRA_RSS_MAX_BYTES while the
    client is stalled (and other clients are served meanwhile);
  * once the client reads again it receives every revision exactly once, in order, with the
    right values (the watcher caught up from history);
  * the stream then keeps delivering live events.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/watch_slow_client_test.py
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402
from watch_client import WatchStream, create_req, prefix_end  # noqa: E402

import grpc  # noqa: E402

VALUE_BYTES = 256 * 1024
PUTS = 1600                                  # 400 MiB of values
VOLUME_BYTES = VALUE_BYTES * PUTS
# The stream's queue (8 MiB), one catch-up slice (4 MiB), gRPC's buffers and noise between
# two runs; buffering the events would add the whole volume.
EXTRA_RSS_MAX_BYTES = 120 * 1024 * 1024
WRITERS = 8
PREFIX = b"slow/"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def value_for(i):
    head = b"%08d:" % i
    return head + b"x" * (VALUE_BYTES - len(head))


def write_all(server):
    """PUTS puts from WRITERS threads; returns {revision: index}."""
    revs = {}
    lock = threading.Lock()
    errors = []

    def run(w):
        channel = grpc.insecure_channel(server.endpoint, options=[
            ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
        stub = harness.rpc_pb2_grpc.KVStub(channel)
        try:
            for i in range(w, PUTS, WRITERS):
                resp = stub.Put(rpc_pb2.PutRequest(key=PREFIX + b"%04d" % (i % 97),
                                                   value=value_for(i)), timeout=30)
                with lock:
                    revs[resp.header.revision] = i
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            channel.close()

    threads = [threading.Thread(target=run, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "writes failed: %s" % errors[:1])
    return revs


def write_measuring_rss(server):
    """Runs write_all and returns (revisions, RSS growth from before to the peak)."""
    time.sleep(0.5)
    baseline = rss_bytes(server.proc.pid)
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes(server.proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        revs = write_all(server)
        # Other clients are still served.
        r = server.stubs().kv.Range(rpc_pb2.RangeRequest(
            key=PREFIX, range_end=prefix_end(PREFIX), count_only=True), timeout=5)
        check(r.count == 97, "range count %d" % r.count)
        time.sleep(1.0)
    finally:
        done.set()
        sampler.join()
    return revs, peak[0] - baseline


def test_stalled_watcher_is_bounded_and_catches_up():
    reference = harness.Server("geoetcd").start()
    try:
        _, reference_growth = write_measuring_rss(reference)
    finally:
        reference.destroy()
    server = harness.Server("geoetcd").start()
    try:
        kv = server.stubs().kv
        w = WatchStream(server)
        w.send(create_req(PREFIX, prefix_end(PREFIX)))
        created = w.next(5.0)
        check(created is not None and created.created, "no created response: %r" % created)
        start_rev = created.header.revision + 1
        # From here on the client reads nothing until all writes are done.
        w.pause()
        t0 = time.monotonic()
        revs, growth = write_measuring_rss(server)
        extra = growth - reference_growth
        print("  wrote %d MiB in %.1fs; RSS growth %d MiB with the stalled watcher, %d MiB "
              "without (extra %d MiB)" % (VOLUME_BYTES >> 20, time.monotonic() - t0,
                                          growth >> 20, reference_growth >> 20, extra >> 20))
        check(extra < EXTRA_RSS_MAX_BYTES,
              "the stalled watcher cost %d MiB of server memory (bound %d MiB)"
              % (extra >> 20, EXTRA_RSS_MAX_BYTES >> 20))

        # Now read: every revision exactly once, in order, with its value.
        w.resume()
        last_rev = max(revs)
        check(sorted(revs) == list(range(start_rev, last_rev + 1)),
              "write revisions are not dense")
        expected = start_rev
        responses = 0
        deadline = time.monotonic() + 120
        while expected <= last_rev and time.monotonic() < deadline:
            resp = w.next(10.0)
            check(resp is not None and not isinstance(resp, Exception),
                  "stream stalled or failed at revision %d: %r" % (expected, resp))
            responses += 1
            for ev in resp.events:
                check(ev.kv.mod_revision == expected,
                      "got revision %d, expected %d" % (ev.kv.mod_revision, expected))
                check(ev.kv.value == value_for(revs[expected]),
                      "wrong value at revision %d" % expected)
                expected += 1
        check(expected == last_rev + 1, "caught up only to revision %d of %d"
              % (expected - 1, last_rev))
        print("  caught up: %d revisions in %d responses" % (last_rev - start_rev + 1, responses))
        # Fewer responses than revisions: the watcher was dropped and read history in slices.
        check(responses < last_rev - start_rev + 1, "the stalled watcher was never dropped")
        kv.Put(rpc_pb2.PutRequest(key=PREFIX + b"live", value=b"v"), timeout=5)
        resp = w.next(5.0)
        check(resp is not None and len(resp.events) == 1
              and resp.events[0].kv.mod_revision == last_rev + 1, "no live event: %r" % resp)
        w.close()
    finally:
        server.destroy()


TESTS = [test_stalled_watcher_is_bounded_and_catches_up]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
