#!/usr/bin/python3
"""Three geoetcd regions on loopback, started with etcd's own cluster flags (issue 10, item 8).

Every peer link r_i -> r_j runs through its own TcpProxy (tests/testing/tcp_proxy.py), which
r_i dials by --peer-dial-urls, so one direction of one link can be delayed or cut while the
others stay up. r1 is the write region (the first member of --initial-cluster).

  * membership: MemberList at every region lists all three with their real peer and client
    URLs; Status names r1 as leader everywhere; every header carries one cluster id
  * a put at r2 is read back at r2 at once (serializable, so from r2's own state) and by a
    linearizable read at r3 at once; forwarded answers and errors are W's own
  * a watch at r3 sees the writes made at r1 and at r2 in W's order, exactly as a watch at r1
  * leases granted and revoked away from W; a lease's expiry at W reaches every region
  * kill -9 of r3 under write load, restart: it catches up, every acknowledged put is there,
    HashKV matches at one revision
  * r3 down while W writes past --experimental-snapshot-catchup-entries and compacts: it
    catches up by Merkle repair, holds W's keys, refuses revisions below its repair point
    (W still answers them) and follows the stream on
  * r3 cut from W but not from r2 catches up through r2; after heal all converge
  * W unreachable from r2: writes and linearizable reads at r2 time out with etcd's error,
    serializable reads still answer; nothing is half-applied
  * bad starts: a name not in --initial-cluster, advertise URLs that disagree with it, an
    unknown --write-region, a data dir of another cluster: each refused with its message

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/regions_test.py
"""

import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402
import watch_client  # noqa: E402

import grpc  # noqa: E402

NAMES = ["r1", "r2", "r3"]
FORWARD_TIMEOUT = "1s"
CONVERGE_TIMEOUT = 30.0
TIMED_OUT = "etcdserver: request timed out"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def serializable(key, **kw):
    return rpc_pb2.RangeRequest(key=key, serializable=True, **kw)


class Cluster:
    """Three regions and the six proxies of their directed peer links."""

    def __init__(self, extra_args=None):
        self.client_ports = {n: harness.free_port() for n in NAMES}
        self.peer_ports = {n: harness.free_port() for n in NAMES}
        self.initial_cluster = ",".join(
            "%s=http://127.0.0.1:%d" % (n, self.peer_ports[n]) for n in NAMES)
        self.proxies = {}
        for src in NAMES:
            for dst in NAMES:
                if src != dst:
                    p = TcpProxy(target=("127.0.0.1", self.peer_ports[dst]))
                    p.start()
                    self.proxies[(src, dst)] = p
        self.servers = {}
        for n in NAMES:
            dial = ",".join("%s=http://127.0.0.1:%d" % (d, self.proxies[(n, d)].port)
                            for d in NAMES if d != n)
            client = "http://127.0.0.1:%d" % self.client_ports[n]
            peer = "http://127.0.0.1:%d" % self.peer_ports[n]
            args = ["--name", n,
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", self.initial_cluster,
                    "--initial-cluster-token", "regions-test",
                    "--peer-dial-urls", dial,
                    "--forward-timeout", FORWARD_TIMEOUT,
                    "--gossip-interval", "200ms"] + list(extra_args or [])
            srv = harness.Server(name=n, args=None)
            srv.args_override = ["--data-dir", srv.data_dir] + args
            srv.client_port = self.client_ports[n]
            srv.peer_port = self.peer_ports[n]
            self.servers[n] = srv

    def start(self):
        for srv in self.servers.values():
            srv.spawn(new_ports=False)
        for srv in self.servers.values():
            srv.wait_ready()
        return self

    def restart(self, name):
        srv = self.servers[name]
        srv.spawn(new_ports=False)
        srv.wait_ready()

    def kv(self, name):
        return self.servers[name].stubs().kv

    def stubs(self, name):
        return self.servers[name].stubs()

    def cut(self, a, b):
        """Cuts both directions between a and b."""
        self.proxies[(a, b)].cut()
        self.proxies[(b, a)].cut()

    def heal(self, a, b):
        self.proxies[(a, b)].heal()
        self.proxies[(b, a)].heal()

    def revision(self, name):
        return self.kv(name).Range(serializable(b"\x00"), timeout=5).header.revision

    def hash_kv(self, name, rev):
        return self.stubs(name).maintenance.HashKV(
            rpc_pb2.HashKVRequest(revision=rev), timeout=5).hash

    def wait_converged(self, timeout=CONVERGE_TIMEOUT):
        """Every region at W's revision with W's HashKV there; returns that revision."""
        deadline = time.monotonic() + timeout
        while True:
            target = self.revision("r1")
            revs = {n: self.revision(n) for n in NAMES}
            if all(r == target for r in revs.values()):
                hashes = {n: self.hash_kv(n, target) for n in NAMES}
                check(len(set(hashes.values())) == 1,
                      "HashKV differs at revision %d: %s" % (target, hashes))
                return target
            if time.monotonic() > deadline:
                raise Failure("regions did not converge within %.0fs: revisions %s"
                              % (timeout, revs))
            time.sleep(0.05)

    def destroy(self):
        for srv in self.servers.values():
            srv.destroy()
        for p in self.proxies.values():
            p.stop()


