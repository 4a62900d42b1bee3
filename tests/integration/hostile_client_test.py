#!/usr/bin/python3
"""The client port under a hostile HTTP/2 client: geoetcd must stay up and bounded.

Each test drives the real geoetcd binary (native transport) with a raw HTTP/2 client
(python3-h2 with its own header validation switched off, or hand-built frames) sending
what no well-behaved gRPC client sends, and checks that the server keeps serving others:

  * malformed request headers (RFC 9113 §8.2-8.3) on every relayed service and on KV get
    RST_STREAM(PROTOCOL_ERROR); headers HTTP/2 allows but gRPC metadata does not are not
    relayed. Before the fix one `User-Agent: x` killed the process (SIGABRT in gRPC).
  * floods (issue 16): a connection that keeps its socket full does not starve the others
    on its I/O thread; one that never reads is not read either; HPACK references cannot
    buy unbounded header memory; a ping flood gets GOAWAY(ENHANCE_YOUR_CALM); running out
    of file descriptors does not make accept spin. The server's memory (VmRSS) and CPU
    time are read from /proc; the bounds are generous correctness bounds, not benchmarks.

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/hostile_client_test.py
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

PROTOCOL_ERROR = 1
REFUSED_STREAM = 7
ENHANCE_YOUR_CALM = 11

# Correctness bounds of the flood tests.
RSS_GROWTH_MAX_KIB = 100 * 1024   # server memory a flood may add
NEIGHBOUR_LATENCY_MAX_S = 3.0     # a neighbour's Range while floods run
FLOOD_S = 4.0                     # how long each flood runs

# One method of every service the native transport relays to gRPC C++, one it answers
# itself, and a path nobody serves.
RELAYED_PATHS = [
    "/etcdserverpb.Lease/LeaseLeases",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Cluster/MemberList",
    "/etcdserverpb.Auth/AuthStatus",
    "/grpc.health.v1.Health/Check",
    "/no.such.Service/Method",
]
NATIVE_PATHS = ["/etcdserverpb.KV/Range"]

# Fields that make a request malformed (RFC 9113 §8.2.1, §8.2.2, §8.3).
MALFORMED_FIELDS = [
    (b"User-Agent", b"x"),          # uppercase name
    (b"x y", b"1"),                 # space in a name
    (b"x:y", b"1"),                 # colon in a regular name
    (b"x-v", b"a\x00b"),            # NUL in a value
    (b"x-v", b"a\rb"),              # CR
    (b"x-v", b"a\nb"),              # LF
    (b"x-v", b" lead"),             # leading whitespace
    (b"connection", b"close"),      # connection-specific
    (b"te", b"gzip"),               # te other than "trailers"
    (b":bogus", b"1"),              # unknown pseudo-header
]
# Fields HTTP/2 allows that gRPC metadata does not: the call must go through without them.
UNRELAYABLE_FIELDS = [
    (b"x-v", "caf\u00e9".encode("utf-8")),  # obs-text
    (b"x-v", b"tab\there"),
    (b"x{y}", b"1"),
]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def empty_request_message():
    return b"\x00\x00\x00\x00\x00"  # a zero-length gRPC message: every request type's default


class RawH2:
    """A python3-h2 client that sends headers exactly as given."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=False,
                                           normalize_outbound_headers=False,
                                           validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, extra):
        sid = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                   (b":authority", b"test"), (b"content-type", b"application/grpc"),
                   (b"te", b"trailers")] + list(extra)
        self.conn.send_headers(sid, headers)
        self.conn.send_data(sid, empty_request_message(), end_stream=True)
        self.flush()
        return sid

    def outcome(self, sid, timeout_s=10):
        """('reset', code), ('status', grpc-status) or ('closed', None)."""
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                return ("closed", None)
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    return ("reset", ev.error_code)
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and ev.stream_id == sid:
                    for name, value in ev.headers:
                        if name == b"grpc-status":
                            status = int(value)
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    return ("status", status)
                if isinstance(ev, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.ConnectionTerminated):
                    return ("closed", None)
            self.flush()
        return ("timeout", None)

    def close(self):
        self.sock.close()


