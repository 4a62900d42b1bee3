#!/usr/bin/python3
"""/metrics, /health, /livez and /readyz on --listen-metrics-urls (issue 13, part 3).

  * a bad --listen-metrics-urls is refused at startup with etcd's error text
  * /metrics parses strictly as text format 0.0.4 (our own parser below, and
    python3-prometheus-client's), on both client transports; puts, ranges and a failing
    request move grpc_server_*_total, proposals, keys, fsync and group-commit by what they
    did
  * /health, 404s and 405s answer byte for byte as a real etcd 3.4 on its metrics URL, healthy
    and without a leader (a two-member cluster with one member up)
  * a region cut off from its write region: has_leader 0, /health 503, /livez 200, /readyz 503
    naming linearizable_read
  * two live regions: a put away from W is forwarded and counted, lag returns to 0, peer RTT
    and anti-entropy bytes are reported per region
  * a real Prometheus (Debian `prometheus`) scrapes geoetcd and answers
    etcd_server_has_leader == 1 over its HTTP API

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/metrics_test.py
"""

import http.client
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

import grpc  # noqa: E402


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def http_get(port, path, method="GET", timeout=5.0):
    """(status, headers dict with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def wait_http(port, timeout=20.0):
    def up():
        try:
            http_get(port, "/metrics", timeout=1.0)
            return True
        except OSError:
            return False
    check(harness.wait_until(up, timeout), "metrics port %d never answered" % port)


# --- A strict parser of the text format (what Prometheus' own parser insists on) ----------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"'
SAMPLE = re.compile(r"^(%s)(\{(%s(,%s)*)?\})? (\S+)$" % (NAME, LABEL, LABEL))


def unescape(v):
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    return float(text)  # raises on anything else


def parse_metrics(text):
    """{family: {"type", "help", "samples": [(name, {labels}, value)]}}; raises Failure on any
    line the format does not allow, a sample outside its family, a family seen twice, or a
    histogram whose buckets are not cumulative or do not end in le="+Inf" == _count."""
    check(text.endswith("\n"), "exposition does not end in a newline")
    families = {}
    current = None
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            check(re.fullmatch(NAME, name), "bad HELP name: %r" % line)
            check(name not in families, "family %s appears twice" % name)
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            check(name == current and families[name]["type"] is None,
                  "TYPE line not right after its HELP: %r" % line)
            check(kind in ("counter", "gauge", "histogram", "summary", "untyped"),
                  "bad type: %r" % line)
            families[name]["type"] = kind
            continue
        check(not line.startswith("#") and line, "unexpected line: %r" % line)
        m = SAMPLE.match(line)
        check(m, "malformed sample line: %r" % line)
        name = m.group(1)
        labels = {k: unescape(v) for k, v in re.findall(LABEL, m.group(2) or "")}
        value = parse_value(m.group(m.lastindex))
        fam = families.get(current)
        kind = fam["type"] if fam else None
        allowed = ({current + "_bucket", current + "_sum", current + "_count"}
                   if kind == "histogram" else
                   {current, current + "_sum", current + "_count"} if kind == "summary" else
                   {current})
        check(fam is not None and name in allowed,
              "sample %s outside its family (current %s)" % (name, current))
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        check(fam["type"] is not None, "family %s has no TYPE" % name)
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            check("le" in labels, "%s bucket without le" % name)
            series[key]["buckets"].append((parse_value(labels["le"]), value))
        elif sname.endswith("_sum"):
            series[key]["sum"] = value
        else:
            series[key]["count"] = value
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        counts = [c for _, c in s["buckets"]]
        check(les == sorted(les) and les and les[-1] == math.inf,
              "%s%s: buckets not ascending to +Inf: %s" % (name, key, les))
        check(counts == sorted(counts), "%s%s: buckets not cumulative: %s" % (name, key, counts))
        check(s["count"] == counts[-1], "%s%s: _count %s != +Inf bucket %s"
              % (name, key, s["count"], counts[-1]))
        check(s["sum"] is not None, "%s%s: no _sum" % (name, key))


def scrape(port):
    status, headers, body = http_get(port, "/metrics")
    check(status == 200, "/metrics status %d" % status)
    check(headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8",
          "/metrics content type %r" % headers.get("content-type"))
    text = body.decode()
    families = parse_metrics(text)
    # The reference parser too (python3-prometheus-client, Debian), when installed.
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
    if text_string_to_metric_families is not None:
        names = {f.name for f in text_string_to_metric_families(text)}
        check("etcd_server_has_leader" in names, "prometheus_client parsed %s" % sorted(names))
    return families


def value(families, name, **labels):
    """The sample of `name` whose labels include `labels`; 0 when absent (a counter not
    incremented yet has no series)."""
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = families.get(name) or families.get(base)
    check(fam is not None, "no family %s" % name)
    found = [v for n, l, v in fam["samples"]
             if n == name and all(l.get(k) == want for k, want in labels.items())]
    check(len(found) <= 1, "%s%s matches %d series" % (name, labels, len(found)))
    return found[0] if found else 0.0


def geoetcd_with_metrics(extra=None, transport="native"):
    srv = harness.Server("geoetcd")
    srv.metrics_port = harness.free_port()
    srv.extra_args = ["--listen-metrics-urls", "http://127.0.0.1:%d" % srv.metrics_port,
                      "--client-transport", transport] + list(extra or [])
    return srv


def grpc_method_value(families, family, method, **labels):
    return value(families, family, grpc_method=method, grpc_service="etcdserverpb.KV",
                 grpc_type="unary", **labels)


# --- Tests ----------------------------------------------------------------------------------

def refusal(binary, url):
    d = harness.make_temp_dir()
    try:
        p = subprocess.run([binary, "--data-dir", d + "/data", "--listen-metrics-urls", url],
                           capture_output=True, text=True, timeout=20, env=harness.clean_env())
        check(p.returncode != 0, "%s accepted metrics URL %s" % (binary, url))
        return p.stderr
    finally:
        harness.remove_temp_dir(d)


def test_bad_metrics_url_is_refused_like_etcd():
    # etcd: `invalid value "<url>" for flag -listen-metrics-urls: <why>`; geoetcd spells the
    # flag --listen-metrics-urls, as for its other URL flags, and gives the same <why>.
    for url in ("ftp://127.0.0.1:2381", "http://127.0.0.1:2381/x", "http://127.0.0.1"):
        e = refusal(harness.etcd_bin(), url).splitlines()[0]
        g = refusal(harness.geoetcd_bin(), url)
        why = e.split("-listen-metrics-urls: ", 1)[1]
        check(e.startswith('invalid value "%s" for flag -listen-metrics-urls: ' % url), e)
        check('invalid value "%s" for --listen-metrics-urls: %s' % (url, why) in g,
              "etcd said %r, geoetcd %r" % (e, g))
    p = subprocess.run([harness.geoetcd_bin(), "--listen-metrics-urls",
                        "http://example.com:2381"], capture_output=True, text=True, timeout=20,
                       env=harness.clean_env())
    check(p.returncode != 0 and
          "--listen-metrics-urls: expected IP in URL for binding" in p.stderr, p.stderr[-600:])


def counters_move(transport):
    srv = geoetcd_with_metrics(transport=transport).start()
    try:
        wait_http(srv.metrics_port)
        kv = srv.stubs().kv
        before = scrape(srv.metrics_port)
        for i in range(5):
            kv.Put(rpc_pb2.PutRequest(key=b"m/%d" % i, value=b"v"), timeout=5)
        kv.Put(rpc_pb2.PutRequest(key=b"m/0", value=b"again"), timeout=5)  # no new key
        kv.Range(rpc_pb2.RangeRequest(key=b"m/", range_end=b"m0"), timeout=5)
        try:
            kv.Range(rpc_pb2.RangeRequest(key=b"m/", revision=10 ** 6), timeout=5)
            raise Failure("a range at a future revision succeeded")
        except grpc.RpcError as exc:
            check(exc.code() == grpc.StatusCode.OUT_OF_RANGE, "future revision: %s" % exc)
        after = scrape(srv.metrics_port)

        def delta(name, **labels):
            return value(after, name, **labels) - value(before, name, **labels)

        check(grpc_method_value(after, "grpc_server_started_total", "Put") -
              grpc_method_value(before, "grpc_server_started_total", "Put") == 6,
              "Put started delta")
        check(grpc_method_value(after, "grpc_server_handled_total", "Put", grpc_code="OK") -
              grpc_method_value(before, "grpc_server_handled_total", "Put", grpc_code="OK") == 6,
              "Put handled OK delta")
        check(grpc_method_value(after, "grpc_server_handled_total", "Range",
                                grpc_code="OutOfRange") == 1,
              "Range handled OutOfRange")
        check(delta("etcd_server_proposals_committed_total") == 6, "committed delta %s"
              % delta("etcd_server_proposals_committed_total"))
        check(delta("etcd_server_proposals_applied_total") == 6, "applied delta")
        check(delta("etcd_debugging_mvcc_keys_total") == 5, "keys delta %s"
              % delta("etcd_debugging_mvcc_keys_total"))
        check(value(after, "geoetcd_account_revision", account="default") -
              value(before, "geoetcd_account_revision", account="default") == 6, "revision")
        # Every put is durable before it is answered: at least one synced write for the
        # first, and the six entries in group-commit sizes.
        check(delta("etcd_disk_wal_fsync_duration_seconds_count") >= 1, "fsync count")
        check(delta("etcd_disk_wal_fsync_duration_seconds_sum") > 0, "fsync sum")
        check(delta("geoetcd_group_commit_size_sum") == 6, "group commit entries %s"
              % delta("geoetcd_group_commit_size_sum"))
        check(1 <= delta("geoetcd_group_commit_size_count") <= 6, "group commit writes")
        check(value(after, "etcd_mvcc_db_total_size_in_bytes") > 0, "db size")
        check(value(after, "etcd_server_has_leader") == 1, "has_leader")
        check(value(after, "etcd_server_is_leader") == 1, "is_leader")
        # Watch (native: counted by the transport; grpc: by the interceptor) once cancelled.
        channel = srv.channel()
        watch = channel.stream_stream("/etcdserverpb.Watch/Watch",
                                      request_serializer=rpc_pb2.WatchRequest.SerializeToString,
                                      response_deserializer=rpc_pb2.WatchResponse.FromString)
        it = watch(iter([rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(key=b"w"))]))
        next(it)
        it.cancel()
        check(harness.wait_until(lambda: value(
            scrape(srv.metrics_port), "grpc_server_handled_total", grpc_method="Watch",
            grpc_service="etcdserverpb.Watch", grpc_type="bidi_stream",
            grpc_code="Canceled") == 1, 10), "cancelled watch not counted")
    finally:
        srv.destroy()


def test_counters_move_native_transport():
    counters_move("native")


def test_counters_move_grpc_transport():
    counters_move("grpc")


def etcd_with_metrics(extra=None):
    srv = harness.Server("etcd")
    srv.metrics_port = harness.free_port()
    srv.extra_args = ["--listen-metrics-urls",
                      "http://127.0.0.1:%d" % srv.metrics_port] + list(extra or [])
    return srv


def same_answer(etcd_port, geo_port, path, method="GET", headers=("content-type",)):
    e = http_get(etcd_port, path, method)
    g = http_get(geo_port, path, method)
    for name in headers:
        check(e[1].get(name) == g[1].get(name), "%s %s header %s: etcd %r, geoetcd %r"
              % (method, path, name, e[1].get(name), g[1].get(name)))
    if method != "HEAD":
        check(e[0] == g[0] and e[2] == g[2], "%s %s: etcd %d %r, geoetcd %d %r"
              % (method, path, e[0], e[2], g[0], g[2]))
    return g


def test_health_matches_etcd():
    etcd = etcd_with_metrics().start()
    geo = geoetcd_with_metrics().start()
    try:
        wait_http(etcd.metrics_port)
        wait_http(geo.metrics_port)
        st, _, body = same_answer(etcd.metrics_port, geo.metrics_port, "/health")
        check(st == 200 and body == b'{"health":"true"}', "healthy: %d %r" % (st, body))
        st, h, body = same_answer(etcd.metrics_port, geo.metrics_port, "/health", "POST",
                                  headers=("content-type", "allow", "x-content-type-options"))
        check(st == 405 and h.get("allow") == "GET", "POST /health: %d %s" % (st, h))
        same_answer(etcd.metrics_port, geo.metrics_port, "/nope",
                    headers=("content-type", "x-content-type-options"))
        st, _, _ = same_answer(etcd.metrics_port, geo.metrics_port, "/health", "HEAD",
                               headers=())
        check(st == 405, "HEAD /health: %d" % st)
        e = http_get(etcd.metrics_port, "/metrics")
        g = http_get(geo.metrics_port, "/metrics")
        check(e[1]["content-type"] == g[1]["content-type"], "metrics content types %s %s"
              % (e[1]["content-type"], g[1]["content-type"]))
        # etcd 3.5's probes (3.4 has none).
        st, _, body = http_get(geo.metrics_port, "/livez")
        check((st, body) == (200, b"ok\n"), "livez %d %r" % (st, body))
        st, _, body = http_get(geo.metrics_port, "/readyz?verbose")
        check(st == 200 and body == b"[+]data_corruption ok\n[+]serializable_read ok\n"
              b"[+]linearizable_read ok\nok\n", "readyz verbose %d %r" % (st, body))
        st, _, body = http_get(geo.metrics_port, "/livez?verbose&exclude=serializable_read")
        check(st == 200 and b"[+]serializable_read excluded: ok\n" in body, body)
        # An alarm: unhealthy on both, unless excluded (etcd 3.4 already takes ?exclude=).
        for srv in (etcd, geo):
            srv.stubs().maintenance.Alarm(rpc_pb2.AlarmRequest(
                action=rpc_pb2.AlarmRequest.ACTIVATE, memberID=0, alarm=rpc_pb2.NOSPACE),
                timeout=5)
        st, _, body = same_answer(etcd.metrics_port, geo.metrics_port, "/health",
                                  headers=("content-type", "x-content-type-options"))
        check(st == 503 and body == b'{"health":"false"}\n', "NOSPACE: %d %r" % (st, body))
        st, _, body = same_answer(etcd.metrics_port, geo.metrics_port, "/health?exclude=NOSPACE")
        check(st == 200, "NOSPACE excluded: %d %r" % (st, body))
        st, _, body = http_get(geo.metrics_port, "/readyz")
        check(st == 200, "NOSPACE is not a readiness failure: %d %r" % (st, body))
        # Both count /health answers alike: 2 healthy; 405s and (as etcd 3.4 does) an
        # alarm's 503 are not counted.
        for srv in (etcd, geo):
            m = scrape(srv.metrics_port)
            got = (value(m, "etcd_server_health_success"), value(m, "etcd_server_health_failures"))
            check(got == (2, 0), "%s health counters %s" % (srv.kind, got))
    finally:
        etcd.destroy()
        geo.destroy()


def lone_member(kind, write_region_missing=True):
    """Member a of a two-member cluster whose other member b (the write region / a voter
    etcd needs for a leader) never starts."""
    srv = harness.Server(kind, name="a")
    srv.client_port = harness.free_port()
    srv.peer_port = harness.free_port()
    srv.metrics_port = harness.free_port()
    b_peer = "http://127.0.0.1:%d" % harness.free_port()
    args = ["--name", "a", "--data-dir", srv.data_dir,
            "--listen-client-urls", srv.client_url, "--advertise-client-urls", srv.client_url,
            "--listen-peer-urls", srv.peer_url, "--initial-advertise-peer-urls", srv.peer_url,
            "--initial-cluster", "a=%s,b=%s" % (srv.peer_url, b_peer),
            "--listen-metrics-urls", "http://127.0.0.1:%d" % srv.metrics_port]
    if kind == "geoetcd" and write_region_missing:
        args += ["--write-region", "b", "--forward-timeout", "500ms"]
    srv.args_override = args
    srv.spawn(new_ports=False)
    wait_http(srv.metrics_port)
    return srv


def test_no_leader_matches_etcd_and_cut_region_probes():
    etcd = lone_member("etcd")
    geo = lone_member("geoetcd")
    try:
        st, h, body = same_answer(etcd.metrics_port, geo.metrics_port, "/health",
                                  headers=("content-type", "x-content-type-options"))
        check(st == 503 and body == b'{"health":"false"}\n', "no leader: %d %r" % (st, body))
        for srv in (etcd, geo):
            m = scrape(srv.metrics_port)
            got = (value(m, "etcd_server_health_success"), value(m, "etcd_server_health_failures"))
            check(got == (0, 1), "%s health counters without a leader: %s" % (srv.kind, got))
        m = scrape(geo.metrics_port)
        check(value(m, "etcd_server_has_leader") == 0, "has_leader with W down")
        check(value(m, "etcd_server_is_leader") == 0, "is_leader away from W")
        check(value(m, "geoetcd_peer_connected", region="b") == 0, "peer b connected?")
        # A region cut off from W still serves serializable reads: live, not ready.
        st, _, body = http_get(geo.metrics_port, "/livez")
        check((st, body) == (200, b"ok\n"), "livez away from W: %d %r" % (st, body))
        st, h, body = http_get(geo.metrics_port, "/readyz")
        check(st == 503 and b"[-]linearizable_read failed: " in body and
              body.endswith(b"readyz check failed\n"), "readyz away from W: %d %r" % (st, body))
        # etcd 3.5's ?serializable=true skips the leader: the region's own state answers.
        st, _, body = http_get(geo.metrics_port, "/health?serializable=true")
        check((st, body) == (200, b'{"health":"true"}'), "serializable health %d %r"
              % (st, body))
    finally:
        etcd.destroy()
        geo.destroy()


def test_two_regions_forwarding_lag_rtt_antientropy():
    names = ["r1", "r2"]
    ports = {n: (harness.free_port(), harness.free_port(), harness.free_port()) for n in names}
    cluster = ",".join("%s=http://127.0.0.1:%d" % (n, ports[n][1]) for n in names)
    servers = {}
    for n in names:
        c, p, m = ports[n]
        srv = harness.Server(name=n)
        srv.client_port, srv.peer_port, srv.metrics_port = c, p, m
        srv.args_override = [
            "--name", n, "--data-dir", srv.data_dir,
            "--listen-client-urls", srv.client_url, "--advertise-client-urls", srv.client_url,
            "--listen-peer-urls", srv.peer_url, "--initial-advertise-peer-urls", srv.peer_url,
            "--initial-cluster", cluster, "--gossip-interval", "100ms",
            # Writes at r1 go on while r2 is down (a majority of two is both).
            "--write-quorum", "local",
            "--listen-metrics-urls", "http://127.0.0.1:%d" % m]
        servers[n] = srv
    try:
        for srv in servers.values():
            srv.spawn(new_ports=False)
        for srv in servers.values():
            srv.wait_ready()
        r1, r2 = servers["r1"], servers["r2"]
        before = scrape(r2.metrics_port)
        for i in range(3):
            r2.stubs().kv.Put(rpc_pb2.PutRequest(key=b"f/%d" % i, value=b"v"), timeout=5)
        after2 = scrape(r2.metrics_port)
        check(value(after2, "geoetcd_forwarded_requests_total") -
              value(before, "geoetcd_forwarded_requests_total") == 3, "forwarded delta")
        check(value(after2, "etcd_server_has_leader") == 1 and
              value(after2, "etcd_server_is_leader") == 0, "r2 leader gauges")
        check(value(after2, "geoetcd_account_write_region_info", account="default",
                    write_region="r1") == 1, "write region info")

        def settled():
            m1, m2 = scrape(r1.metrics_port), scrape(r2.metrics_port)
            return (value(m1, "geoetcd_forwards_executed_total") >= 3 and
                    value(m1, "geoetcd_replication_lag_revisions", account="default",
                          region="r2") == 0 and
                    value(m2, "geoetcd_replication_lag_revisions", account="default",
                          region="r2") == 0 and
                    value(m1, "etcd_network_peer_round_trip_time_seconds_count",
                          To="%x" % r2_id()) > 0 and
                    value(m2, "geoetcd_antientropy_bytes_total") > 0)

        def r2_id():
            return r2.stubs().maintenance.Status(rpc_pb2.StatusRequest(), timeout=5).header \
                .member_id
        check(harness.wait_until(settled, 20), "lag/rtt/anti-entropy never settled:\n%s" %
              "\n".join(l for l in http_get(r1.metrics_port, "/metrics")[2].decode()
                        .splitlines() if l.startswith("geoetcd_") or "round_trip" in l))
        # r2 down: W reports what r2 lacks, entry by entry; r2 back: caught up, 0 again.
        r2.stop()
        for i in range(4):
            r1.stubs().kv.Put(rpc_pb2.PutRequest(key=b"lag/%d" % i, value=b"v"), timeout=5)
        lag = value(scrape(r1.metrics_port), "geoetcd_replication_lag_revisions",
                    account="default", region="r2")
        check(lag == 4, "lag of a stopped r2 after 4 puts: %s" % lag)
        time.sleep(1.0)
        lag_s = value(scrape(r1.metrics_port), "geoetcd_replication_lag_seconds",
                      account="default", region="r2")
        check(1.0 <= lag_s < 30, "lag seconds of a stopped r2: %s" % lag_s)
        r2.spawn(new_ports=False)
        r2.wait_ready()
        check(harness.wait_until(lambda: value(
            scrape(r1.metrics_port), "geoetcd_replication_lag_revisions", account="default",
            region="r2") == 0, 20), "r2 never caught up")
        check(value(scrape(r1.metrics_port), "geoetcd_replication_lag_seconds",
                    account="default", region="r2") == 0, "lag seconds after catch-up")
        m1 = scrape(r1.metrics_port)
        check(value(m1, "etcd_server_is_leader") == 1, "r1 is W")
        check(value(m1, "etcd_server_proposals_committed_total") ==
              value(scrape(r2.metrics_port), "etcd_server_proposals_committed_total"),
              "regions hold different log lengths after settling")
    finally:
        for srv in servers.values():
            srv.destroy()


def test_real_prometheus_scrapes_geoetcd():
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("SKIP test_real_prometheus_scrapes_geoetcd: no `prometheus` binary (Debian "
              "package prometheus; scripts/deps.sh test installs it)")
        return
    geo = geoetcd_with_metrics().start()
    d = harness.make_temp_dir("prometheus-")
    proc = None
    try:
        wait_http(geo.metrics_port)
        web_port = harness.free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: geoetcd\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % geo.metrics_port)
        log = open(os.path.join(d, "prometheus.log"), "wb")
        proc = subprocess.Popen(
            [prometheus, "--config.file", os.path.join(d, "prometheus.yml"),
             "--storage.tsdb.path", os.path.join(d, "data"),
             "--web.listen-address", "127.0.0.1:%d" % web_port],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        last = {}

        def answered():
            try:
                q = urllib.parse.urlencode({"query": "etcd_server_has_leader"})
                st, _, body = http_get(web_port, "/api/v1/query?" + q, timeout=2)
                last["body"] = body
                res = json.loads(body)["data"]["result"] if st == 200 else []
                return any(r["metric"].get("job") == "geoetcd" and r["value"][1] == "1"
                           for r in res)
            except (OSError, ValueError, KeyError):
                return False
        check(harness.wait_until(answered, 60, interval=0.5),
              "Prometheus never answered has_leader == 1: %r" % last.get("body"))
        # The scrape itself was healthy: `up` is 1 and no sample was rejected.
        q = urllib.parse.urlencode({"query": "up{job=\"geoetcd\"}"})
        st, _, body = http_get(web_port, "/api/v1/query?" + q)
        res = json.loads(body)["data"]["result"]
        check(res and res[0]["value"][1] == "1", "up: %s" % body)
        st, _, body = http_get(web_port, "/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"]
        check(targets and targets[0]["lastError"] == "", "scrape error: %s" % targets)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        geo.destroy()
        harness.remove_temp_dir(d)


TESTS = [
    test_bad_metrics_url_is_refused_like_etcd,
    test_counters_move_native_transport,
    test_counters_move_grpc_transport,
    test_health_matches_etcd,
    test_no_leader_matches_etcd_and_cut_region_probes,
    test_two_regions_forwarding_lag_rtt_antientropy,
    test_real_prometheus_scrapes_geoetcd,
]

if __name__ == "__main__":
    sys.exit(harness.run_tests(TESTS, Failure, announce=True))
