#!/usr/bin/python3
"""The client port under a hostile HTTP/2 client: geoetcd must stay up and bounded.

Each test drives the real geoetcd binary (native transport) with a raw HTTP/2 client
(python3-h2 with its own header validation switched off, or hand-built frames) sending
what no well-behaved gRPC client sends, and checks that the server keeps serving others:

  * malformed request headers (RFC 9113 §8.2-8.3) on every relayed service and on KV get
    RST_STREAM(PROTOCOL_ERROR); headers HTTP/2 allows but gRPC metadata does not are not
    relayed. Before the fix one `User-Agent: x` killed the process (SIGABRT in gRPC).

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/hostile_client_test.py
"""

import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402

PROTOCOL_ERROR = 1

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


TESTS = [
    test_malformed_headers_reset_the_stream_and_the_server_lives,
    test_headers_grpc_rejects_are_not_relayed,
]


def main():
    return harness.run_tests(TESTS, Failure, announce=True)


if __name__ == "__main__":
    sys.exit(main())
