"""Watch client helpers shared by the watch conformance and integration suites.

The python3-etcd3 stubs predate watch_id, fragment and WatchProgressRequest, so this module
compiles geoetcd's own proto/etcd/*.proto (wire-identical to etcd's) with protoc into a temp
dir, under a renamed package (gcw.*) so the two descriptor sets do not collide, and talks to
/etcdserverpb.Watch/Watch with those messages.

  pb, mvcc         the generated rpc_pb2 and kv_pb2 modules
  WatchStream      one bidi stream: send(request), collect(...), next(timeout), pause(),
                   resume(), close()
  create_req / cancel_req / progress_req / prefix_end
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time

import harness

SOURCE_DIR = os.environ.get(
    "GEOETCD_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

WAIT_TIMEOUT = 5.0   # seconds to wait for expected responses
QUIET = 0.35         # seconds of silence after them (catches extra responses)


# --------------------------------------------------------------------------------------------
# Watch protos compiled from the tree
# --------------------------------------------------------------------------------------------

def load_watch_protos():
    protoc = os.environ.get("PROTOC") or shutil.which("protoc")
    if not protoc:
        raise harness.HarnessError("protoc not found (set PROTOC)")
    out = harness.make_temp_dir("watch-protos-")
    names = ("mvccpb/kv.proto", "authpb/auth.proto", "etcdserverpb/rpc.proto")
    for rel in names:
        with open(os.path.join(SOURCE_DIR, "proto", "etcd", rel)) as f:
            text = f.read()
        text = re.sub(r"^package (\w+);", r"package gcw.\1;", text, flags=re.M)
        text = text.replace('import "etcd/', 'import "gcw/')
        dst = os.path.join(out, "gcw", rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(text)
    subprocess.check_call([protoc, "-I", out, "--python_out", out]
                          + ["gcw/" + n for n in names])
    sys.path.insert(0, out)
    from gcw.etcdserverpb import rpc_pb2  # noqa: E402
    from gcw.mvccpb import kv_pb2  # noqa: E402
    return rpc_pb2, kv_pb2


pb, mvcc = load_watch_protos()
NOPUT = pb.WatchCreateRequest.NOPUT
NODELETE = pb.WatchCreateRequest.NODELETE


def b(x):
    return x if isinstance(x, bytes) else x.encode("utf-8")


def prefix_end(key):
    key = bytearray(b(key))
    for i in range(len(key) - 1, -1, -1):
        if key[i] < 0xFF:
            key[i] += 1
            return bytes(key[:i + 1])
    return b"\x00"


def create_req(key, range_end=b"", **kw):
    return pb.WatchRequest(create_request=pb.WatchCreateRequest(
        key=b(key), range_end=b(range_end), **kw))


def cancel_req(watch_id):
    return pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=watch_id))


def progress_req():
    return pb.WatchRequest(progress_request=pb.WatchProgressRequest())


# --------------------------------------------------------------------------------------------
# One watch stream
# --------------------------------------------------------------------------------------------

class WatchStream:
    def __init__(self, server):
        self._requests = queue.Queue()
        self._responses = queue.Queue()
        self._closed = False
        call = server.channel().stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString)

        def requests():
            while True:
                r = self._requests.get()
                if r is None:
                    return
                yield r

        self._call = call(requests())

        self._reading = threading.Event()
        self._reading.set()

        def reader():
            try:
                while True:
                    self._reading.wait()
                    self._responses.put(next(self._call))
            except StopIteration:
                pass
            except Exception as exc:  # the stream ended; recorded if a step was waiting
                self._responses.put(exc)

        threading.Thread(target=reader, daemon=True).start()

    def pause(self):
        """Stop reading from the network (after the response being read, if any): the
        client looks stalled to the server, as a slow consumer does."""
        self._reading.clear()

    def resume(self):
        self._reading.set()

    def send(self, req):
        self._requests.put(req)

    def collect(self, responses=0, events=0, timeout=WAIT_TIMEOUT, quiet=QUIET):
        """Responses until at least `responses` of them and `events` events arrived, then
        whatever else comes within `quiet` seconds."""
        got = []
        n_events = 0
        deadline = time.monotonic() + timeout
        while len(got) < responses or n_events < events:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                r = self._responses.get(timeout=left)
            except queue.Empty:
                break
            got.append(r)
            if not isinstance(r, Exception):
                n_events += len(r.events)
        while True:
            try:
                got.append(self._responses.get(timeout=quiet))
            except queue.Empty:
                return got

    def next(self, timeout):
        """The next response (or the exception that ended the stream), None on timeout."""
        try:
            return self._responses.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        if not self._closed:
            self._closed = True
            self._requests.put(None)
            self._call.cancel()