_cluster = None


def shared_cluster():
    """One cluster for the tests that leave it healthy; each uses its own key prefix."""
    global _cluster
    if _cluster is None:
        _cluster = Cluster().start()
    return _cluster


def member_ids(c):
    return {m.name: m.ID for m in c.stubs("r1").cluster.MemberList(
        rpc_pb2.MemberListRequest(), timeout=5).members}


# ---------------------------------------------------------------------------------------------


def test_membership():
    c = shared_cluster()
    expected_peer = {n: ["http://127.0.0.1:%d" % c.peer_ports[n]] for n in NAMES}
    expected_client = {n: ["http://127.0.0.1:%d" % c.client_ports[n]] for n in NAMES}
    cluster_ids = set()
    for n in NAMES:
        def listed():
            resp = c.stubs(n).cluster.MemberList(rpc_pb2.MemberListRequest(), timeout=5)
            return resp, {m.name: (list(m.peerURLs), list(m.clientURLs)) for m in resp.members}
        # Client URLs of the other regions arrive with their peer hellos.
        harness.wait_until(lambda: all(v[1] for v in listed()[1].values()), 10)
        resp, got = listed()
        check(sorted(got) == NAMES, "MemberList at %s names %s" % (n, sorted(got)))
        for m in NAMES:
            check(got[m] == (expected_peer[m], expected_client[m]),
                  "MemberList at %s: %s has %s, want %s"
                  % (n, m, got[m], (expected_peer[m], expected_client[m])))
        cluster_ids.add(resp.header.cluster_id)
    check(len(cluster_ids) == 1, "cluster ids differ: %s" % cluster_ids)
    ids = member_ids(c)
    check(len(set(ids.values())) == 3, "member ids not distinct: %s" % ids)
    for n in NAMES:
        st = c.stubs(n).maintenance.Status(rpc_pb2.StatusRequest(), timeout=5)
        check(st.header.member_id == ids[n], "Status at %s: member_id %x, want %x"
              % (n, st.header.member_id, ids[n]))
        check(st.leader == ids["r1"], "Status at %s: leader %x, want r1 %x"
              % (n, st.leader, ids["r1"]))


