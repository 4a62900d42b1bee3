"""Shared helpers for the multi-process test suites (conformance and integration).

Runs with the SYSTEM python (/usr/bin/python3), which carries python3-etcd3 and grpcio:

  * Server: starts/stops a real etcd or the geoetcd binary on free ports with a fresh data
    dir, waits for readiness by polling a Range RPC, and always cleans up (atexit + signals).
  * Stubs: a gRPC channel with KV / Watch / Lease / Maintenance stubs.
  * normalize(message): protobuf -> dict (field names as in the .proto, default values
    included) with header.cluster_id / member_id / raft_term blanked out.
  * call(stub_method, request): ('ok', normalized) or ('error', code name, details).
  * compare(seq_name, etcd_result, geo_result): records a readable diff.
  * run_differential(scenarios, session, argv, ...): the differential suites' runner (each
    scenario on a fresh etcd + geoetcd pair, transcripts compared step by step).

Environment:
  GEOETCD_BIN        path to the geoetcd binary (required; tests fail loudly without it)
  GEOETCD_SOURCE_DIR path to the source tree (informational)
  ETCD_BIN           path to the reference etcd (default /usr/bin/etcd)
  ETCDCTL_BIN        path to etcdctl (default /usr/bin/etcdctl)
  HARNESS_VERBOSE=1  echo server command lines
"""

import atexit
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import grpc
    from google.protobuf import json_format
    from google.protobuf.descriptor import FieldDescriptor
    from etcd3.etcdrpc import rpc_pb2, kv_pb2, rpc_pb2_grpc  # noqa: F401 (re-exported)
except ImportError as exc:  # pragma: no cover - environment problem, fail loudly
    sys.stderr.write(
        "harness: cannot import grpc/etcd3 stubs (%s); run with /usr/bin/python3\n" % exc)
    raise

RPC_TIMEOUT = 5.0          # seconds, every RPC
READY_TIMEOUT = 30.0       # seconds to wait for a server to answer a Range
STOP_TIMEOUT = 5.0         # seconds between SIGTERM and SIGKILL
ETCD_BIN = os.environ.get("ETCD_BIN", "/usr/bin/etcd")
ETCDCTL_BIN = os.environ.get("ETCDCTL_BIN", "/usr/bin/etcdctl")
VERBOSE = os.environ.get("HARNESS_VERBOSE") == "1"

# Values blanked in every ResponseHeader (they legitimately differ between servers).
BLANKED_HEADER_FIELDS = ("cluster_id", "member_id", "raft_term")
BLANK = "<blanked>"


class HarnessError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------------

def geoetcd_bin():
    """The geoetcd binary from $GEOETCD_BIN. Raises (never skips) when it is unusable."""
    path = os.environ.get("GEOETCD_BIN")
    if not path:
        raise HarnessError("GEOETCD_BIN is not set: it must point at the geoetcd binary")
    if not os.path.isfile(path):
        raise HarnessError("GEOETCD_BIN=%s does not exist (build the server first)" % path)
    if not os.access(path, os.X_OK):
        raise HarnessError("GEOETCD_BIN=%s is not executable" % path)
    return path


def etcd_bin():
    if not (os.path.isfile(ETCD_BIN) and os.access(ETCD_BIN, os.X_OK)):
        raise HarnessError("reference etcd not found at %s (set ETCD_BIN)" % ETCD_BIN)
    return ETCD_BIN


def etcdctl_bin():
    if not (os.path.isfile(ETCDCTL_BIN) and os.access(ETCDCTL_BIN, os.X_OK)):
        raise HarnessError("etcdctl not found at %s (set ETCDCTL_BIN)" % ETCDCTL_BIN)
    return ETCDCTL_BIN


def free_port():
    """A currently free TCP port on 127.0.0.1 (bind port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """os.environ without ETCD_* / ETCDCTL_* (so nothing leaks into a server), plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ETCD_") and not k.startswith("ETCDCTL_")}
    if extra:
        env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# Cleanup: every process and temp dir we create is released at exit, even on failure.
