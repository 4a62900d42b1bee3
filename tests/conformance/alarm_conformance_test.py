#!/usr/bin/python3
"""The space quota and the NOSPACE alarm, differentially against a real etcd 3.4.

A reference etcd and a geoetcd start side by side with the same small --quota-backend-bytes
and get the same requests. Their sizes are measured differently (etcd: the bbolt file;
geoetcd: the logical bytes, core/quota.h), so each is filled until it refuses a put, and
what follows is compared: error codes and exact messages, which requests are still served
while the alarm is active, `etcdctl alarm list / disarm` output (text and JSON), Status
`errors` (`etcdctl endpoint status -w json`), the raw Alarm RPC (GET, ACTIVATE, DEACTIVATE),
the alarm surviving a restart, and writes working again after the space is freed and the
alarm disarmed. Member IDs differ between the servers and are written as <self>.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/conformance/alarm_conformance_test.py
"""

import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

QUOTA_BYTES = 1024 * 1024
FILL_VALUE_BYTES = 100 * 1000
FILL_PUTS_MAX = 40
FILL_PAUSE_S = 0.25
LEASE_ID = 4242
CMD_TIMEOUT = 30


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def member_id(server):
    return server.stubs().maintenance.Status(rpc_pb2.StatusRequest(),
                                             timeout=harness.RPC_TIMEOUT).header.member_id


def blank_member(obj, mid):
    """Replaces this server's member ID (as number or text) by <self>."""
    if isinstance(obj, dict):
        return {k: blank_member(v, mid) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(blank_member(v, mid) for v in obj)
    if isinstance(obj, str):
        return re.sub(r"\b%d\b" % mid, "<self>", obj)
    if isinstance(obj, int) and obj == mid:
        return "<self>"
    return obj


def etcdctl(server, *args, stdin=None):
    cmd = [harness.etcdctl_bin(), "--endpoints", server.endpoint, "--command-timeout=10s",
           "--dial-timeout=5s"] + list(args)
    p = subprocess.run(cmd, input=(stdin or "").encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=harness.clean_env({"ETCDCTL_API": "3"}),
                       timeout=CMD_TIMEOUT)
    out = p.stdout.decode("utf-8", "replace").strip()
    try:
        out = json.loads(out)
    except ValueError:
        pass
    errors = [l.strip() for l in p.stderr.decode("utf-8", "replace").splitlines()
              if l.startswith("Error:")]
    return blank_member({"exit": p.returncode, "stdout": out, "errors": errors},
                        member_id(server))


def status_errors(server):
    r = etcdctl(server, "endpoint", "status", "-w", "json")
    check(r["exit"] == 0, "endpoint status failed: %r" % r)
    return r["stdout"][0]["Status"].get("errors", [])


def alarm_rpc(server, action, alarm=rpc_pb2.NONE, member=0):
    res = harness.call_raw(server.stubs().maintenance.Alarm,
                           rpc_pb2.AlarmRequest(action=action, alarm=alarm, memberID=member))
    if res[0] == "error":
        return res
    resp = res[1]
    d = blank_member(harness.normalize(resp), member_id(server))
    # etcd keeps alarms in maps: compare them in a fixed order (of the blanked IDs, which
    # are the same on both servers).
    d["alarms"] = sorted(d.get("alarms", []), key=lambda a: (a["alarm"], a["memberID"]))
    d["has_header"] = resp.HasField("header")
    return ("ok", d)


def outcome(res):
    """('ok',) or ('error', code, message): what is compared when revisions differ."""
    return ("ok",) if res[0] == "ok" else res


def put(key, value=b"x", lease=0):
    return rpc_pb2.PutRequest(key=key, value=value, lease=lease)


def fill(server):
    """Puts large values until the server refuses one; returns (puts accepted, refusal)."""
    kv = server.stubs().kv
    for i in range(FILL_PUTS_MAX):
        res = harness.call_raw(kv.Put, put(b"fill/%02d" % i, b"v" * FILL_VALUE_BYTES))
        if res[0] == "error":
            return i, res
        # etcd checks the quota against its backend size as of the last backend commit
        # (every 100 ms): faster puts would all pass the check.
        time.sleep(FILL_PAUSE_S)
    return FILL_PUTS_MAX, None


def armed_requests(server):
    """Everything etcd refuses or serves while NOSPACE is active, as outcomes."""
    s = server.stubs()
    head = s.kv.Range(rpc_pb2.RangeRequest(key=b"guard"), timeout=harness.RPC_TIMEOUT)
    put_op = rpc_pb2.RequestOp(request_put=put(b"t"))
    del_op = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"fill/00"))
    rng_op = rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=b"guard"))
    keepalive = s.lease.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=LEASE_ID)]),
                                       timeout=harness.RPC_TIMEOUT)
    results = {
        "put": harness.call(s.kv.Put, put(b"small")),
        "put with lease": harness.call(s.kv.Put, put(b"small", lease=LEASE_ID)),
        "txn put": harness.call(s.kv.Txn, rpc_pb2.TxnRequest(success=[put_op])),
        "txn put in failure branch": harness.call(
            s.kv.Txn, rpc_pb2.TxnRequest(success=[rng_op], failure=[put_op])),
        "lease grant": harness.call(s.lease.LeaseGrant,
                                    rpc_pb2.LeaseGrantRequest(TTL=60, ID=LEASE_ID + 1)),
        "range": outcome(harness.call(s.kv.Range, rpc_pb2.RangeRequest(key=b"guard"))),
        "txn without puts": outcome(harness.call(
            s.kv.Txn, rpc_pb2.TxnRequest(success=[rng_op, del_op]))),
        "delete": outcome(harness.call(s.kv.DeleteRange,
                                       rpc_pb2.DeleteRangeRequest(key=b"fill/01"))),
        "keepalive ttl": [r.TTL for r in keepalive],
        "time to live": outcome(harness.call(
            s.lease.LeaseTimeToLive, rpc_pb2.LeaseTimeToLiveRequest(ID=LEASE_ID))),
        "compact": outcome(harness.call(
            s.kv.Compact, rpc_pb2.CompactionRequest(revision=head.header.revision))),
        "lease revoke": outcome(harness.call(s.lease.LeaseRevoke,
                                             rpc_pb2.LeaseRevokeRequest(ID=LEASE_ID))),
        "etcdctl put": etcdctl(server, "put", "k", "v"),
        "etcdctl lease grant": etcdctl(server, "lease", "grant", "100"),
        "etcdctl txn put": etcdctl(server, "txn", stdin='\nput tk tv\n\n\n'),
        "etcdctl get": etcdctl(server, "get", "guard", "--print-value-only"),
    }
    return results


