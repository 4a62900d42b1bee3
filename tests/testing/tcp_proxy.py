#!/usr/bin/python3
"""A TCP delay-and-partition proxy for multi-region integration tests (issue 10, item 8).

One proxy stands for one directed link: it listens on one port and forwards every
connection to one target. It can

  * delay each direction on its own: every chunk is delivered `delay` ms after the proxy
    read it, in order (a one-way WAN latency, not a bandwidth limit);
  * cut the link: existing connections are closed and new ones are refused (mode "refuse",
    the default: the listening socket is closed, so a dialer gets ECONNREFUSED at once) or
    held (mode "hold": accepted but never forwarded, the way a black-holed route looks to a
    dialer, which then waits for its own timeouts); held connections are closed on heal;
  * heal it again.

As a library (stdlib only), the proxy runs its own asyncio loop on a background thread:

    proxy = TcpProxy(target=("127.0.0.1", 2380), delay_ms=25)
    proxy.start()                  # listens on proxy.port (ephemeral unless listen= says)
    proxy.set_delay_ms(50, direction="up")
    proxy.cut(); proxy.heal()
    proxy.stop()

As a command:

    tcp_proxy.py --listen 127.0.0.1:P --target 127.0.0.1:Q --delay-ms 25 \
        [--delay-up-ms N] [--delay-down-ms N] [--cut-mode refuse|hold] [--control HOST:PORT]

It prints one line "listening <host>:<port> control <host>:<port>" once ready, then runs
until SIGTERM/SIGINT. Control: SIGUSR1 cuts, SIGUSR2 heals; the optional control port takes
one command per line and answers one line ("ok ..." or "error ..."):
    cut [refuse|hold] | heal | delay MS | delay up MS | delay down MS | status

"up" is client -> target, "down" is target -> client.
"""

import argparse
import asyncio
import signal
import sys
import threading
import time

# Largest chunk read at once, and chunks queued per direction before the proxy stops reading
# that side (TCP backpressure, not loss): at most CHUNK_BYTES_MAX * QUEUE_CHUNKS_MAX bytes
# buffered per direction per connection.
CHUNK_BYTES_MAX = 64 * 1024
QUEUE_CHUNKS_MAX = 256
# Largest delay accepted, so that a typo cannot park a link for hours.
DELAY_MS_MAX = 60_000
# Connections open at once through one proxy.
CONNECTIONS_MAX = 1024
CONTROL_LINE_BYTES_MAX = 1024
CUT_MODES = ("refuse", "hold")
DIRECTIONS = ("up", "down")

_EOF = object()


def parse_host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def _check_delay(ms):
    ms = float(ms)
    if ms < 0 or ms > DELAY_MS_MAX:
        raise ValueError("delay must be within 0..%d ms, got %r" % (DELAY_MS_MAX, ms))
    return ms