def test_etcdctl_endpoint_status_cluster():
    c = shared_cluster()
    out = subprocess.run(
        [harness.etcdctl_bin(), "--endpoints", c.servers["r2"].endpoint, "endpoint", "status",
         "--cluster", "-w", "simple"],
        env=harness.clean_env({"ETCDCTL_API": "3"}), capture_output=True, text=True,
        timeout=30)
    check(out.returncode == 0, "etcdctl endpoint status --cluster failed: %s" % out.stderr)
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    check(len(lines) == 3, "want one line per region, got:\n%s" % out.stdout)
    for n in NAMES:
        url = "http://127.0.0.1:%d" % c.client_ports[n]
        check(any(l.startswith(url + ",") for l in lines), "no line for %s:\n%s" % (url,
                                                                                 out.stdout))
    # Exactly one region is the leader (IS LEADER is the 5th column).
    leaders = [l for l in lines if l.split(", ")[4] == "true"]
    check(len(leaders) == 1 and leaders[0].startswith(
        "http://127.0.0.1:%d," % c.client_ports["r1"]),
          "want r1 alone as leader:\n%s" % out.stdout)


def test_read_your_write_away_from_w():
    c = shared_cluster()
    for i in range(20):
        key = b"ryw/%d" % i
        put = c.kv("r2").Put(rpc_pb2.PutRequest(key=key, value=b"v%d" % i), timeout=5)
        rev = put.header.revision
        # r2 answered only once it applied that revision itself: a serializable read there
        # (r2's own state, no round trip) already has it.
        got = c.kv("r2").Range(serializable(key), timeout=5)
        check(got.header.revision >= rev and len(got.kvs) == 1 and got.kvs[0].value == b"v%d" % i
              and got.kvs[0].mod_revision == rev,
              "serializable read at r2 after put at r2 (rev %d): %s" % (rev, got))
        # A linearizable read at r3 learns W's index first: it sees the put at once too.
        got = c.kv("r3").Range(rpc_pb2.RangeRequest(key=key), timeout=5)
        check(len(got.kvs) == 1 and got.kvs[0].mod_revision == rev,
              "linearizable read at r3 after put at r2 (rev %d): %s" % (rev, got))
    # And r3 holds it in its own state soon after.
    check(harness.wait_until(
        lambda: len(c.kv("r3").Range(serializable(b"ryw/19"), timeout=5).kvs) == 1, 10),
        "r3 never applied ryw/19")


def test_forwarded_answers_are_ws():
    c = shared_cluster()
    ids = member_ids(c)
    c.kv("r1").Put(rpc_pb2.PutRequest(key=b"fwd/a", value=b"1"), timeout=5)
    put = c.kv("r2").Put(rpc_pb2.PutRequest(key=b"fwd/a", value=b"2", prev_kv=True), timeout=5)
    check(put.prev_kv.value == b"1", "prev_kv through r2: %s" % put)
    # The answer is W's, byte for byte: its header names W.
    check(put.header.member_id == ids["r1"], "forwarded put header names %x, W is %x"
          % (put.header.member_id, ids["r1"]))
    txn = c.kv("r3").Txn(rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"fwd/a", target=rpc_pb2.Compare.VALUE,
                                 result=rpc_pb2.Compare.EQUAL, value=b"2")],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"fwd/b", value=b"x")),
                 rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"fwd/a"))],
        failure=[]), timeout=5)
    check(txn.succeeded and txn.responses[1].response_range.kvs[0].value == b"2",
          "txn through r3: %s" % txn)
    # W's errors reach the client unchanged.
    for name in ("r2", "r3"):
        try:
            c.kv(name).Put(rpc_pb2.PutRequest(key=b"fwd/l", value=b"x", lease=12345), timeout=5)
            raise Failure("put with an unknown lease at %s succeeded" % name)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND and
                  e.details() == "etcdserver: requested lease not found",
                  "unknown lease at %s: %s %s" % (name, e.code(), e.details()))
        future = c.revision("r1") + 1000
        try:
            c.kv(name).Compact(rpc_pb2.CompactionRequest(revision=future), timeout=5)
            raise Failure("compaction to a future revision at %s succeeded" % name)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.OUT_OF_RANGE and
                  e.details() == "etcdserver: mvcc: required revision is a future revision",
                  "future compaction at %s: %s %s" % (name, e.code(), e.details()))


