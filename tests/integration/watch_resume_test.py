#!/usr/bin/python3
"""Watches are resumable across a geoetcd crash (kill -9) and restart.

Writers put under a prefix while a watcher follows it. The server is killed with SIGKILL in
the middle of the load and restarted on the same data dir; the watcher re-watches from the
revision after the last event it received (what every etcd client does). Checks:
  * across all rounds the watcher sees every revision of the prefix exactly once, in order,
    with no gap (ordered, unique, reliable, resumable);
  * every acknowledged put is among the events, with its value;
  * a progress notification (WatchProgressRequest) never runs ahead of delivered events
    (bookmarkable);
  * after a compaction past the resume point, re-watching gets the compaction cancel with
    compact_revision set, and watching from that revision works.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/watch_resume_test.py
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402
from watch_client import WatchStream, create_req, prefix_end, progress_req  # noqa: E402

import grpc  # noqa: E402

ROUNDS = 3
WRITERS = 6
PREFIX = b"resume/"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Writers:
    def __init__(self, server, round_no):
        self.server = server
        self.round_no = round_no
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}  # revision -> (key, value)
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(WRITERS)]

    def _run(self, idx):
        channel = grpc.insecure_channel(self.server.endpoint)
        stub = harness.rpc_pb2_grpc.KVStub(channel)
        seq = 0
        try:
            while not self.stop.is_set():
                key = PREFIX + b"w%d/%d" % (idx, seq % 5)
                value = b"r%d-w%d-%d" % (self.round_no, idx, seq)
                seq += 1
                try:
                    resp = stub.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=2)
                except grpc.RpcError:
                    return  # the server died
                with self.lock:
                    self.acked[resp.header.revision] = (key, value)
        finally:
            channel.close()

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()


class Follower:
    """Follows the prefix on one stream; re-watchable from where it got to."""

    def __init__(self):
        self.next_rev = 2
        self.events = {}  # revision -> (key, value)
        self.stream = None

    def watch(self, server):
        self.stream = WatchStream(server)
        self.stream.send(create_req(PREFIX, prefix_end(PREFIX), start_revision=self.next_rev))
        created = self.stream.next(5.0)
        check(created is not None and not isinstance(created, Exception) and created.created,
              "no created response: %r" % created)
        return created

    def absorb(self, resp):
        if resp.events:
            for ev in resp.events:
                rev = ev.kv.mod_revision
                check(rev == self.next_rev, "event at revision %d, expected %d (gap or repeat)"
                      % (rev, self.next_rev))
                self.events[rev] = (ev.kv.key, ev.kv.value)
                self.next_rev = rev + 1
        elif resp.watch_id == -1 and not resp.created and not resp.canceled:
            # Bookmark: nothing of the prefix may be left below it.
            check(resp.header.revision + 1 >= self.next_rev,
                  "progress at %d before events from %d" % (resp.header.revision,
                                                            self.next_rev))
            self.next_rev = max(self.next_rev, resp.header.revision + 1)

    def drain(self, until_rev, timeout):
        deadline = time.monotonic() + timeout
        while self.next_rev <= until_rev and time.monotonic() < deadline:
            resp = self.stream.next(0.5)
            if resp is None:
                continue
            if isinstance(resp, Exception):
                return False
            self.absorb(resp)
        return self.next_rev > until_rev

    def read_until_broken(self, stop):
        while not stop.is_set():
            resp = self.stream.next(0.2)
            if resp is None:
                continue
            if isinstance(resp, Exception):
                return
            self.absorb(resp)


def current_revision(server):
    return server.stubs().kv.Range(rpc_pb2.RangeRequest(key=b"\0"), timeout=5).header.revision


def test_resume_across_kill9():
    server = harness.Server("geoetcd").start()
    follower = Follower()
    all_acked = {}
    try:
        for round_no in range(ROUNDS):
            follower.watch(server)
            writers = Writers(server, round_no)
            stop = threading.Event()
            reader = threading.Thread(target=follower.read_until_broken, args=(stop,))
            reader.start()
            writers.start()
            time.sleep(1.0)
            follower.stream.send(progress_req())
            time.sleep(0.5)
            server.kill9()
            writers.join()
            stop.set()
            reader.join()
            follower.stream.close()
            all_acked.update(writers.acked)
            server.start(new_ports=False)
            print("  round %d: %d acked puts, watcher at revision %d"
                  % (round_no, len(writers.acked), follower.next_rev - 1))
        # Resume once more and read to the end.
        follower.watch(server)
        head = current_revision(server)
        check(follower.drain(head, 30), "watcher stuck at %d of %d" % (follower.next_rev, head))
        check(sorted(follower.events) == list(range(2, head + 1)),
              "events are not exactly the revisions 2..%d" % head)
        for rev, kv in all_acked.items():
            check(follower.events.get(rev) == kv, "acknowledged put at %d missing or wrong" % rev)
        follower.stream.close()
        print("  %d revisions followed across %d crashes" % (head - 1, ROUNDS))

        # A compaction past the resume point cancels the re-watch with compact_revision.
        behind = Follower()
        behind.next_rev = 2
        server.stubs().kv.Compact(rpc_pb2.CompactionRequest(revision=head - 10), timeout=5)
        behind.watch(server)
        resp = behind.stream.next(5.0)
        check(resp is not None and resp.canceled and resp.compact_revision == head - 10,
              "expected the compaction cancel, got %r" % resp)
        behind.stream.close()
        behind.next_rev = head - 10
        behind.watch(server)
        check(behind.drain(head, 10), "watch from the compaction revision did not deliver")
        behind.stream.close()
    finally:
        server.destroy()


TESTS = [test_resume_across_kill9]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