def per_server(etcd, geo, fn):
    return {"etcd": fn(etcd), "geoetcd": fn(geo)}


def compare(label, results):
    harness.compare(label, results["etcd"], results["geoetcd"])


def test_nospace_alarm_matches_etcd():
    quota = ["--quota-backend-bytes", str(QUOTA_BYTES)]
    etcd, geo = harness.start_pair(etcd_args=quota, geo_args=quota)
    try:
        for srv in (etcd, geo):
            s = srv.stubs()
            s.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600, ID=LEASE_ID),
                               timeout=harness.RPC_TIMEOUT)
            s.kv.Put(put(b"guard", b"g"), timeout=harness.RPC_TIMEOUT)
        compare("no alarm at first", per_server(etcd, geo, lambda s: etcdctl(s, "alarm", "list")))

        filled = per_server(etcd, geo, fill)
        for name, (accepted, refusal) in filled.items():
            check(refusal is not None, "%s accepted %d puts of %d bytes under a %d-byte quota"
                  % (name, accepted, FILL_VALUE_BYTES, QUOTA_BYTES))
            check(accepted >= 5, "%s refused after only %d puts" % (name, accepted))
        harness.compare("the refused put", filled["etcd"][1], filled["geoetcd"][1])

        compare("alarm GET", per_server(etcd, geo,
                                        lambda s: alarm_rpc(s, rpc_pb2.AlarmRequest.GET)))
        compare("alarm GET NOSPACE", per_server(
            etcd, geo, lambda s: alarm_rpc(s, rpc_pb2.AlarmRequest.GET, rpc_pb2.NOSPACE)))
        compare("alarm GET CORRUPT", per_server(
            etcd, geo, lambda s: alarm_rpc(s, rpc_pb2.AlarmRequest.GET, rpc_pb2.CORRUPT)))
        compare("etcdctl alarm list", per_server(etcd, geo,
                                                 lambda s: etcdctl(s, "alarm", "list")))
        compare("etcdctl alarm list -w json", per_server(
            etcd, geo, lambda s: etcdctl(s, "alarm", "list", "-w", "json")))
        compare("status errors", per_server(
            etcd, geo, lambda s: blank_member(status_errors(s), member_id(s))))

        armed = per_server(etcd, geo, armed_requests)
        for what in armed["etcd"]:
            harness.compare("while armed: " + what, armed["etcd"][what], armed["geoetcd"][what])

        # The alarm is durable. (Same ports: geoetcd's member ID derives from its peer URLs.)
        for srv in (etcd, geo):
            srv.stop()
            srv.start(new_ports=False)
        compare("alarm list after restart", per_server(
            etcd, geo, lambda s: etcdctl(s, "alarm", "list", "-w", "json")))
        compare("put after restart", per_server(etcd, geo,
                                                lambda s: etcdctl(s, "put", "k", "v")))

        # The Alarm RPC itself.
        A = rpc_pb2.AlarmRequest
        for label, args in [
                ("ACTIVATE NOSPACE for member 5", (A.ACTIVATE, rpc_pb2.NOSPACE, 5)),
                ("ACTIVATE it again", (A.ACTIVATE, rpc_pb2.NOSPACE, 5)),
                ("GET with two alarms", (A.GET,)),
                ("DEACTIVATE member 5", (A.DEACTIVATE, rpc_pb2.NOSPACE, 5)),
                ("DEACTIVATE member 5 again", (A.DEACTIVATE, rpc_pb2.NOSPACE, 5)),
                ("DEACTIVATE a CORRUPT alarm never raised", (A.DEACTIVATE, rpc_pb2.CORRUPT, 5)),
                ("GET after", (A.GET,))]:
            compare("Alarm RPC: " + label,
                    per_server(etcd, geo, lambda s, a=args: alarm_rpc(s, *a)))

        # Free the space (etcd also needs a defrag to shrink its file), then disarm.
        def free(s):
            out = [etcdctl(s, "del", "fill/", "--prefix")["exit"]]
            rev = s.stubs().kv.Range(rpc_pb2.RangeRequest(key=b"guard"),
                                     timeout=harness.RPC_TIMEOUT).header.revision
            out.append(etcdctl(s, "compaction", str(rev))["exit"])
            out.append(etcdctl(s, "defrag")["exit"])
            return out
        compare("freeing space", per_server(etcd, geo, free))
        compare("put still refused before disarm", per_server(
            etcd, geo, lambda s: etcdctl(s, "put", "k", "v")))
        compare("etcdctl alarm disarm", per_server(etcd, geo,
                                                   lambda s: etcdctl(s, "alarm", "disarm")))
        compare("alarm list after disarm", per_server(
            etcd, geo, lambda s: etcdctl(s, "alarm", "list", "-w", "json")))
        compare("status errors after disarm", per_server(etcd, geo, status_errors))
        compare("writes work again", per_server(
            etcd, geo, lambda s: [etcdctl(s, "put", "k", "v"),
                                  etcdctl(s, "lease", "grant", "100")["exit"],
                                  etcdctl(s, "get", "k", "--print-value-only")]))
        # ...until the quota is exceeded again.
        refilled = per_server(etcd, geo, fill)
        harness.compare("refused again", refilled["etcd"][1], refilled["geoetcd"][1])
        compare("alarm raised again", per_server(etcd, geo,
                                                 lambda s: etcdctl(s, "alarm", "list")))
        check(geo.alive(), "geoetcd exited: %s" % geo.stderr_tail(2000))
        if harness.DIFFS:
            harness.report_diffs()
            raise Failure("%d differences from etcd" % len(harness.DIFFS))
    finally:
        etcd.destroy()
        geo.destroy()


TESTS = [test_nospace_alarm_matches_etcd]

if __name__ == "__main__":
    sys.exit(harness.run_tests(TESTS, Failure, announce="-v" in sys.argv))