def test_watch_sees_ws_order():
    c = shared_cluster()
    start = c.revision("r1") + 1
    watchers = {}
    for n in ("r1", "r3"):
        w = watch_client.WatchStream(c.servers[n])
        w.send(watch_client.create_req(b"order/", watch_client.prefix_end(b"order/"),
                                       start_revision=start))
        watchers[n] = w
    per_writer = 40

    def write(region):
        for i in range(per_writer):
            c.kv(region).Put(rpc_pb2.PutRequest(key=b"order/%s/%d" % (region.encode(), i),
                                                value=b"x"), timeout=5)

    threads = [threading.Thread(target=write, args=(r,)) for r in ("r1", "r2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = {}
    for n, w in watchers.items():
        events = []
        for r in w.collect(events=2 * per_writer + 0, timeout=15):
            check(not isinstance(r, Exception), "watch at %s ended: %s" % (n, r))
            events += [(e.kv.key, e.kv.mod_revision) for e in r.events]
        w.close()
        check(len(events) == 2 * per_writer, "watch at %s saw %d events, want %d"
              % (n, len(events), 2 * per_writer))
        revs = [rev for _, rev in events]
        check(revs == sorted(revs) and len(set(revs)) == len(revs),
              "watch at %s: revisions out of order: %s" % (n, revs))
        seen[n] = events
    check(seen["r1"] == seen["r3"], "watch at r3 differs from watch at W")


def test_etcdctl_lock_excludes_across_regions():
    """etcdctl lock (a lease, a txn on create revisions and a watch) held from r2 and r3 at
    once: the two critical sections never overlap."""
    c = shared_cluster()
    d = harness.make_temp_dir()
    try:
        log = os.path.join(d, "held")
        section = "echo start $(date +%%s.%%N) %s >> %s; sleep 0.6; echo end $(date +%%s.%%N) %s >> %s"
        procs = []
        for name in ("r2", "r3", "r2", "r3"):
            tag = "%s-%d" % (name, len(procs))
            procs.append(subprocess.Popen(
                [harness.etcdctl_bin(), "--endpoints", c.servers[name].endpoint, "lock",
                 "regions-lock", "--", "sh", "-c", section % (tag, log, tag, log)],
                env=harness.clean_env({"ETCDCTL_API": "3"}), stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=60)
            check(p.returncode == 0, "etcdctl lock failed: %s" % err)
        with open(log) as f:
            lines = [l.split() for l in f.read().splitlines()]
        check(len(lines) == 8, "want 8 lines, got %s" % lines)
        # Sections in file order: start, end of the same holder, never two starts in a row.
        for i in range(0, 8, 2):
            check(lines[i][0] == "start" and lines[i + 1][0] == "end" and
                  lines[i][2] == lines[i + 1][2],
                  "critical sections overlap: %s" % lines)
            if i:
                check(float(lines[i][1]) >= float(lines[i - 1][1]),
                      "a section started before the previous one ended: %s" % lines)
    finally:
        harness.remove_temp_dir(d)


def test_leases_away_from_w():
    c = shared_cluster()
    grant = c.stubs("r3").lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60), timeout=5)
    c.kv("r2").Put(rpc_pb2.PutRequest(key=b"lease/k", value=b"v", lease=grant.ID), timeout=5)
    ttl = c.stubs("r2").lease.LeaseTimeToLive(
        rpc_pb2.LeaseTimeToLiveRequest(ID=grant.ID, keys=True), timeout=5)
    check(ttl.keys == [b"lease/k"] and 0 < ttl.TTL <= 60, "TTL at r2: %s" % ttl)
    c.stubs("r3").lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=grant.ID), timeout=5)
    for n in NAMES:
        got = c.kv(n).Range(rpc_pb2.RangeRequest(key=b"lease/k"), timeout=5)
        check(not got.kvs, "revoked lease's key still at %s" % n)
    # Expiry runs at W and reaches every region as a commit.
    short = c.stubs("r2").lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=2), timeout=5)
    c.kv("r3").Put(rpc_pb2.PutRequest(key=b"lease/short", value=b"v", lease=short.ID),
                   timeout=5)
    for n in NAMES:
        check(harness.wait_until(
            lambda: not c.kv(n).Range(serializable(b"lease/short"), timeout=5).kvs, 10),
            "expired lease's key still at %s" % n)
    c.wait_converged()