# ---------------------------------------------------------------------------------------------

_live_servers = []
_temp_dirs = []
_cleanup_lock = threading.Lock()


def make_temp_dir(prefix="geoetcd-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    with _cleanup_lock:
        _temp_dirs.append(d)
    return d


def remove_temp_dir(d):
    shutil.rmtree(d, ignore_errors=True)
    with _cleanup_lock:
        if d in _temp_dirs:
            _temp_dirs.remove(d)


def _cleanup_all():
    with _cleanup_lock:
        servers = list(_live_servers)
    for srv in servers:
        try:
            srv.stop(graceful=False)
        except Exception:
            pass
    with _cleanup_lock:
        dirs = list(_temp_dirs)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    # Turn SIGTERM/SIGHUP (ctest timeout, Ctrl-C of a parent) into a normal exit so that
    # atexit runs and no server outlives the test.
    sys.stderr.write("harness: signal %d, cleaning up\n" % signum)
    _cleanup_all()
    os._exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):  # not in main thread / unsupported
        pass


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

class Server:
    """One etcd or geoetcd process with its own data dir and ports.

    kind:     'etcd' (reference) or 'geoetcd' (server under test)
    binary:   executable; default from ETCD_BIN / GEOETCD_BIN
    extra_args / env / cwd: appended flags, extra environment, working directory
    args:     full argument list override (then no standard flags are added)
    """

    def __init__(self, kind="geoetcd", name=None, binary=None, extra_args=None, env=None,
                 cwd=None, data_dir=None, args=None):
        if kind not in ("etcd", "geoetcd"):
            raise ValueError(kind)
        self.kind = kind
        self.name = name or ("e1" if kind == "etcd" else "g1")
        self.binary = binary or (etcd_bin() if kind == "etcd" else geoetcd_bin())
        self.extra_args = list(extra_args or [])
        self.env = env or {}
        self.cwd = cwd
        self.args_override = args
        self.base_dir = make_temp_dir("%s-%s-" % (kind, self.name))
        self.data_dir = data_dir or os.path.join(self.base_dir, "data")
        self.client_port = None
        self.peer_port = None
        self.proc = None
        self._log_files = None
        self.stdout_path = os.path.join(self.base_dir, "stdout.log")
        self.stderr_path = os.path.join(self.base_dir, "stderr.log")
        self._channel = None
        self._stubs = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def endpoint(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def client_url(self):
        return "http://127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def standard_args(self):
        args = [
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", "%s=%s" % (self.name, self.peer_url),
        ]
        if self.kind == "etcd":
            # Quiet reference server; --quota-backend-bytes and limits stay at their defaults.
            args += ["--logger", "zap", "--log-level", "error"]
        return args

    def command(self):
        if self.args_override is not None:
            return [self.binary] + list(self.args_override)
        return [self.binary] + self.standard_args() + self.extra_args

    # -- lifecycle ---------------------------------------------------------------------------
    def spawn(self, new_ports=True):
        """Start the process without waiting for readiness."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("%s already running" % self)
        if new_ports or self.client_port is None:
            self.client_port = free_port()
            self.peer_port = free_port()
            while self.peer_port == self.client_port:
                self.peer_port = free_port()
        cmd = self.command()
        if VERBOSE:
            sys.stderr.write("harness: starting %s\n" % " ".join(cmd))
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        self._log_files = (out, err)
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                     env=clean_env(self.env), cwd=self.cwd or self.base_dir,
                                     start_new_session=True)
        with _cleanup_lock:
            if self not in _live_servers:
                _live_servers.append(self)
        return self

    def start(self, timeout=READY_TIMEOUT, new_ports=True, attempts=3):
        """Start and wait until a Range RPC answers. Retries with new ports if the process
        dies right away (a port picked by free_port() may have been taken meanwhile)."""
        last = None
        for attempt in range(attempts):
            self.spawn(new_ports=new_ports or attempt > 0)
            try:
                self.wait_ready(timeout)
                return self
            except HarnessError as exc:
                last = exc
                exited = self.proc.poll() is not None
                self.stop(graceful=False)
                tail = self.stderr_tail()
                if not exited or "address already in use" not in tail.lower():
                    break
        raise last

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last_err = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError("%s exited with code %s before becoming ready; stderr:\n%s"
                                   % (self, self.proc.returncode, self.stderr_tail()))
            # Probe TCP first: a gRPC channel that fails to connect backs off for seconds.
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=1.0):
                    pass
            except OSError as exc:
                last_err = "connect: %s" % exc
                time.sleep(0.05)
                continue
            try:
                stub = self.stubs().kv
                stub.Range(rpc_pb2.RangeRequest(key=b"\x00"), timeout=1.0)
                return
            except grpc.RpcError as exc:
                last_err = "%s: %s" % (exc.code().name, exc.details())
                self._close_channel()  # fresh channel: no reconnect backoff
            time.sleep(0.05)
        raise HarnessError("%s not ready after %.0fs (last error %s); stderr:\n%s"
                           % (self, timeout, last_err, self.stderr_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _close_channel(self):
        if self._channel is not None:
            try:
                self._channel.close()
            except Exception:
                pass
        self._channel = None
        self._stubs = None

    def _close_logs(self):
        if self._log_files:
            for f in self._log_files:
                try:
                    f.close()
                except Exception:
                    pass
            self._log_files = None

    def stop(self, graceful=True):
        """SIGTERM (then SIGKILL after STOP_TIMEOUT); returns the exit code."""
        self._close_channel()
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(STOP_TIMEOUT)
            rc = self.proc.returncode
        self._close_logs()
        with _cleanup_lock:
            if self in _live_servers:
                _live_servers.remove(self)
        return rc

    def kill9(self):
        """kill -9 the process (no chance to flush anything) and reap it."""
        self._close_channel()
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
        self._close_logs()
        with _cleanup_lock:
            if self in _live_servers:
                _live_servers.remove(self)

    def destroy(self):
        """Stop and remove the data dir and logs."""
        self.stop(graceful=False)
        remove_temp_dir(self.base_dir)

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
            return data[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_text(self):
        return self.stderr_tail(n=10 ** 7)

    # -- gRPC --------------------------------------------------------------------------------
    def channel(self):
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.endpoint, options=[
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
                ("grpc.enable_retries", 0),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ])
        return self._channel

    def stubs(self):
        if self._stubs is None:
            self._stubs = Stubs(self.channel())
        return self._stubs

    def __repr__(self):
        return "<%s %s pid=%s port=%s>" % (self.kind, self.name,
                                           self.proc.pid if self.proc else None,
                                           self.client_port)


class Stubs:
    def __init__(self, channel):
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.watch = rpc_pb2_grpc.WatchStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)


def start_pair(etcd_args=None, geo_args=None, name=None):
    """Start a reference etcd and a geoetcd concurrently; returns (etcd, geo). `name`: the
    member name of both (so that member names compare equal); default e1 and g1."""
    etcd = Server("etcd", name=name, extra_args=etcd_args)
    geo = Server("geoetcd", name=name, extra_args=geo_args)
    errors = []

    def run(srv):
        try:
            srv.start()
        except Exception as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in (etcd, geo)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        etcd.destroy()
        geo.destroy()
        raise errors[0]
    return etcd, geo


# ---------------------------------------------------------------------------------------------
# Normalization and calls
# ---------------------------------------------------------------------------------------------

MAX_BYTES_SHOWN = 256


def render_bytes(b):
    """Readable, unambiguous rendering of a bytes field (long values are summarized)."""
    if len(b) > MAX_BYTES_SHOWN:
        return "<%d bytes sha256=%s>" % (len(b), hashlib.sha256(b).hexdigest()[:16])
    return repr(bytes(b))


def decode_b64_fields(obj):
    """Render base64 key/value fields (etcdctl -w json) readably."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("key", "value") and isinstance(v, str):
                try:
                    obj[k] = render_bytes(base64.b64decode(v, validate=True))
                except Exception:
                    pass
            else:
                decode_b64_fields(v)
    elif isinstance(obj, list):
        for v in obj:
            decode_b64_fields(v)
    return obj


def _decode_bytes(msg, d):
    """Replace MessageToDict's base64 strings by render_bytes() for every bytes field."""
    for field in msg.DESCRIPTOR.fields:
        name = field.name
        if name not in d:
            continue
        if field.type == FieldDescriptor.TYPE_BYTES:
            if field.label == FieldDescriptor.LABEL_REPEATED:
                d[name] = [render_bytes(base64.b64decode(v)) for v in d[name]]
            else:
                d[name] = render_bytes(base64.b64decode(d[name]))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                continue
            value = getattr(msg, name)
            if field.label == FieldDescriptor.LABEL_REPEATED:
                for sub_msg, sub_d in zip(value, d[name]):
                    _decode_bytes(sub_msg, sub_d)
            else:
                _decode_bytes(value, d[name])


def _blank_headers(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "header" and isinstance(v, dict):
                for f in BLANKED_HEADER_FIELDS:
                    if f in v:
                        v[f] = BLANK
            _blank_headers(v)
    elif isinstance(obj, list):
        for v in obj:
            _blank_headers(v)


def to_dict(message):
    kwargs = dict(preserving_proto_field_name=True)
    try:
        d = json_format.MessageToDict(message, including_default_value_fields=True, **kwargs)
    except TypeError:  # protobuf >= 5 renamed the flag
        d = json_format.MessageToDict(message, always_print_fields_with_no_presence=True,
                                      **kwargs)
    _decode_bytes(message, d)
    return d


def normalize(message):
    """Protobuf response -> dict with all fields (defaults included), header.cluster_id,
    member_id and raft_term blanked (in nested txn responses too), bytes shown readably."""
    d = to_dict(message)
    _blank_headers(d)
    return d


def blank_json_headers(obj):
    """Same blanking for parsed etcdctl -w json output."""
    _blank_headers(obj)
    return obj


def call_raw(stub_method, request, timeout=RPC_TIMEOUT, metadata=None):
    """('ok', response) or ('error', code name, details)."""
    try:
        resp = stub_method(request, timeout=timeout, metadata=metadata)
        return ("ok", resp)
    except grpc.RpcError as exc:
        return ("error", exc.code().name, exc.details() or "")


def call(stub_method, request, timeout=RPC_TIMEOUT, metadata=None):
    """('ok', normalize(response)) or ('error', grpc code name, details string)."""
    res = call_raw(stub_method, request, timeout=timeout, metadata=metadata)
    if res[0] == "ok":
        return ("ok", normalize(res[1]))
    return res


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------

DIFFS = []          # list of (seq_name, text)
_COMPARED = [0]


def _fmt(v):
    s = repr(v)
    return s if len(s) <= 400 else s[:400] + "...(%d chars)" % len(s)


def diff_values(a, b, path="", out=None):
    """List of 'path: etcd=... geoetcd=...' lines for every differing leaf."""
    if out is None:
        out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            p = "%s.%s" % (path, k) if path else str(k)
            if k not in a:
                out.append("%s: etcd=<absent> geoetcd=%s" % (p, _fmt(b[k])))
            elif k not in b:
                out.append("%s: etcd=%s geoetcd=<absent>" % (p, _fmt(a[k])))
            else:
                diff_values(a[k], b[k], p, out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append("%s: length etcd=%d geoetcd=%d" % (path or "<root>", len(a), len(b)))
        for i in range(min(len(a), len(b))):
            diff_values(a[i], b[i], "%s[%d]" % (path, i), out)
        for i in range(len(b), len(a)):
            out.append("%s[%d]: etcd=%s geoetcd=<absent>" % (path, i, _fmt(a[i])))
        for i in range(len(a), len(b)):
            out.append("%s[%d]: etcd=<absent> geoetcd=%s" % (path, i, _fmt(b[i])))
    elif a != b or type(a) != type(b):
        out.append("%s: etcd=%s geoetcd=%s" % (path or "<root>", _fmt(a), _fmt(b)))
    return out


def describe_result(res):
    if res[0] == "error":
        return "error %s %r" % (res[1], res[2])
    return "ok %s" % _fmt(res[1])


def compare(seq_name, etcd_result, geo_result):
    """Record a readable diff when the two results differ. Returns True when equal.

    Results are call() tuples: ('ok', dict) or ('error', code, details); any other values
    (dicts, lists, strings) are compared structurally too."""
    _COMPARED[0] += 1
    if etcd_result == geo_result:
        return True
    lines = []
    if (isinstance(etcd_result, tuple) and isinstance(geo_result, tuple)
            and etcd_result and geo_result
            and etcd_result[0] in ("ok", "error") and geo_result[0] in ("ok", "error")):
        if etcd_result[0] == "ok" and geo_result[0] == "ok":
            lines = diff_values(etcd_result[1], geo_result[1])
        else:
            lines = ["etcd:    " + describe_result(etcd_result),
                     "geoetcd: " + describe_result(geo_result)]
    else:
        lines = diff_values(etcd_result, geo_result)
    if not lines:
        lines = ["etcd=%s geoetcd=%s" % (_fmt(etcd_result), _fmt(geo_result))]
    DIFFS.append((seq_name, "\n".join("    " + l for l in lines)))
    return False


def report_diffs(stream=sys.stdout):
    for name, text in DIFFS:
        stream.write("DIFF %s\n%s\n" % (name, text))
    stream.flush()


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def run_tests(tests, failure_cls, announce=False):
    """The integration suites' runner: runs each test function, prints `ok`/`FAIL` per test
    and the closing `N passed, M failed` line ctest users read. `failure_cls` is the suite's
    assertion exception (its message is printed without a traceback). Returns the exit code;
    a missing GEOETCD_BIN fails loudly instead of skipping."""
    try:
        geoetcd_bin()
    except HarnessError as exc:
        print("FATAL: %s" % exc)
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for t in tests:
        if announce:
            print("RUN  %s" % t.__name__)
            sys.stdout.flush()
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("ok   %s (%.1fs)" % (t.__name__, time.monotonic() - t0))
        except failure_cls as exc:
            failed += 1
            print("FAIL %s: %s" % (t.__name__, exc))
        except Exception:
            failed += 1
            print("FAIL %s: unexpected exception\n%s" % (t.__name__, traceback.format_exc()))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


# ---------------------------------------------------------------------------------------------
# The differential suites' runner
# ---------------------------------------------------------------------------------------------

# Stands in for the step one transcript lacks when the other has more.
MISSING_STEP = ("<missing>", ("missing",))
MORE_DIFFS = "  ... %(more)d more"


def record_traceback(session, tb):
    """on_raise default: a step whose result is the scenario's whole traceback."""
    session.steps.append(("scenario raised", ("exception", tb)))


def record_exception_line(session, tb):
    """on_raise alternative: a step with only the exception's own line."""
    session.steps.append(("<scenario raised>", ("exception", tb.strip().splitlines()[-1])))


def dump_both(name, number, etcd_step, geo_step):
    """dump_step default (--dump): each step's label and both servers' results."""
    print("  %2d %s\n       etcd    -> %s\n       geoetcd -> %s"
          % (number, etcd_step[0], _fmt(etcd_step[1]), _fmt(geo_step[1])))


def scenario_registry(scenarios):
    """A differential suite's @scenario decorator: registers function sc_<name> in
    `scenarios` as (name, fn), or with @scenario(args=[...]) as (name, fn, server_args)."""
    def scenario(fn=None, args=None):
        def register(f):
            name = f.__name__[3:] if f.__name__.startswith("sc_") else f.__name__
            scenarios.append((name, f) if args is None else (name, f, args))
            return f
        return register(fn) if fn is not None else register
    return scenario


class Differential:
    """How one suite runs its scenarios; see run_differential for the fields."""

    def __init__(self, session, known_differences=None, server_name=None, timeout=120,
                 needs_etcdctl=False, on_raise=record_traceback, after=None,
                 dump_step=dump_both, label_both=False, max_diffs_shown=12,
                 more_diffs=MORE_DIFFS, summary=None, report=None):
        self.session = session
        self.known = known_differences or {}
        self.server_name = server_name
        self.timeout = timeout
        self.needs_etcdctl = needs_etcdctl
        self.on_raise = on_raise
        self.after = after
        self.dump_step = dump_step
        self.label_both = label_both
        self.max_diffs_shown = max_diffs_shown
        self.more_diffs = more_diffs
        self.summary = summary
        self.report = report
        self.seen = set()  # known_differences keys reached

    def known_key(self, name, number, label):
        """The known_differences key of a step: (scenario, label), label, or (scenario,
        step number), whichever the suite pinned; None when the step is not pinned."""
        for key in ((name, label), label, (name, number)):
            if key in self.known:
                return key
        return None

    def run_on(self, server, fn, out):
        s = self.session(server)
        try:
            fn(s)
        except Exception:
            if self.on_raise is None:
                raise  # the thread dies: "scenario did not finish"
            self.on_raise(s, traceback.format_exc())
        finally:
            close = getattr(s, "close", None)
            if close is not None:
                close()
        if self.after is not None:
            self.after(s)
        out[server.kind] = s

    def run_scenario(self, name, fn, server_args, verbose, dump):
        """The scenario on a fresh pair; returns the new DIFFS entries (or messages)."""
        t0 = time.monotonic()
        try:
            etcd, geo = start_pair(etcd_args=server_args, geo_args=server_args,
                                   name=self.server_name)
        except Exception as exc:
            return ["could not start servers: %s" % exc]
        try:
            out = {}
            threads = [threading.Thread(target=self.run_on, args=(srv, fn, out))
                       for srv in (etcd, geo)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(self.timeout)
            if len(out) != 2:
                return ["scenario did not finish on %s"
                        % sorted({"etcd", "geoetcd"} - set(out))]
            e_steps, g_steps = out["etcd"].steps, out["geoetcd"].steps
            before = len(DIFFS)
            for i in range(max(len(e_steps), len(g_steps))):
                e = e_steps[i] if i < len(e_steps) else MISSING_STEP
                g = g_steps[i] if i < len(g_steps) else MISSING_STEP
                label = e[0]
                if self.label_both and e[0] != g[0]:
                    label = "%s  |geoetcd step: %s" % (e[0], g[0])
                if dump and self.dump_step is not None:
                    self.dump_step(name, i + 1, e, g)
                key = self.known_key(name, i + 1, e[0])
                if key is not None:
                    self.seen.add(key)
                    if verbose:
                        print("    known difference %r: etcd %s" % (label, _fmt(e[1])))
                    compare("%s step %d (known difference): %s" % (name, i + 1, label),
                            self.known[key][0], g[1])
                    continue
                compare("%s step %d: %s" % (name, i + 1, label), e[1], g[1])
            # A scenario that raises has stopped testing, even if it raised the same way on
            # both servers: that is a broken scenario, never a pass.
            for kind, steps in (("etcd", e_steps), ("geoetcd", g_steps)):
                raised = [st for st in steps
                          if isinstance(st[1], tuple) and st[1] and st[1][0] == "exception"]
                if raised:
                    DIFFS.append(("%s: the scenario raised on %s" % (name, kind),
                                  "    %s" % str(raised[-1][1][1])[-2000:]))
            if not geo.alive():
                DIFFS.append(("%s: geoetcd exited (code %s)" % (name, geo.proc.returncode),
                              "    stderr tail:\n" + geo.stderr_tail(2000)))
            if verbose:
                print("  %-40s %3d steps %.2fs" % (name, len(e_steps), time.monotonic() - t0))
            return DIFFS[before:]
        finally:
            etcd.destroy()
            geo.destroy()

    def main(self, scenarios, argv):
        verbose = "-v" in argv
        dump = "--dump" in argv
        if "--list" in argv:
            for sc in scenarios:
                print(sc[0])
            return 0
        filters = [argv[i + 1] for i, a in enumerate(argv) if a == "-k" and i + 1 < len(argv)]
        try:
            geoetcd_bin()
            etcd_bin()
            if self.needs_etcdctl:
                etcdctl_bin()
        except HarnessError as exc:
            print("FATAL: %s" % exc)
            print("0 passed, 1 failed")
            return 1
        selected = [sc for sc in scenarios if not filters or any(f in sc[0] for f in filters)]
        passed = failed = 0
        t0 = time.monotonic()
        for sc in selected:
            name, fn = sc[0], sc[1]
            diffs = self.run_scenario(name, fn, sc[2] if len(sc) > 2 else None, verbose, dump)
            if diffs:
                failed += 1
                print("FAIL %s" % name)
                shown = diffs if self.max_diffs_shown is None else diffs[:self.max_diffs_shown]
                for d in shown:
                    print("  DIFF %s\n%s" % d if isinstance(d, tuple) else "  %s" % d)
                if len(diffs) > len(shown):
                    print(self.more_diffs % {"more": len(diffs) - len(shown), "name": name})
            else:
                passed += 1
                print("ok   %s" % name)
            sys.stdout.flush()
        for key, (_, why) in sorted(self.known.items(), key=str):
            if key in self.seen and why is not None:
                print("KNOWN DIFF %s: %s" % (key, why))
        if self.report is not None:
            self.report()
        if self.summary is not None:
            print("%s conformance: %d scenarios in %.1fs, %d comparisons"
                  % (self.summary, len(selected), time.monotonic() - t0, _COMPARED[0]))
        unseen = set(self.known) - self.seen
        if unseen and not filters:
            failed += 1
            print("FAIL known differences never reached: %s" % sorted(unseen, key=str))
        print("%d passed, %d failed" % (passed, failed))
        return 0 if failed == 0 and passed > 0 else 1


def run_differential(scenarios, session, argv, known_differences=None, **hooks):
    """The differential suites' main(): runs each scenario on a FRESH reference etcd and
    geoetcd in parallel and compares their transcripts step by step. Returns the exit code
    (0 only when every selected scenario matched and at least one ran).

    scenarios: [(name, fn)] or [(name, fn, server_args)]; fn(session) runs the scenario,
        server_args are extra flags for both servers.
    session: session(server) -> an object with .steps, a list of (label, result) compared
        in order; its close(), if any, runs when the scenario ends.
    argv: -v (per-scenario timing), --dump (each step, through dump_step), --list (the
        names), -k substring (select scenarios; repeatable).
    known_differences: {key: (geoetcd's exact answer, why or None)} where key is
        (scenario, step label), step label, or (scenario, step number). geoetcd must give
        exactly that answer (etcd's is not compared); a `why` is printed as a KNOWN DIFF line
        when reached, and in a full run every key must be reached.

    Hooks (the genuine differences between suites), all optional:
      server_name      member name of both servers (default e1 / g1)
      timeout          seconds to wait for a scenario on each server (120)
      needs_etcdctl    fail at once without etcdctl
      on_raise(s, tb)  records a scenario's exception as a step (record_traceback);
                       None lets it end the thread, and the scenario "did not finish"
      after(s)         runs on each session after the scenario and close()
      dump_step(name, number, etcd_step, geo_step)   --dump output (dump_both)
      label_both       a diff's label names geoetcd's step too when the labels differ
      max_diffs_shown  diffs printed per failed scenario (12; None: all); the rest are
                       counted in more_diffs % {"more": n, "name": scenario}
      summary          prints "<summary> conformance: N scenarios in Xs, M comparisons"
      report()         prints more lines before the closing "N passed, M failed"
    """
    return Differential(session, known_differences, **hooks).main(scenarios, argv)
