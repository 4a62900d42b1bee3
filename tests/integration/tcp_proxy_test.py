#!/usr/bin/python3
"""The TCP delay-and-partition proxy (tests/testing/tcp_proxy.py) the multi-region suites
run their links through: bytes pass unchanged and in order, each direction's delay is
applied (at least the delay; no upper bound is asserted, the machine may be slow), cut
closes connections and refuses or holds new ones, heal restores the link. Both as a library
and as a command with its control port and signals.

Run:  /usr/bin/python3 tests/integration/tcp_proxy_test.py
"""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testing"))

import tcp_proxy  # noqa: E402

PROXY_PY = os.path.join(HERE, "..", "testing", "tcp_proxy.py")
WAIT_S = 10.0  # liveness deadline only


class Target:
    """A loopback TCP server: echoes what it reads, or, in stamp mode, records when each
    byte arrived (for one-way measurements)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.arrivals = []  # (monotonic time, data) in stamp mode
        self.conns = []
        self.stamp = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    return
                if self.stamp:
                    with self.lock:
                        self.arrivals.append((time.monotonic(), data))
                else:
                    conn.sendall(data)
        except OSError:
            pass

    def latest_conn(self):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self.lock:
                if self.conns:
                    return self.conns[-1]
            time.sleep(0.005)
        raise AssertionError("no connection reached the target")

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return bytes(out)


def round_trip_s(port, payload=b"ping"):
    with connect(port) as s:
        start = time.monotonic()
        s.sendall(payload)
        recv_exactly(s, len(payload))
        return time.monotonic() - start


def is_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT_S).close()
        return False
    except ConnectionRefusedError:
        return True


def wait_until(pred, what):
    deadline = time.monotonic() + WAIT_S
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.01)


def closed_by_peer(sock):
    """True once the proxy closed the connection (EOF or reset)."""
    sock.settimeout(WAIT_S)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


class TcpProxyLibraryTest(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.proxy = tcp_proxy.TcpProxy(target=("127.0.0.1", self.target.port)).start()

    def tearDown(self):
        self.proxy.stop()
        self.target.close()

    def test_bytes_pass_unchanged_both_ways(self):
        rng = random.Random(1)
        payload = bytes(rng.getrandbits(8) for _ in range(1 << 20))
        with connect(self.proxy.port) as s:
            sender = threading.Thread(target=s.sendall, args=(payload,))
            sender.start()
            echoed = recv_exactly(s, len(payload))
            sender.join()
        self.assertEqual(echoed, payload)

    def test_order_preserved_under_delay(self):
        self.proxy.set_delay_ms(20)
        with connect(self.proxy.port) as s:
            expected = b""
            for i in range(200):
                piece = b"<%d>" % i
                s.sendall(piece)
                expected += piece
            self.assertEqual(recv_exactly(s, len(expected)), expected)

    def test_round_trip_is_at_least_both_delays(self):
        self.proxy.set_delay_ms(40, direction="up")
        self.proxy.set_delay_ms(30, direction="down")
        self.assertGreaterEqual(round_trip_s(self.proxy.port), 0.070)
        self.proxy.set_delay_ms(0)
        self.assertEqual((self.proxy.delay_ms("up"), self.proxy.delay_ms("down")), (0, 0))

    def test_each_direction_has_its_own_delay(self):
        self.proxy.set_delay_ms(80, direction="up")
        self.proxy.set_delay_ms(0, direction="down")
        self.target.stamp = True
        with connect(self.proxy.port) as s:
            conn = self.target.latest_conn()
            sent_at = time.monotonic()
            s.sendall(b"up")
            wait_until(lambda: self.target.arrivals, "bytes at the target")
            self.assertGreaterEqual(self.target.arrivals[0][0] - sent_at, 0.080)
            # Now the other way: only the down delay applies.
            self.proxy.set_delay_ms(0, direction="up")
            self.proxy.set_delay_ms(60, direction="down")
            sent_at = time.monotonic()
            conn.sendall(b"down")
            self.assertEqual(recv_exactly(s, 4), b"down")
            self.assertGreaterEqual(time.monotonic() - sent_at, 0.060)

    def test_cut_closes_connections_and_refuses_new_ones(self):
        s = connect(self.proxy.port)
        s.sendall(b"x")
        self.assertEqual(recv_exactly(s, 1), b"x")
        self.proxy.cut()
        self.assertTrue(self.proxy.is_cut)
        self.assertTrue(closed_by_peer(s))
        s.close()
        self.assertTrue(is_refused(self.proxy.port))
        self.proxy.heal()
        self.assertFalse(self.proxy.is_cut)
        self.assertLess(round_trip_s(self.proxy.port), WAIT_S)  # works again, same port

    def test_cut_in_hold_mode_accepts_but_never_forwards(self):
        self.proxy.cut(mode="hold")
        held = connect(self.proxy.port)  # accepted: no refusal
        held.sendall(b"lost")
        held.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            held.recv(1)
        self.proxy.heal()
        self.assertTrue(closed_by_peer(held))  # held ones are dropped on heal
        held.close()
        self.assertLess(round_trip_s(self.proxy.port), WAIT_S)

    def test_half_close_is_forwarded(self):
        with connect(self.proxy.port) as s:
            s.sendall(b"last words")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_exactly(s, 10), b"last words")
            self.assertEqual(s.recv(1), b"")  # the target's EOF came back through

    def test_bad_arguments_are_rejected(self):
        with self.assertRaises(ValueError):
            self.proxy.set_delay_ms(-1)
        with self.assertRaises(ValueError):
            self.proxy.set_delay_ms(tcp_proxy.DELAY_MS_MAX + 1)
        with self.assertRaises(ValueError):
            self.proxy.set_delay_ms(1, direction="sideways")
        with self.assertRaises(ValueError):
            self.proxy.cut(mode="maybe")


class TcpProxyCliTest(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        self.proc = subprocess.Popen(
            [sys.executable, PROXY_PY, "--listen", "127.0.0.1:0", "--target",
             "127.0.0.1:%d" % self.target.port, "--delay-ms", "25", "--control", "127.0.0.1:0"],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        self.assertEqual(line[0], "listening", line)
        self.port = tcp_proxy.parse_host_port(line[1])[1]
        self.control = socket.create_connection(tcp_proxy.parse_host_port(line[3]),
                                                timeout=WAIT_S)
        self.control_file = self.control.makefile("r")

    def tearDown(self):
        self.control_file.close()
        self.control.close()
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(WAIT_S), 0)
        self.proc.stdout.close()
        self.target.close()

    def command(self, text):
        self.control.sendall((text + "\n").encode())
        return self.control_file.readline().strip()

    def test_delay_from_the_command_line(self):
        self.assertGreaterEqual(round_trip_s(self.port), 0.050)
        self.assertEqual(self.command("delay up 50"), "ok delay up 50 down 25")
        self.assertGreaterEqual(round_trip_s(self.port), 0.075)

    def test_control_port_cut_and_heal(self):
        s = connect(self.port)
        s.sendall(b"y")
        self.assertEqual(recv_exactly(s, 1), b"y")
        self.assertEqual(self.command("cut"), "ok cut refuse")
        self.assertTrue(closed_by_peer(s))
        s.close()
        self.assertTrue(is_refused(self.port))
        self.assertTrue(self.command("status").startswith("ok cut refuse"))
        self.assertEqual(self.command("heal"), "ok healed")
        self.assertLess(round_trip_s(self.port), WAIT_S)
        self.assertTrue(self.command("bogus").startswith("error"))
        self.assertTrue(self.command("delay -5").startswith("error"))

    def test_signals_cut_and_heal(self):
        self.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: is_refused(self.port), "SIGUSR1 to cut")
        self.proc.send_signal(signal.SIGUSR2)
        wait_until(lambda: not is_refused(self.port), "SIGUSR2 to heal")
        self.assertLess(round_trip_s(self.port), WAIT_S)


if __name__ == "__main__":
    unittest.main(verbosity=2)
