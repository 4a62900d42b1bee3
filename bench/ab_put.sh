#!/usr/bin/env bash
# A/B of two geoetcd binaries on the durable-put hot path, in one session: alternating fresh
# servers (A B A B ...), the same client, the put-1000 shape of compare.sh. Prints per run the
# put throughput and the server's CPU per put (utime + stime from /proc/<pid>/stat), then the
# medians per binary.
#   bench/ab_put.sh <geoetcd A> <geoetcd B> [rounds=3]
# Knobs: BENCH=build/geoetcd-bench  DURATION=10s  WARMUP=0s (server CPU and puts: one window)
#        CONNS=100  CLIENTS=1000  TRANSPORT=h2 (or grpc: gRPC C++'s client, whose HPACK indexes
#        repeated headers as every real client does)  RATE= (puts/s in total; empty: as fast
#        as the clients go)
set -euo pipefail
a="$1" b="$2" rounds="${3:-3}"
bench="${BENCH:-build/geoetcd-bench}"
: "${DURATION:=10s}" "${WARMUP:=0s}" "${CONNS:=100}" "${CLIENTS:=1000}" "${TRANSPORT:=h2}"
rate=()
if [[ -n "${RATE:-}" ]]; then rate=(--rate "$RATE"); fi
work="$(mktemp -d "${TMPDIR:-/tmp}/geoetcd-ab-XXXXXX")"
pid=""
trap '[[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }

one() {  # one <label> <binary>
  local cport pport dir c0 c1
  cport="$(port)" pport="$(port)" dir="$(mktemp -d "$work/d-XXXXXX")"
  "$2" --name ab --data-dir "$dir" --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "ab=http://127.0.0.1:$pport" >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    "$bench" range --endpoints "127.0.0.1:$cport" --total 1 --connect-timeout 1s \
      --no-progress >/dev/null 2>&1 && break
    sleep 0.1
  done
  c0="$(cpu "$pid")"
  "$bench" put --transport "$TRANSPORT" "${rate[@]}" --conns "$CONNS" --clients "$CLIENTS" --duration "$DURATION" \
    --warmup "$WARMUP" --val-size 256 --key-space 100000 --threads 2 --endpoints \
    "127.0.0.1:$cport" --json >"$dir.json"
  c1="$(cpu "$pid")"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  python3 - "$1" "$dir.json" "$c0" "$c1" <<'PY' | tee -a "$work/rows"
import json, sys
label, path, c0, c1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
d = json.load(open(path))
n = d["requests"]
print("%s %.0f %.2f %d" % (label, d["requests_per_sec"], (c1 - c0) * 1e6 / n, d["errors"]))
PY
}

echo "binary put/s server_cpu_us/put errors"
for _ in $(seq "$rounds"); do one A "$a"; one B "$b"; done
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for label in ("A", "B"):
    r = [x for x in rows if x[0] == label]
    print("median %s: %.0f put/s, %.2f us server CPU/put" % (
        label, statistics.median(float(x[1]) for x in r), statistics.median(float(x[2]) for x in r)))
PY