# ---- raw frames, for floods python3-h2 is too slow to produce ------------------------------

FRAME_DATA, FRAME_HEADERS, FRAME_RST_STREAM, FRAME_SETTINGS, FRAME_PING, FRAME_GOAWAY = \
    0, 1, 3, 4, 6, 7
FLAG_END_STREAM, FLAG_END_HEADERS = 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
            + struct.pack(">I", stream_id) + payload)


def hpack_int(value, prefix_bits, first_byte):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value, indexing=False):
    """A literal field with a literal name, added to the dynamic table when `indexing`."""
    return (b"\x40" if indexing else b"\x00") + hpack_int(len(name), 7, 0) + name \
        + hpack_int(len(value), 7, 0) + value


def request_block(path):
    """A gRPC request's header block without dynamic-table state: POST, http, `path`."""
    return (b"\x83\x86" + b"\x04" + hpack_int(len(path), 7, 0) + path
            + hpack_literal(b":authority", b"t")
            + hpack_literal(b"content-type", b"application/grpc")
            + hpack_literal(b"te", b"trailers"))


RANGE_PATH = b"/etcdserverpb.KV/Range"
# One dynamic-table entry as large as the default 4096-byte table allows (4000 + 3 + 32);
# each one-byte reference to it (index 62, the newest entry) decodes to 4 KB.
BOMB_ENTRY = hpack_literal(b"x-b", b"v" * 4000, indexing=True)
BOMB_REF = b"\xbe"
BOMB_REFS_PER_STREAM = 15  # 60 KB of headers, under the 64 KiB header-list bound


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure("no VmRSS for pid %d" % pid)


def cpu_seconds(pid):
    """utime + stime of the process, all threads."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_frames(data):
    """(type, flags, stream id, payload) of every whole frame in `data`."""
    frames = []
    pos = 0
    while len(data) - pos >= 9:
        n = int.from_bytes(data[pos:pos + 3], "big")
        if len(data) - pos < 9 + n:
            break
        frames.append((data[pos + 3], data[pos + 4],
                       int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7fffffff,
                       data[pos + 9:pos + 9 + n]))
        pos += 9 + n
    return frames


def read_frames(sock, timeout_s):
    """Every frame the peer sends until it closes or is quiet for `timeout_s`."""
    sock.settimeout(timeout_s)
    chunks = []
    while True:
        try:
            data = sock.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return parse_frames(b"".join(chunks))


class Flood:
    """A raw connection that sends what `next_batch()` returns until stopped; `drain` reads
    everything the server sends (the first MiB is kept in `received`), else the server's
    answers are never read."""

    def __init__(self, port, first_bytes, next_batch, drain):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(PREFACE + frame(FRAME_SETTINGS, 0, 0) + first_bytes)
        self.next_batch = next_batch
        self.stopped = False
        self.sent_bytes = 0
        self.closed_by_server = False
        self.received = b""
        self.threads = [threading.Thread(target=self._send, daemon=True)]
        if drain:
            self.threads.append(threading.Thread(target=self._drain, daemon=True))
        for t in self.threads:
            t.start()

    def _send(self):
        try:
            while not self.stopped:
                batch = self.next_batch()
                self.sock.sendall(batch)
                self.sent_bytes += len(batch)
        except OSError:
            self.closed_by_server = not self.stopped  # else stop() closed it

    def _drain(self):
        try:
            while not self.stopped:
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                if len(self.received) < (1 << 20):
                    self.received += data
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for t in self.threads:
            t.join(10)
        self.sock.close()


def settings_flood():
    blob = frame(FRAME_SETTINGS, 0, 0) * 20000  # each answered with a SETTINGS ACK
    return lambda: blob


def stream_flood(reset, with_message, bomb_refs=BOMB_REFS_PER_STREAM, streams_max=None,
                 request=b""):
    """HEADERS for KV Range carrying `bomb_refs` references to BOMB_ENTRY, optionally the
    request message (serialized `request`, by default an empty one) and RST_STREAM right
    after (rapid reset); stream ids count up."""
    state = {"sid": 3}  # stream 1 is bomb_first_bytes()
    block = request_block(RANGE_PATH) + BOMB_REF * bomb_refs
    message = frame(FRAME_DATA, FLAG_END_STREAM, 0,
                    b"\x00" + struct.pack(">I", len(request)) + request)

    def next_batch():
        parts = []
        for _ in range(2000):
            sid = state["sid"]
            if streams_max is not None and (sid + 1) // 2 > streams_max:
                time.sleep(0.05)
                break
            parts.append(frame(FRAME_HEADERS, FLAG_END_HEADERS, sid, block))
            if with_message:
                parts.append(message[:5] + struct.pack(">I", sid) + message[9:])
            if reset:
                parts.append(frame(FRAME_RST_STREAM, 0, sid, struct.pack(">I", 8)))
            state["sid"] = sid + 2
        return b"".join(parts)
    return next_batch


def bomb_first_bytes():
    """Stream 1: HEADERS that insert BOMB_ENTRY into the server's table, then reset."""
    state_first = frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, request_block(RANGE_PATH) + BOMB_ENTRY)
    return state_first + frame(FRAME_RST_STREAM, 0, 1, struct.pack(">I", 8))