class TcpProxy:
    """A delaying, cuttable TCP forwarder. Every public method may be called from any thread
    other than the proxy's own (they wait for the loop to apply the change)."""

    def __init__(self, target, listen=("127.0.0.1", 0), delay_ms=0.0, delay_up_ms=None,
                 delay_down_ms=None, cut_mode="refuse"):
        if cut_mode not in CUT_MODES:
            raise ValueError("cut_mode must be one of %s" % (CUT_MODES,))
        self.target = tuple(target)
        self.listen = tuple(listen)
        self._delay_ms = {
            "up": _check_delay(delay_ms if delay_up_ms is None else delay_up_ms),
            "down": _check_delay(delay_ms if delay_down_ms is None else delay_down_ms),
        }
        self.cut_mode = cut_mode
        self.port = None  # the bound port, after start()
        self._loop = None
        self._thread = None
        self._server = None
        self._cut = None  # None, "refuse" or "hold"
        self._conns = set()  # _Connection
        self._held = set()  # writers of connections accepted while cut in "hold" mode
        self.stats = {"accepted": 0, "refused_over_max": 0, "bytes_up": 0, "bytes_down": 0}

    # ---- thread-facing API ----

    def start(self):
        """Starts the loop thread and listens. Returns self once connections are accepted."""
        if self._thread is not None:
            raise RuntimeError("already started")
        ready = threading.Event()
        failure = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._listen())
            except Exception as e:  # reported to the caller of start()
                failure.append(e)
                ready.set()
                self._loop.close()
                return
            ready.set()
            try:
                self._loop.run_forever()
            finally:
                self._loop.run_until_complete(self._close_all())
                pending = asyncio.all_tasks(self._loop)
                for task in pending:
                    task.cancel()
                self._loop.run_until_complete(
                    asyncio.gather(*pending, return_exceptions=True))
                self._loop.close()

        self._thread = threading.Thread(target=run, name="tcp-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self):
        """Closes the listener and every connection, and joins the loop thread."""
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def set_delay_ms(self, ms, direction="both"):
        """One-way delay for "up" (client -> target), "down", or "both". Applies to chunks
        not yet delivered, as well as new ones."""
        ms = _check_delay(ms)
        if direction not in DIRECTIONS + ("both",):
            raise ValueError("direction must be up, down or both")
        self._call(self._set_delay, ms, direction)

    def delay_ms(self, direction):
        return self._delay_ms[direction]

    def cut(self, mode=None):
        """Closes existing connections; refuses or holds new ones until heal()."""
        mode = mode or self.cut_mode
        if mode not in CUT_MODES:
            raise ValueError("mode must be one of %s" % (CUT_MODES,))
        self._call_async(self._do_cut(mode))

    def heal(self):
        """Accepts and forwards again (re-listening on the same port after a "refuse" cut)."""
        self._call_async(self._do_heal())

    @property
    def is_cut(self):
        return self._cut is not None

    def connection_count(self):
        return self._call(lambda: len(self._conns))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- loop side ----

    def _call(self, fn, *args):
        if self._loop is None or self._thread is None:
            return fn(*args)
        done = threading.Event()
        box = []

        def run():
            try:
                box.append((True, fn(*args)))
            except Exception as e:
                box.append((False, e))
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def _call_async(self, coro):
        if self._loop is None or self._thread is None:
            raise RuntimeError("proxy not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _set_delay(self, ms, direction):
        for d in DIRECTIONS:
            if direction in (d, "both"):
                self._delay_ms[d] = ms

    async def _listen(self):
        self._server = await asyncio.start_server(self._accept, self.listen[0],
                                                  self.port or self.listen[1],
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _do_cut(self, mode):
        self._cut = mode
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.close()

    async def _do_heal(self):
        for writer in list(self._held):
            writer.transport.abort()
        self._held.clear()
        self._cut = None
        if self._server is None:
            await self._listen()

    async def _close_all(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._held):
            writer.transport.abort()
        for conn in list(self._conns):
            conn.close()
        # Let the connections' tasks see their cancellation.
        await asyncio.sleep(0)

    async def _accept(self, reader, writer):
        if self._cut == "hold":
            self._held.add(writer)  # never read, never forwarded; closed on heal
            return
        if self._cut is not None:
            writer.transport.abort()
            return
        if len(self._conns) >= CONNECTIONS_MAX:
            self.stats["refused_over_max"] += 1
            writer.transport.abort()
            return
        self.stats["accepted"] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()  # the target is down: so is the link
            return
        if self._cut is not None:  # cut while we were connecting
            writer.transport.abort()
            up_writer.transport.abort()
            return
        conn = _Connection(self, reader, writer, up_reader, up_writer)
        self._conns.add(conn)
        conn.start()


class _Connection:
    """One client connection and its connection to the target: a delayed pipe each way."""

    def __init__(self, proxy, client_reader, client_writer, target_reader, target_writer):
        self.proxy = proxy
        self.writers = (client_writer, target_writer)
        self.pipes = [
            _Pipe(self, "up", client_reader, target_writer),
            _Pipe(self, "down", target_reader, client_writer),
        ]
        self.closed = False

    def start(self):
        for pipe in self.pipes:
            pipe.start()

    def pipe_done(self):
        if all(p.done for p in self.pipes):
            self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for pipe in self.pipes:
            pipe.cancel()
        for w in self.writers:
            w.transport.abort()
        self.proxy._conns.discard(self)


class _Pipe:
    """Reads one side, delivers to the other: each chunk at read time + the direction's
    delay, in order. EOF is forwarded as a half-close after the data before it."""

    def __init__(self, conn, direction, reader, writer):
        self.conn = conn
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.queue = asyncio.Queue(maxsize=QUEUE_CHUNKS_MAX)
        self.tasks = []
        self.done = False

    def start(self):
        self.tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._write())]

    def cancel(self):
        for t in self.tasks:
            t.cancel()

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(CHUNK_BYTES_MAX)
                now = time.monotonic()
                if not data:
                    await self.queue.put((now, _EOF))
                    return
                await self.queue.put((now, data))
        except (ConnectionError, OSError):
            self.conn.close()
        except asyncio.CancelledError:
            pass

    async def _write(self):
        proxy = self.conn.proxy
        try:
            while True:
                read_at, data = await self.queue.get()
                # The delay in force when the chunk leaves: set_delay_ms() applies at once.
                wait = read_at + proxy._delay_ms[self.direction] / 1000.0 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is _EOF:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    self.done = True
                    self.conn.pipe_done()
                    return
                self.writer.write(data)
                proxy.stats["bytes_" + self.direction] += len(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            self.conn.close()
        except asyncio.CancelledError:
            pass


# ---- command line ----

class _Control:
    """Line commands on a TCP control port, for a proxy run as a separate process."""

    def __init__(self, proxy):
        self.proxy = proxy

    async def handle(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                if len(line) > CONTROL_LINE_BYTES_MAX:
                    writer.write(b"error line too long\n")
                    return
                reply = await self.command(line.decode("utf-8", "replace").split())
                writer.write((reply + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def command(self, words):
        p = self.proxy
        try:
            if not words:
                return "error empty command"
            if words[0] == "cut" and len(words) <= 2:
                mode = words[1] if len(words) == 2 else p.cut_mode
                if mode not in CUT_MODES:
                    return "error cut mode must be refuse or hold"
                await p._do_cut(mode)
                return "ok cut " + mode
            if words[0] == "heal" and len(words) == 1:
                await p._do_heal()
                return "ok healed"
            if words[0] == "delay" and len(words) in (2, 3):
                direction = words[1] if len(words) == 3 else "both"
                if direction not in DIRECTIONS + ("both",):
                    return "error direction must be up, down or both"
                p._set_delay(_check_delay(words[-1]), direction)
                return "ok delay up %g down %g" % (p._delay_ms["up"], p._delay_ms["down"])
            if words[0] == "status" and len(words) == 1:
                return "ok %s delay up %g down %g connections %d bytes up %d down %d" % (
                    "cut " + p._cut if p._cut else "healed", p._delay_ms["up"],
                    p._delay_ms["down"], len(p._conns), p.stats["bytes_up"],
                    p.stats["bytes_down"])
            return "error unknown command %r" % " ".join(words)
        except ValueError as e:
            return "error %s" % e


async def _serve_cli(args):
    listen = parse_host_port(args.listen)
    proxy = TcpProxy(target=parse_host_port(args.target), listen=listen, delay_ms=args.delay_ms,
                     delay_up_ms=args.delay_up_ms, delay_down_ms=args.delay_down_ms,
                     cut_mode=args.cut_mode)
    # The CLI runs the proxy on this thread's loop rather than start()'s background thread.
    proxy._loop = asyncio.get_running_loop()
    await proxy._listen()
    control_text = "-"
    control_server = None
    if args.control:
        host, port = parse_host_port(args.control)
        control_server = await asyncio.start_server(_Control(proxy).handle, host, port,
                                                    reuse_address=True)
        control_text = "%s:%d" % (host, control_server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1,
                            lambda: asyncio.ensure_future(proxy._do_cut(proxy.cut_mode)))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy._do_heal()))
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("listening %s:%d control %s" % (listen[0], proxy.port, control_text), flush=True)
    await stop.wait()
    if control_server is not None:
        control_server.close()
    await proxy._close_all()


def main(argv=None):
    ap = argparse.ArgumentParser(description="TCP delay-and-partition proxy for tests.")
    ap.add_argument("--listen", required=True, help="HOST:PORT to accept on (port 0: any)")
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay, both ways")
    ap.add_argument("--delay-up-ms", type=float, default=None,
                    help="client->target delay (overrides --delay-ms)")
    ap.add_argument("--delay-down-ms", type=float, default=None,
                    help="target->client delay (overrides --delay-ms)")
    ap.add_argument("--cut-mode", choices=CUT_MODES, default="refuse",
                    help="what a cut does to new connections (SIGUSR1 / 'cut')")
    ap.add_argument("--control", default=None, help="HOST:PORT for line commands")
    args = ap.parse_args(argv)
    try:
        asyncio.run(_serve_cli(args))
    except (ValueError, OSError) as e:
        print("tcp_proxy: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