class Writers:
    def __init__(self, c, regions, prefix):
        self.c = c
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = []
        self.threads = [threading.Thread(target=self.run, args=(r, i, prefix))
                        for i, r in enumerate(regions)]

    def run(self, region, n, prefix):
        stub = self.c.kv(region)
        i = 0
        while not self.stop.is_set():
            key = b"%s/%d/%d" % (prefix, n, i)
            i += 1
            try:
                put = stub.Put(rpc_pb2.PutRequest(key=key, value=key), timeout=5)
                with self.lock:
                    self.acked.append((key, put.header.revision))
            except grpc.RpcError:
                time.sleep(0.05)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


def check_acked_everywhere(c, acked):
    for n in NAMES:
        for key, rev in acked:
            got = c.kv(n).Range(serializable(key), timeout=5)
            check(len(got.kvs) == 1 and got.kvs[0].mod_revision == rev,
                  "acknowledged put %r (rev %d) missing or wrong at %s: %s"
                  % (key, rev, n, got.kvs))


def test_kill9_restart_catches_up():
    c = shared_cluster()
    with Writers(c, ["r1", "r2"], b"crash") as w:
        time.sleep(1.0)
        c.servers["r3"].kill9()
        time.sleep(1.5)
        c.restart("r3")
        time.sleep(1.0)
    check(len(w.acked) > 50, "too few writes acknowledged: %d" % len(w.acked))
    c.wait_converged()
    check_acked_everywhere(c, w.acked)


def test_down_while_w_compacted_repairs_by_merkle():
    """r3 is down while W writes past the catch-up window and compacts: W's log no longer
    reaches back to r3, which then adopts W's registers by Merkle repair. The writes exceed
    W's replication window (8 MiB in flight per region), so what W sent r3 before it
    truncated (queued for r3 while it was down) does not reach far enough either."""
    c = Cluster(["--experimental-snapshot-catchup-entries", "10"]).start()
    try:
        for i in range(20):
            c.kv("r1").Put(rpc_pb2.PutRequest(key=b"rep/a%02d" % i, value=b"old"), timeout=5)
        c.wait_converged()
        c.servers["r3"].kill9()
        for i in range(0, 20, 2):
            c.kv("r2").Put(rpc_pb2.PutRequest(key=b"rep/a%02d" % i, value=b"new"), timeout=5)
        c.kv("r1").DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"rep/a01"), timeout=5)
        big = b"x" * (64 << 10)
        for i in range(160):
            c.kv("r1").Put(rpc_pb2.PutRequest(key=b"rep/b%03d" % i, value=big), timeout=5)
        compacted = c.revision("r1")
        c.kv("r1").Compact(rpc_pb2.CompactionRequest(revision=compacted), timeout=5)
        acked = []
        for i in range(5):
            r = c.kv("r1").Put(rpc_pb2.PutRequest(key=b"rep/c%d" % i, value=b"v"), timeout=5)
            acked.append((b"rep/c%d" % i, r.header.revision))
        time.sleep(1.0)  # gossip rounds: W truncates its log below the compaction point
        c.restart("r3")
        target = c.wait_converged()
        check_acked_everywhere(c, acked)
        got = c.kv("r3").Range(serializable(b"rep/a", range_end=b"rep/b"), timeout=5)
        values = {kv.key: kv.value for kv in got.kvs}
        check(b"rep/a01" not in values and values.get(b"rep/a00") == b"new" and
              values.get(b"rep/a03") == b"old" and len(values) == 19,
              "r3's repaired keys differ from W's: %s" % sorted(values.items()))
        # r3 adopted W's state at a revision past W's compaction: nothing older is readable
        # there, while W still answers it.
        old = serializable(b"rep/a00", revision=compacted + 1)
        check(c.kv("r1").Range(old, timeout=5).kvs[0].value == b"new", "W lost its history")
        try:
            c.kv("r3").Range(old, timeout=5)
            raise Failure("r3 answered revision %d below its repair point" % (compacted + 1))
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.OUT_OF_RANGE and
                  e.details() == "etcdserver: mvcc: required revision has been compacted",
                  "old read at r3: %s %s" % (e.code(), e.details()))
        # And it follows the stream from there.
        put = c.kv("r3").Put(rpc_pb2.PutRequest(key=b"rep/after", value=b"v"), timeout=5)
        check(put.header.revision == target + 1, "put after repair at %d" % put.header.revision)
        c.wait_converged()
    finally:
        c.destroy()