def watch_under_flood(server, base_kib, floods, probe_neighbour=True):
    """Runs for FLOOD_S while `floods` go: the server's RSS growth over `base_kib` (read
    before the floods began) stays under the bound, checked as it goes so a failing server
    is stopped early, and, when asked, a neighbour's Range keeps answering within
    NEIGHBOUR_LATENCY_MAX_S. Stops the floods."""
    pid = server.proc.pid
    base = base_kib
    worst_latency = 0.0
    growth = 0
    try:
        deadline = time.monotonic() + FLOOD_S
        while time.monotonic() < deadline:
            check(server.alive(), "geoetcd died under the flood; stderr:\n%s"
                  % server.stderr_tail())
            growth = rss_kib(pid) - base
            check(growth < RSS_GROWTH_MAX_KIB, "server RSS grew by %d MiB under the flood"
                  % (growth // 1024))
            if probe_neighbour:
                t0 = time.monotonic()
                try:
                    server.stubs().kv.Range(rpc_pb2.RangeRequest(key=b"k"),
                                            timeout=NEIGHBOUR_LATENCY_MAX_S)
                except Exception as exc:  # grpc.RpcError: DEADLINE_EXCEEDED when starved
                    raise Failure("a neighbour's Range failed under the flood: %s" % exc)
                worst_latency = max(worst_latency, time.monotonic() - t0)
            time.sleep(0.1)
    finally:
        for f in floods:
            f.stop()
    server_alive(server)
    return growth, worst_latency


def server_alive(server):
    check(server.alive(), "geoetcd died (exit code %s); stderr:\n%s"
          % (server.proc.poll(), server.stderr_tail()))
    server.stubs().kv.Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5)


def test_malformed_headers_reset_the_stream_and_the_server_lives():
    server = harness.Server("geoetcd").start()
    try:
        for path in RELAYED_PATHS + NATIVE_PATHS:
            client = RawH2(server.client_port)
            for field in MALFORMED_FIELDS:
                sid = client.request(path, [field])
                got = client.outcome(sid)
                server_alive(server)
                check(got == ("reset", PROTOCOL_ERROR),
                      "%s with %r: want RST_STREAM(PROTOCOL_ERROR), got %r" % (path, field, got))
            # The connection outlives its malformed streams.
            sid = client.request(path, [])
            got = client.outcome(sid)
            check(got[0] == "status", "%s after malformed streams: %r" % (path, got))
            client.close()
    finally:
        server.stop()


def test_headers_grpc_rejects_are_not_relayed():
    server = harness.Server("geoetcd").start()
    try:
        for path in RELAYED_PATHS:
            client = RawH2(server.client_port)
            for field in UNRELAYABLE_FIELDS:
                sid = client.request(path, [field])
                got = client.outcome(sid)
                server_alive(server)
                check(got[0] == "status", "%s with %r: want a gRPC status, got %r"
                      % (path, field, got))
            client.close()
    finally:
        server.stop()


def test_a_flooding_connection_does_not_starve_its_neighbours():
    # Two of each flood (the server has two I/O threads and assigns connections in turn, so
    # one of each shares the neighbour's thread); they read what they get back. Before the
    # fix a read loop kept reading while each read filled its buffer: nothing was written,
    # finished streams were not reaped, the neighbour stalled and the server grew by GBs.
    server = harness.Server("geoetcd").start()
    try:
        base = rss_kib(server.proc.pid)
        floods = []
        for _ in range(2):
            floods.append(Flood(server.client_port, b"", settings_flood(), drain=True))
            floods.append(Flood(server.client_port, bomb_first_bytes(),
                                stream_flood(reset=True, with_message=True), drain=True))
        growth, latency = watch_under_flood(server, base, floods)
        print("    rss +%d KiB, worst neighbour latency %.3f s" % (growth, latency))
    finally:
        server.stop()


def test_a_client_that_never_reads_is_not_read_either():
    # SETTINGS (each answered by an ACK) and KV requests (each answered) from clients that
    # never read: the server's output queue is bounded, so it stops reading them. Ranges of
    # a 256 KiB value wait for a window the client never grants: the bytes waiting so are
    # bounded too, and the streams beyond are refused.
    server = harness.Server("geoetcd").start()
    try:
        server.stubs().kv.Put(rpc_pb2.PutRequest(key=b"big", value=b"v" * (256 << 10)),
                              timeout=5)
        big_range = rpc_pb2.RangeRequest(key=b"big").SerializeToString()
        base = rss_kib(server.proc.pid)
        floods = []
        for _ in range(2):
            floods.append(Flood(server.client_port, b"", settings_flood(), drain=False))
            floods.append(Flood(server.client_port, bomb_first_bytes(),
                                stream_flood(reset=False, with_message=True, bomb_refs=0),
                                drain=False))
        floods.append(Flood(server.client_port, bomb_first_bytes(),
                            stream_flood(reset=False, with_message=True, bomb_refs=0,
                                         request=big_range), drain=False))
        growth, latency = watch_under_flood(server, base, floods)
        print("    rss +%d KiB, worst neighbour latency %.3f s" % (growth, latency))
    finally:
        server.stop()


def test_hpack_references_cannot_buy_unbounded_header_memory():
    # Each stream is ~80 bytes on the wire (15 one-byte references to a 4 KB table entry)
    # and 60 KB decoded; its Range call waits for a message that never comes. Before the
    # fix 100,000 such streams per connection were allowed: GBs. Now the headers a
    # connection holds are bounded and the streams beyond are refused.
    server = harness.Server("geoetcd").start()
    try:
        base = rss_kib(server.proc.pid)
        floods = [Flood(server.client_port, bomb_first_bytes(),
                        stream_flood(reset=False, with_message=False, streams_max=20000),
                        drain=False) for _ in range(2)]
        growth, latency = watch_under_flood(server, base, floods)
        print("    rss +%d KiB, worst neighbour latency %.3f s" % (growth, latency))
        # A fresh connection sees the refusal: the bound is per connection, so one of its
        # own parked streams fits and the stream past the bound is refused.
        sock = socket.create_connection(("127.0.0.1", server.client_port))
        block = request_block(RANGE_PATH) + BOMB_REF * BOMB_REFS_PER_STREAM
        streams = 1000  # 60 MB of headers asked for
        sock.sendall(PREFACE + frame(FRAME_SETTINGS, 0, 0) + bomb_first_bytes() + b"".join(
            frame(FRAME_HEADERS, FLAG_END_HEADERS, 3 + 2 * i, block) for i in range(streams)))
        frames = read_frames(sock, 2.0)
        sock.close()
        refused = [f for f in frames if f[0] == FRAME_RST_STREAM
                   and struct.unpack(">I", f[3])[0] == REFUSED_STREAM]
        check(0 < len(refused) < streams, "want some of %d parked streams refused, got %d"
              % (streams, len(refused)))
        server_alive(server)
    finally:
        server.stop()


def test_a_ping_flood_gets_enhance_your_calm():
    # PINGs and nothing else, from a client that reads and one that never does: gRPC's rule
    # (with etcd's 5 s minimum interval) allows two early ones; the next gets
    # GOAWAY(ENHANCE_YOUR_CALM) and the connection closes. Before the fix every PING was
    # answered and the answers piled up.
    server = harness.Server("geoetcd").start()
    try:
        base = rss_kib(server.proc.pid)
        pings = frame(FRAME_PING, 0, 0, b"\x00" * 8) * 20000
        reading = Flood(server.client_port, b"", lambda: pings, drain=True)
        deaf = Flood(server.client_port, b"", lambda: pings, drain=False)
        growth, _ = watch_under_flood(server, base, [reading, deaf])
        check(reading.closed_by_server and deaf.closed_by_server,
              "the server kept ping-flooding connections open")
        frames = parse_frames(reading.received)
        acks = [f for f in frames if f[0] == FRAME_PING]
        goaways = [f for f in frames if f[0] == FRAME_GOAWAY]
        check(len(acks) == 3, "want 3 PING ACKs before the GOAWAY, got %d" % len(acks))
        check(len(goaways) == 1 and struct.unpack(">I", goaways[0][3][4:8])[0]
              == ENHANCE_YOUR_CALM, "want GOAWAY(ENHANCE_YOUR_CALM), got %r" % goaways)
        print("    rss +%d KiB" % growth)
    finally:
        server.stop()


class LimitedServer(harness.Server):
    """geoetcd under `prlimit --nofile=N`."""

    def __init__(self, nofile):
        super().__init__("geoetcd")
        self.nofile = nofile

    def command(self):
        return ["prlimit", "--nofile=%d" % self.nofile, "--"] + super().command()


def test_accept_backs_off_when_descriptors_run_out():
    # With every descriptor taken, the connection accept cannot take keeps the listener
    # readable. Before the fix accept was retried at once, forever: 70-100% of a core.
    nofile = 256
    server = LimitedServer(nofile).start()
    socks = []
    try:
        pid = server.proc.pid
        for _ in range(nofile + 50):
            socks.append(socket.create_connection(("127.0.0.1", server.client_port), timeout=5))
        time.sleep(0.5)
        in_use = len(os.listdir("/proc/%d/fd" % pid))
        check(in_use >= nofile - 1, "the server holds %d descriptors of %d: not exhausted"
              % (in_use, nofile))
        cpu0 = cpu_seconds(pid)
        time.sleep(2.0)
        cpu = cpu_seconds(pid) - cpu0
        print("    %.2f s of CPU in 2 s with descriptors exhausted" % cpu)
        check(cpu < 0.5, "the server used %.2f s of CPU in 2 s out of descriptors" % cpu)
        for s in socks:
            s.close()
        socks = []
        # Descriptors come back: accept resumes and new clients are served.
        check(harness.wait_until(lambda: len(os.listdir("/proc/%d/fd" % pid)) < nofile // 2,
                                 10), "the server did not let go of closed connections")
        client = RawH2(server.client_port)
        got = client.outcome(client.request("/etcdserverpb.KV/Range", []))
        client.close()
        check(got[0] == "status", "a new client after the descriptors came back: %r" % (got,))
    finally:
        for s in socks:
            s.close()
        server.stop()


TESTS = [
    test_malformed_headers_reset_the_stream_and_the_server_lives,
    test_headers_grpc_rejects_are_not_relayed,
    test_a_flooding_connection_does_not_starve_its_neighbours,
    test_a_client_that_never_reads_is_not_read_either,
    test_hpack_references_cannot_buy_unbounded_header_memory,
    test_a_ping_flood_gets_enhance_your_calm,
    test_accept_backs_off_when_descriptors_run_out,
]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
