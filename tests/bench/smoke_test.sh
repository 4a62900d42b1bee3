#!/usr/bin/env bash
# CI smoke run of geoetcd-bench (benchmarks are not tests; this only keeps the tool
# working): a fresh geoetcd on free ports, a put and a range run whose JSON must carry the
# promised fields with requests == 200 and errors == 0, and bad flags that must fail.
#
# usage: tests/bench/smoke_test.sh <geoetcd binary> <geoetcd-bench binary>
set -euo pipefail

geoetcd="$1"
bench="$2"
python=/usr/bin/python3
work="$(mktemp -d "${TMPDIR:-/tmp}/bench-smoke-XXXXXX")"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "bench_smoke: FAIL: $*" >&2
  if [[ -f "$work/server.log" ]]; then tail -20 "$work/server.log" >&2; fi
  exit 1
}

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

client_port="$(free_port)"
peer_port="$(free_port)"
client_url="http://127.0.0.1:$client_port"
peer_url="http://127.0.0.1:$peer_port"
"$geoetcd" --name smoke --data-dir "$work/data" \
  --listen-client-urls "$client_url" --advertise-client-urls "$client_url" \
  --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "smoke=$peer_url" >"$work/server.log" 2>&1 &
server_pid=$!

endpoint="127.0.0.1:$client_port"
ready=""
for _ in $(seq 100); do
  kill -0 "$server_pid" 2>/dev/null || fail "geoetcd exited during startup"
  if "$bench" range --endpoints "$endpoint" --total 1 --connect-timeout 1s --json \
      >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.05
done
[[ -n "$ready" ]] || fail "geoetcd did not answer on $endpoint"

# check_json <file> <workload>: the promised fields, 200 requests, no errors.
check_json() {
  "$python" - "$1" "$2" <<'PY' || fail "bad JSON from $2 run: $(cat "$1")"
import json, sys
path, workload = sys.argv[1], sys.argv[2]
with open(path) as f:
    text = f.read()
assert text.count("\n") == 1, "want exactly one line of JSON, got %r" % text
d = json.loads(text)
for field in ("requests", "errors", "seconds", "requests_per_sec", "p50_ms", "p90_ms",
              "p99_ms", "p999_ms", "max_ms", "errors_by_code", "workload", "clients"):
    assert field in d, "missing field %s" % field
assert d["workload"] == workload, d["workload"]
assert d["requests"] == 200, "requests %s != 200" % d["requests"]
assert d["errors"] == 0, "errors %s: %s" % (d["errors"], d["errors_by_code"])
assert d["seconds"] > 0 and d["requests_per_sec"] > 0
assert 0 < d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["p999_ms"] <= d["max_ms"], d
print("bench_smoke: %s ok: %.0f req/s, p99 %.2f ms" % (workload, d["requests_per_sec"], d["p99_ms"]))
PY
}

"$bench" put --endpoints "$endpoint" --total 200 --clients 4 --key-space 50 \
  --sequential-keys --json >"$work/put.json" || fail "put run exited $?"
check_json "$work/put.json" put
"$bench" range --endpoints "$endpoint" --total 200 --clients 4 --key-space 50 \
  --json >"$work/range.json" || fail "range run exited $?"
check_json "$work/range.json" range
"$bench" put --endpoints "$endpoint" --total 200 --clients 4 --conns 2 --threads 2 \
  --key-space 50 --transport h2 --json >"$work/put-h2.json" || fail "h2 put run exited $?"
check_json "$work/put-h2.json" put

# The second client of compare.sh's `cost` runs: reads the keys the put run wrote.
py_load="$(dirname "$0")/../../bench/py_client_load.py"
"$python" "$py_load" "$endpoint" range-ser 0.3 2 bench/ 32 50 256 >"$work/py.json" ||
  fail "py_client_load.py exited $?"
"$python" - "$work/py.json" <<'PY' || fail "bad JSON from py_client_load.py: $(cat "$work/py.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["requests"] > 0 and d["errors"] == 0 and d["range_misses"] == 0, d
print("bench_smoke: py_client_load.py ok: %.0f req/s" % d["requests_per_sec"])
PY
rc=0
"$python" "$py_load" "$endpoint" scan 1 1 bench/ 32 50 256 >/dev/null 2>&1 || rc=$?
[[ "$rc" == 2 ]] || fail "py_client_load.py with op 'scan' exited $rc, want 2"

# Bad input: usage errors exit 2, an unreachable endpoint exits 1, each with a message.
expect_exit() {
  local want="$1" pattern="$2"
  shift 2
  local rc=0
  "$bench" "$@" >"$work/out" 2>"$work/err" || rc=$?
  [[ "$rc" == "$want" ]] || fail "'$*' exited $rc, want $want"
  grep -q -- "$pattern" "$work/err" || fail "'$*' said '$(cat "$work/err")', want '$pattern'"
  [[ ! -s "$work/out" ]] || fail "'$*' printed to stdout: $(cat "$work/out")"
}
expect_exit 2 "unknown workload 'puts'" puts --endpoints "$endpoint"
expect_exit 2 "exclude each other" put --endpoints "$endpoint" --total 5 --duration 1s
expect_exit 2 "val-size" put --endpoints "$endpoint" --val-size 0
expect_exit 2 "h2 runs only put, range, txn-put and mixed" watch --endpoints "$endpoint" \
  --transport h2
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
expect_exit 1 "cannot connect to $endpoint" put --endpoints "$endpoint" --total 5 \
  --connect-timeout 2s
expect_exit 1 "cannot connect to $endpoint (connection 1 of 1 failed" put \
  --endpoints "$endpoint" --total 5 --connect-timeout 2s --transport h2
echo "bench_smoke: ok"