def test_cut_from_w_catches_up_through_peer():
    c = shared_cluster()
    c.cut("r1", "r3")
    c.cut("r2", "r3")
    try:
        for i in range(30):
            c.kv("r1" if i % 2 else "r2").Put(
                rpc_pb2.PutRequest(key=b"relay/%d" % i, value=b"v"), timeout=5)
        target = c.revision("r1")
        # Cut from everyone, r3 stays behind: the cuts hold.
        time.sleep(1.0)
        check(c.revision("r3") < target, "r3 cut from every region reached revision %d"
              % c.revision("r3"))
        # Reachable from r2 alone, it hears of them from r2 (gossip digests and pulls).
        c.heal("r2", "r3")
        check(harness.wait_until(lambda: c.revision("r3") >= target, CONVERGE_TIMEOUT),
              "r3 cut from W stayed at revision %d, W at %d" % (c.revision("r3"), target))
        got = c.kv("r3").Range(serializable(b"relay/29"), timeout=5)
        check(len(got.kvs) == 1, "relay/29 not at r3")
    finally:
        c.heal("r2", "r3")
        c.heal("r1", "r3")
    c.wait_converged()


def test_w_unreachable():
    c = shared_cluster()
    c.kv("r1").Put(rpc_pb2.PutRequest(key=b"wdown/seen", value=b"1"), timeout=5)
    c.wait_converged()
    c.cut("r1", "r2")
    try:
        for what, call in [
                ("put", lambda: c.kv("r2").Put(
                    rpc_pb2.PutRequest(key=b"wdown/put", value=b"x"), timeout=10)),
                ("txn", lambda: c.kv("r2").Txn(rpc_pb2.TxnRequest(success=[
                    rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"wdown/t1",
                                                                      value=b"x")),
                    rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"wdown/t2",
                                                                      value=b"x"))]),
                    timeout=10)),
                ("linearizable read", lambda: c.kv("r2").Range(
                    rpc_pb2.RangeRequest(key=b"wdown/seen"), timeout=10))]:
            t0 = time.monotonic()
            try:
                call()
                raise Failure("%s at r2 with W unreachable succeeded" % what)
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAVAILABLE and e.details() == TIMED_OUT,
                      "%s at r2 with W unreachable: %s %s" % (what, e.code(), e.details()))
            took = time.monotonic() - t0
            check(took < 5, "%s took %.1fs to time out (--forward-timeout %s)"
                  % (what, took, FORWARD_TIMEOUT))
        got = c.kv("r2").Range(serializable(b"wdown/seen"), timeout=5)
        check(len(got.kvs) == 1 and got.kvs[0].value == b"1",
              "serializable read at r2 with W unreachable: %s" % got)
        # r3 still reaches W: writes there go on.
        c.kv("r3").Put(rpc_pb2.PutRequest(key=b"wdown/r3", value=b"x"), timeout=5)
    finally:
        c.heal("r1", "r2")
    c.wait_converged()
    # A timed-out request's outcome is unknown, as in etcd, but never partial.
    t1 = len(c.kv("r1").Range(serializable(b"wdown/t1"), timeout=5).kvs)
    t2 = len(c.kv("r1").Range(serializable(b"wdown/t2"), timeout=5).kvs)
    check(t1 == t2, "timed-out txn half-applied: t1 %d, t2 %d" % (t1, t2))
    check(len(c.kv("r2").Range(serializable(b"wdown/r3"), timeout=5).kvs) == 1,
          "r2 never got the write made at r3 meanwhile")


