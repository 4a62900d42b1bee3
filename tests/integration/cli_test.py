#!/usr/bin/python3
"""The geoetcd command line: etcd-compatible flags, env vars and config file.

  * --help exits 0 and mentions --listen-client-urls, --data-dir, --max-request-bytes
  * --version exits 0 and prints something
  * etcd flags geoetcd ignores (--snapshot-count, --heartbeat-interval) are accepted: the
    server starts and serves, and stderr carries a warning line naming the flag
  * ETCD_* environment variables alone start a working server
  * --config-file with etcd YAML keys starts a working server
  * an unknown flag exits non-zero with a message naming it
  * the default data dir is <name>.geoetcd in the working directory

Run:  GEOETCD_BIN=build/geoetcd /usr/bin/python3 tests/integration/cli_test.py
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))

import harness  # noqa: E402
from harness import rpc_pb2  # noqa: E402

CMD_TIMEOUT = 15


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run_bin(args, env=None, cwd=None, timeout=CMD_TIMEOUT):
    cwd = cwd or harness.make_temp_dir("geoetcd-cli-cwd-")
    try:
        p = subprocess.run([harness.geoetcd_bin()] + args, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           env=harness.clean_env(env), cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("geoetcd %s did not exit within %ds" % (" ".join(args), timeout))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def serves(srv):
    """Put + Range round trip against a started server."""
    kv = srv.stubs().kv
    put = kv.Put(rpc_pb2.PutRequest(key=b"cli-probe", value=b"ok"), timeout=harness.RPC_TIMEOUT)
    got = kv.Range(rpc_pb2.RangeRequest(key=b"cli-probe"), timeout=harness.RPC_TIMEOUT)
    check(len(got.kvs) == 1 and got.kvs[0].value == b"ok" and
          got.kvs[0].mod_revision == put.header.revision,
          "Put/Range round trip failed: %s" % got)


def custom_server(make_args, env=None, cwd=None, name="g1"):
    """A Server whose command line/env is built from its (already chosen) ports."""
    srv = harness.Server("geoetcd", name=name, cwd=cwd)
    srv.client_port = harness.free_port()
    srv.peer_port = harness.free_port()
    srv.args_override = make_args(srv)
    srv.env = env(srv) if callable(env) else (env or {})
    return srv


def urls(srv):
    return {
        "client": srv.client_url,
        "peer": srv.peer_url,
        "cluster": "%s=%s" % (srv.name, srv.peer_url),
    }


def dir_nonempty(path):
    return os.path.isdir(path) and len(os.listdir(path)) > 0


# ---------------------------------------------------------------------------------------------

def test_help():
    rc, out, err = run_bin(["--help"])
    text = out + err
    check(rc == 0, "--help exited %d" % rc)
    for flag in ("--listen-client-urls", "--data-dir", "--max-request-bytes"):
        check(flag in text, "--help output does not mention %s" % flag)


def test_version():
    rc, out, err = run_bin(["--version"])
    check(rc == 0, "--version exited %d (stderr %r)" % (rc, err[-300:]))
    check((out + err).strip() != "", "--version printed nothing")
    print("  version: %s" % (out + err).strip().splitlines()[0][:120])


def test_ignored_etcd_flags_warn():
    srv = harness.Server("geoetcd", extra_args=["--snapshot-count", "10000",
                                                "--heartbeat-interval", "100"])
    try:
        srv.start()
        serves(srv)
        err = srv.stderr_text()
        lines = [l for l in err.splitlines()
                 if "snapshot-count" in l or "heartbeat-interval" in l]
        check(lines, "no stderr line mentions the ignored flags; stderr: %r" % err[-800:])
        print("  warning: %s" % lines[0][:200])
    finally:
        srv.destroy()


def test_env_vars():
    base = harness.make_temp_dir("geoetcd-cli-env-")
    data_dir = os.path.join(base, "from-env")

    def env(srv):
        u = urls(srv)
        return {
            "ETCD_NAME": srv.name,
            "ETCD_DATA_DIR": data_dir,
            "ETCD_LISTEN_CLIENT_URLS": u["client"],
            "ETCD_ADVERTISE_CLIENT_URLS": u["client"],
            "ETCD_LISTEN_PEER_URLS": u["peer"],
            "ETCD_INITIAL_ADVERTISE_PEER_URLS": u["peer"],
            "ETCD_INITIAL_CLUSTER": u["cluster"],
        }

    srv = custom_server(lambda s: [], env=env, name="genv")
    try:
        srv.start(new_ports=False, attempts=1)
        serves(srv)
        check(dir_nonempty(data_dir), "ETCD_DATA_DIR %s was not used" % data_dir)
    finally:
        srv.destroy()
        harness.remove_temp_dir(base)


def test_config_file():
    base = harness.make_temp_dir("geoetcd-cli-cfg-")
    data_dir = os.path.join(base, "from-config")
    cfg_path = os.path.join(base, "etcd.conf.yml")

    def make_args(srv):
        u = urls(srv)
        with open(cfg_path, "w") as f:
            f.write("# etcd configuration file\n"
                    "name: '%s'\n"
                    "data-dir: %s\n"
                    "listen-client-urls: %s\n"
                    "advertise-client-urls: %s\n"
                    "listen-peer-urls: %s\n"
                    "initial-advertise-peer-urls: %s\n"
                    "initial-cluster: %s\n"
                    "initial-cluster-state: 'new'\n"
                    "initial-cluster-token: 'etcd-cluster'\n"
                    "snapshot-count: 10000\n"
                    "max-request-bytes: 1572864\n"
                    % (srv.name, data_dir, u["client"], u["client"], u["peer"], u["peer"],
                       u["cluster"]))
        return ["--config-file", cfg_path]

    srv = custom_server(make_args, name="gcfg")
    try:
        srv.start(new_ports=False, attempts=1)
        serves(srv)
        check(dir_nonempty(data_dir), "config data-dir %s was not used" % data_dir)
    finally:
        srv.destroy()
        harness.remove_temp_dir(base)


def test_unknown_flag():
    rc, out, err = run_bin(["--definitely-not-a-flag", "1"])
    check(rc != 0, "unknown flag accepted (exit 0)")
    check("definitely-not-a-flag" in err,
          "stderr does not name the unknown flag: %r" % err[-500:])
    print("  exit %d: %s" % (rc, err.strip().splitlines()[0][:160] if err.strip() else ""))


def test_default_data_dir():
    cwd = harness.make_temp_dir("geoetcd-cli-defdir-")

    def make_args(srv):
        u = urls(srv)
        return ["--name", srv.name,
                "--listen-client-urls", u["client"], "--advertise-client-urls", u["client"],
                "--listen-peer-urls", u["peer"], "--initial-advertise-peer-urls", u["peer"],
                "--initial-cluster", u["cluster"]]

    srv = custom_server(make_args, cwd=cwd, name="gdef")
    try:
        srv.start(new_ports=False, attempts=1)
        serves(srv)
        expected = os.path.join(cwd, "gdef.geoetcd")
        check(dir_nonempty(expected),
              "default data dir %s not created (cwd has %s)" % (expected, os.listdir(cwd)))
    finally:
        srv.destroy()
        harness.remove_temp_dir(cwd)


def test_client_transports():
    """Both --client-transport values serve KV, Watch (native on one, gRPC C++ on the
    other) and a relayed call (Status); a bad value is refused before anything starts."""
    for transport in ("native", "grpc"):
        cwd = harness.make_temp_dir("cli-transport-")
        try:
            def make_args(s, t=transport):
                u = urls(s)
                return ["--name", s.name, "--data-dir", os.path.join(cwd, "data"),
                        "--listen-client-urls", u["client"], "--advertise-client-urls",
                        u["client"], "--listen-peer-urls", u["peer"],
                        "--initial-advertise-peer-urls", u["peer"], "--initial-cluster",
                        u["cluster"], "--client-transport", t]

            srv = custom_server(make_args, cwd=cwd)
            srv.start(new_ports=False, attempts=1)
            try:
                serves(srv)
                stubs = srv.stubs()
                status = stubs.maintenance.Status(rpc_pb2.StatusRequest(),
                                                  timeout=harness.RPC_TIMEOUT)
                check(status.header.revision >= 2, "%s: Status header %s" % (transport, status))
                responses = stubs.watch.Watch(iter([rpc_pb2.WatchRequest(
                    create_request=rpc_pb2.WatchCreateRequest(key=b"cli-probe",
                                                              start_revision=1))]),
                    timeout=harness.RPC_TIMEOUT)
                events = []
                for resp in responses:
                    events.extend(resp.events)
                    if events:
                        break
                responses.cancel()
                check(len(events) == 1 and events[0].kv.value == b"ok",
                      "%s: watch from revision 1 saw %s" % (transport, events))
            finally:
                srv.destroy()
        finally:
            harness.remove_temp_dir(cwd)
    code, _, err = run_bin(["--client-transport", "quic"])
    check(code != 0 and "--client-transport" in err and "must be one of native, grpc" in err,
          "bad transport: exit %d, stderr %r" % (code, err))


TESTS = [test_help, test_version, test_ignored_etcd_flags_warn, test_env_vars, test_config_file,
         test_unknown_flag, test_default_data_dir, test_client_transports]


def main():
    return harness.run_tests(TESTS, Failure)


if __name__ == "__main__":
    sys.exit(main())