def run_refused(args, want_rc, want_text):
    out = subprocess.run([harness.geoetcd_bin()] + args, capture_output=True, text=True,
                         timeout=30, env=harness.clean_env())
    check(out.returncode == want_rc and want_text in out.stderr,
          "geoetcd %s: rc %d, stderr %r; want rc %d and %r"
          % (" ".join(args), out.returncode, out.stderr, want_rc, want_text))


def test_bad_starts():
    d = harness.make_temp_dir()
    try:
        p1, p2, c1 = harness.free_port(), harness.free_port(), harness.free_port()
        cluster = "a=http://127.0.0.1:%d,b=http://127.0.0.1:%d" % (p1, p2)
        base = ["--listen-client-urls", "http://127.0.0.1:%d" % c1,
                "--advertise-client-urls", "http://127.0.0.1:%d" % c1,
                "--listen-peer-urls", "http://127.0.0.1:%d" % p1,
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % p1,
                "--initial-cluster", cluster]
        run_refused(["--name", "c", "--data-dir", d + "/c"] + base, 2,
                    'couldn\'t find local name "c" in the initial cluster configuration')
        run_refused(["--name", "b", "--data-dir", d + "/b"] + base, 2,
                    "--initial-cluster has b=http://127.0.0.1:%d but missing from "
                    "--initial-advertise-peer-urls=http://127.0.0.1:%d" % (p2, p1))
        run_refused(["--name", "a", "--data-dir", d + "/a", "--write-region", "z"] + base, 2,
                    '--write-region "z" is not a member of the initial cluster configuration')
        run_refused(["--name", "a", "--data-dir", d + "/a", "--peer-dial-urls",
                     "a=http://127.0.0.1:1"] + base, 2,
                    '--peer-dial-urls: "a" is not another member of --initial-cluster')
        # A data dir remembers its cluster: starting it under another token is refused.
        srv = harness.Server(name="a", args=["--name", "a", "--data-dir", d + "/a"] + base)
        srv.client_port = c1
        srv.spawn(new_ports=False)
        check(harness.wait_until(lambda: os.path.exists(d + "/a/member"), 20),
              "no member file written: %s" % srv.stderr_tail())
        srv.stop()
        run_refused(["--name", "a", "--data-dir", d + "/a", "--initial-cluster-token", "x"]
                    + base, 1, 'data dir %s/a belongs to member "a"' % d)
        run_refused(["--name", "a", "--data-dir", d + "/a", "--write-region", "b"] + base, 1,
                    "start it with the flags it was created with")
        with open(d + "/a/member", "w") as f:
            f.write("garbage\n")
        run_refused(["--name", "a", "--data-dir", d + "/a"] + base, 1,
                    "%s/a/member is malformed" % d)
    finally:
        harness.remove_temp_dir(d)


TESTS = [
    test_bad_starts,
    test_membership,
    test_etcdctl_endpoint_status_cluster,
    test_read_your_write_away_from_w,
    test_forwarded_answers_are_ws,
    test_watch_sees_ws_order,
    test_etcdctl_lock_excludes_across_regions,
    test_leases_away_from_w,
    test_kill9_restart_catches_up,
    test_down_while_w_compacted_repairs_by_merkle,
    test_cut_from_w_catches_up_through_peer,
    test_w_unreachable,
]

if __name__ == "__main__":
    rc = harness.run_tests(TESTS, Failure, announce=True)
    if _cluster is not None:
        _cluster.destroy()
    sys.exit(rc)
