#!/usr/bin/env bash
# Side-by-side benchmark of a real etcd 3.4 and geoetcd on this machine, with the same
# client (build/geoetcd-bench), the same durability (each fsyncs every commit) and fresh data
# dirs. The servers run ONE AT A TIME so they never compete for the cores. Writes
#   bench/results/<date>.md    table of both, ratios, machine facts, chart
#   bench/results/<date>.svg   bar chart of the ratios
#   bench/results/<date>/      raw JSON of every run (and the server logs)
#
# usage: bench/compare.sh [--quick] [--only <workload>] [--list]
#   --quick   short runs and small key counts, to try the pipeline (about a minute)
#   --only W  run one workload (see --list); the preload a range needs runs too
#
# Knobs (environment; the defaults make a full run of 7-10 minutes; --quick shrinks them):
#   BENCH_DURATION=10s   each measured run        BENCH_WARMUP=1s   load before measuring
#   BENCH_CONNS=100      BENCH_CLIENTS=1000       the "many clients" shape
#   BENCH_KEYS=100000    keys preloaded for the range runs
#   BENCH_TXN_KEYS=10000 keys the txn-put run updates (under their own prefix)
#   BENCH_WATCHERS=10000 BENCH_WATCH_STREAMS=100  BENCH_WATCH_RATE=10  BENCH_WATCH_PUTS=100
#   BENCH_RSS_KEYS=1000000  keys of BENCH_VAL_SIZE=256 bytes loaded before reading VmRSS
#   BENCH_THREADS=2      geoetcd-bench poller threads; it shares the cores with the server,
#                        and one thread tops out near 40k RPC/s here (see client CPU)
#   BENCH_TRANSPORT=h2   geoetcd-bench's transport for the put, range and txn-put runs: h2 (its
#                        own lean HTTP/2 client, ~5 us of CPU per call) or grpc (gRPC C++'s
#                        client, ~26 us); the watch run always uses gRPC C++
#   BENCH_TAG=<date>     name of the results; an existing one gets -b, -c, ... appended
#   BENCH_FLOOR_DURATION=5s   each floor run
#   BENCH_COST_RATE=2000 BENCH_COST_KEYS=10000 BENCH_COST_PY_THREADS=8   the `cost` runs:
#                        server CPU per request at a fixed rate, under geoetcd-bench and
#                        under a second client (python3-etcd3, bench/py_client_load.py)
#   BUILD_DIR=build  JOBS=$(nproc)  ETCD_BIN=/usr/bin/etcd  BENCH_OUT=bench/results
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

all_workloads=(put-1 put-1000 range-lin-1 range-lin-1000 range-ser-1 range-ser-1000 txn-put
               watch rss cost floors)
quick=0
only=""
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --only)
      [[ $# -ge 2 ]] || { echo "compare: --only needs a workload (--list shows them)" >&2; exit 2; }
      only="$2"
      shift
      ;;
    --list) printf '%s\n' "${all_workloads[@]}"; exit 0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n "$only" && ! " ${all_workloads[*]} " =~ " $only " ]]; then
  echo "compare: unknown workload '$only'; one of: ${all_workloads[*]}" >&2
  exit 2
fi

if ((quick)); then
  : "${BENCH_DURATION:=2s}" "${BENCH_WARMUP:=0s}" "${BENCH_KEYS:=10000}"
  : "${BENCH_RSS_KEYS:=100000}" "${BENCH_WATCHERS:=1000}" "${BENCH_WATCH_STREAMS:=10}"
  : "${BENCH_WATCH_PUTS:=20}" "${BENCH_FLOOR_DURATION:=2s}" "${BENCH_TXN_KEYS:=1000}"
fi
: "${BENCH_DURATION:=10s}" "${BENCH_WARMUP:=1s}" "${BENCH_CONNS:=100}" "${BENCH_CLIENTS:=1000}"
: "${BENCH_KEYS:=100000}" "${BENCH_TXN_KEYS:=10000}" "${BENCH_WATCHERS:=10000}"
: "${BENCH_WATCH_STREAMS:=100}" "${BENCH_WATCH_RATE:=10}" "${BENCH_WATCH_PUTS:=100}"
: "${BENCH_RSS_KEYS:=1000000}" "${BENCH_VAL_SIZE:=256}" "${BENCH_THREADS:=2}"
: "${BENCH_TRANSPORT:=h2}" "${BENCH_FLOOR_DURATION:=5s}" "${BUILD_DIR:=build}" "${JOBS:=$(nproc)}"
: "${ETCD_BIN:=/usr/bin/etcd}" "${BENCH_OUT:=bench/results}"
: "${BENCH_COST_RATE:=2000}" "${BENCH_COST_KEYS:=10000}" "${BENCH_COST_PY_THREADS:=8}"
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$root/$BUILD_DIR"
[[ "$BENCH_OUT" = /* ]] || BENCH_OUT="$root/$BENCH_OUT"

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { [[ -z "$only" || "$only" == "$1" ]]; }

# ---- dependencies and build ------------------------------------------------------------
"$root/scripts/deps.sh" test
[[ -x "$ETCD_BIN" ]] || { echo "compare: no etcd at $ETCD_BIN" >&2; exit 1; }
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  generator=()
  if command -v ninja >/dev/null; then generator=(-G Ninja); fi
  cmake -S "$root" -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD_DIR/CMakeCache.txt"; then
  log "warning: $BUILD_DIR is not a Release build; numbers will be off"
fi
log "building geoetcd and geoetcd-bench in $BUILD_DIR"
cmake --build "$BUILD_DIR" -j"$JOBS" --target geoetcd geoetcd-bench >/dev/null
geoetcd_bin="$BUILD_DIR/geoetcd"
bench="$BUILD_DIR/geoetcd-bench"
python=/usr/bin/python3

tag="${BENCH_TAG:-$(date +%F)}"
((quick)) && tag="$tag-quick"
[[ -n "$only" ]] && tag="$tag-$only"
# A second full run the same day keeps the first: -b, -c, ...
if [[ -z "${BENCH_TAG:-}" && $quick -eq 0 && -z "$only" && -e "$BENCH_OUT/$tag.md" ]]; then
  for suffix in b c d e f g h i j k l m n o p q r s t u v w x y z; do
    if [[ ! -e "$BENCH_OUT/$tag-$suffix.md" ]]; then tag="$tag-$suffix"; break; fi
  done
fi
raw="$BENCH_OUT/$tag"
rm -rf "$raw"
mkdir -p "$raw/etcd" "$raw/geoetcd" "$raw/floors"
work="$(mktemp -d "${TMPDIR:-/tmp}/geoetcd-compare-XXXXXX")"

server_pid=""
server_kind=""
endpoint=""
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server <etcd|geoetcd>: a fresh data dir, free ports, waits until a Range answers.
start_server() {
  local kind="$1" client_port peer_port dir
  client_port="$(free_port)"
  peer_port="$(free_port)"
  dir="$(mktemp -d "$work/$kind-XXXXXX")"
  local curl="http://127.0.0.1:$client_port" purl="http://127.0.0.1:$peer_port"
  local args=(--name "$kind" --data-dir "$dir/data" --listen-client-urls "$curl"
              --advertise-client-urls "$curl" --listen-peer-urls "$purl"
              --initial-advertise-peer-urls "$purl" --initial-cluster "$kind=$purl")
  if [[ "$kind" == etcd ]]; then
    # Default durability (a WAL fdatasync per commit). 8 GiB, etcd's largest quota, holds
    # the 1M-key load with its MVCC history many times over.
    "$ETCD_BIN" "${args[@]}" --quota-backend-bytes 8589934592 --logger zap \
      --log-level error >>"$raw/$kind.log" 2>&1 &
  else
    "$geoetcd_bin" "${args[@]}" --quota-backend-bytes 8589934592 >>"$raw/$kind.log" 2>&1 &
  fi
  server_pid=$!
  server_kind="$kind"
  endpoint="127.0.0.1:$client_port"
  for _ in $(seq 300); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "compare: $kind exited during startup; see $raw/$kind.log" >&2
      exit 1
    fi
    if "$bench" range --endpoints "$endpoint" --total 1 --connect-timeout 1s --no-progress \
        >/dev/null 2>&1; then
      log "$kind ready on $endpoint (pid $server_pid)"
      return
    fi
    sleep 0.1
  done
  echo "compare: $kind did not become ready on $endpoint" >&2
  exit 1
}

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# Server CPU seconds so far (utime + stime from /proc/<pid>/stat).
server_cpu() {
  "$python" - "$server_pid" <<'PY'
import os, sys
fields = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
print((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
PY
}

# Busy CPU seconds of the whole machine so far (every state of /proc/stat but idle, iowait).
machine_cpu() {
  "$python" - <<'PY'
import os
f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
print((sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK"))
PY
}

# annotate <json file> <key> <number>: adds a field to a run's JSON.
annotate() {
  "$python" - "$@" <<'PY'
import json, sys
path, key, value = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    d = json.load(f)
d[key] = float(value)
with open(path, "w") as f:
    json.dump(d, f)
PY
}

# measured <json file> <command...>: runs the command against the current server with its
# stdout in the file, then adds the server's CPU seconds and the whole machine's meanwhile
# (everything else that ran shows up there: other users of the machine).
measured() {
  local out="$1" cpu0 cpu1 all0 all1
  shift
  cpu0="$(server_cpu)"
  all0="$(machine_cpu)"
  "$@" >"$out"
  all1="$(machine_cpu)"
  cpu1="$(server_cpu)"
  annotate "$out" server_cpu_seconds "$("$python" -c "print($cpu1 - $cpu0)")"
  annotate "$out" machine_cpu_seconds "$("$python" -c "print($all1 - $all0)")"
}

# run <name> <bench args...>: one geoetcd-bench run against the current server, its JSON saved
# as <raw>/<server>/<name>.json.
run() {
  local name="$1"
  shift
  local out="$raw/$server_kind/$name.json"
  log "$server_kind $name: geoetcd-bench $*"
  measured "$out" "$bench" "$@" --endpoints "$endpoint" --threads "$BENCH_THREADS" --json
  "$python" -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("    %.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d" % (d["requests_per_sec"], d["p50_ms"], d["p99_ms"], d["errors"]))
' "$out" >&2
}

# duration_seconds 10s|500ms|2m: the duration in seconds, as geoetcd-bench reads it.
duration_seconds() {
  "$python" - "$1" <<'PY'
import re, sys
m = re.fullmatch(r"([0-9.]+)(ms|s|m)", sys.argv[1])
if not m:
    sys.exit("compare: bad duration %r" % sys.argv[1])
print(float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)])
PY
}

# run_py <name> <py_client_load.py args after the endpoint...>: like run(), with the second
# client (python3-etcd3) instead of geoetcd-bench.
run_py() {
  local name="$1"
  shift
  log "$server_kind $name: py_client_load.py $*"
  measured "$raw/$server_kind/$name.json" "$python" "$root/bench/py_client_load.py" "$endpoint" "$@"
}

many=(--conns "$BENCH_CONNS" --clients "$BENCH_CLIENTS")
kv=(--transport "$BENCH_TRANSPORT")
timed=(--duration "$BENCH_DURATION" --warmup "$BENCH_WARMUP" --val-size "$BENCH_VAL_SIZE")
range_keys=(--key-space "$BENCH_KEYS" --key-prefix range/)

# maybe <name> <bench args...>: run() when the workload <name> is selected.
maybe() {
  if want "$1"; then run "$@"; fi
}

bench_server() {
  local kind="$1" need_range=0 w
  for w in range-lin-1 range-lin-1000 range-ser-1 range-ser-1000; do
    if want "$w"; then need_range=1; fi
  done
  if want put-1 || want put-1000 || ((need_range)) || want txn-put || want watch; then
    start_server "$kind"
    maybe put-1 put "${kv[@]}" --clients 1 "${timed[@]}" --key-space 100000
    maybe put-1000 put "${kv[@]}" "${many[@]}" "${timed[@]}" --key-space 100000
    if ((need_range)); then
      run preload put "${kv[@]}" "${many[@]}" --total "$BENCH_KEYS" --sequential-keys \
        "${range_keys[@]}" --val-size "$BENCH_VAL_SIZE"
      maybe range-lin-1 range "${kv[@]}" --clients 1 "${timed[@]}" "${range_keys[@]}" \
        --consistency linearizable
      maybe range-lin-1000 range "${kv[@]}" "${many[@]}" "${timed[@]}" "${range_keys[@]}" \
        --consistency linearizable
      maybe range-ser-1 range "${kv[@]}" --clients 1 "${timed[@]}" "${range_keys[@]}" \
        --consistency serializable
      maybe range-ser-1000 range "${kv[@]}" "${many[@]}" "${timed[@]}" "${range_keys[@]}" \
        --consistency serializable
    fi
    # Keys of their own, absent at first, so a CAS starts from mod_revision 0.
    maybe txn-put txn-put "${kv[@]}" "${many[@]}" "${timed[@]}" --key-space "$BENCH_TXN_KEYS" \
      --key-prefix txn/
    maybe watch watch --watchers "$BENCH_WATCHERS" --streams "$BENCH_WATCH_STREAMS" \
      --conns "$(( BENCH_WATCH_STREAMS < BENCH_CONNS ? BENCH_WATCH_STREAMS : BENCH_CONNS ))" \
      --rate "$BENCH_WATCH_RATE" --total "$BENCH_WATCH_PUTS" --val-size "$BENCH_VAL_SIZE" \
      --key-prefix watch/ --key-space 1000
    stop_server
  fi
  if want cost; then
    # Server CPU per request at a moderate fixed rate, from two unrelated clients: if
    # geoetcd-bench's HTTP/2 client made a server look slow, the second client would show it.
    start_server "$kind"
    # Both clients name keys alike: the prefix, then the index zero-padded to 32 bytes.
    local cost_keys=(--key-space "$BENCH_COST_KEYS" --key-prefix cost/ --key-size 32)
    local paced=(--transport h2 --conns 10 --clients 100 --rate "$BENCH_COST_RATE"
                 --duration "$BENCH_DURATION" --val-size "$BENCH_VAL_SIZE")
    run cost-preload put --transport h2 --conns 10 --clients 100 --total "$BENCH_COST_KEYS" \
      --sequential-keys "${cost_keys[@]}" --val-size "$BENCH_VAL_SIZE"
    run cost-bench-put put "${paced[@]}" "${cost_keys[@]}"
    run cost-bench-range-lin range "${paced[@]}" "${cost_keys[@]}" --consistency linearizable
    run cost-bench-range-ser range "${paced[@]}" "${cost_keys[@]}" --consistency serializable
    local op
    for op in put range-lin range-ser; do
      run_py "cost-py-$op" "$op" "$(duration_seconds "$BENCH_DURATION")" \
        "$BENCH_COST_PY_THREADS" cost/ 32 "$BENCH_COST_KEYS" "$BENCH_VAL_SIZE"
    done
    stop_server
  fi
  if want rss; then
    # A fresh server: memory after loading BENCH_RSS_KEYS distinct keys and nothing else.
    start_server "$kind"
    run rss-load put "${kv[@]}" "${many[@]}" --total "$BENCH_RSS_KEYS" --key-space "$BENCH_RSS_KEYS" \
      --sequential-keys --key-prefix rss/ --val-size "$BENCH_VAL_SIZE"
    sleep 2  # let background flushes settle before reading memory
    "$python" - "$server_pid" "$BENCH_RSS_KEYS" "$BENCH_VAL_SIZE" >"$raw/$kind/rss.json" <<'PY'
import json, sys
status = {}
for line in open("/proc/%s/status" % sys.argv[1]):
    key, _, value = line.partition(":")
    status[key] = value.strip()
kb = lambda k: int(status.get(k, "0 kB").split()[0])
print(json.dumps({"keys": int(sys.argv[2]), "val_size": int(sys.argv[3]),
                  "vmrss_kb": kb("VmRSS"), "rss_anon_kb": kb("RssAnon"),
                  "rss_file_kb": kb("RssFile"), "vmhwm_kb": kb("VmHWM")}))
PY
    log "$kind rss: $(cat "$raw/$kind/rss.json")"
    stop_server
  fi
}

for kind in etcd geoetcd; do bench_server "$kind"; done

if want floors; then
  floor() {
    local name="$1"
    shift
    log "floor $name: geoetcd-bench $*"
    "$bench" "$@" --json --no-progress >"$raw/floors/$name.json"
  }
  # Synced RocksDB writes in the same filesystem the servers used.
  fd=(--duration "$BENCH_FLOOR_DURATION" --val-size "$BENCH_VAL_SIZE" --key-space 100000)
  floor rocksdb-1x1 rocksdb-sync --dir "$work" --writers 1 --batch-size 1 "${fd[@]}"
  floor rocksdb-16x1 rocksdb-sync --dir "$work" --writers 16 --batch-size 1 "${fd[@]}"
  floor rocksdb-1x100 rocksdb-sync --dir "$work" --writers 1 --batch-size 100 "${fd[@]}"
  floor grpc-empty-1 grpc-empty --clients 1 --duration "$BENCH_FLOOR_DURATION" \
    --threads "$BENCH_THREADS"
  floor grpc-empty-1000 grpc-empty "${many[@]}" --duration "$BENCH_FLOOR_DURATION" \
    --threads "$BENCH_THREADS"
fi

# ---- machine facts and the report -------------------------------------------------------
"$python" - "$raw/facts.json" <<PY
import json, os, platform, subprocess, sys
def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd="$root").stdout.strip()
    except OSError:
        return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem_kb = int(open("/proc/meminfo").readline().split()[1])
commit = sh("git", "rev-parse", "--short", "HEAD")
if sh("git", "status", "--porcelain", "--untracked-files=no"):
    commit += " (with uncommitted changes)"
facts = {
    "date": "$(date '+%F %H:%M %Z')",
    "nproc": os.cpu_count(),
    "cpu": cpu,
    "memory_gib": round(mem_kb / 1048576, 1),
    "kernel": platform.release(),
    "filesystem": sh("df", "--output=fstype,source,target", "${TMPDIR:-/tmp}").splitlines()[-1:],
    "etcd_version": sh("$ETCD_BIN", "--version").splitlines()[0:1],
    "geoetcd_commit": commit,
    "quick": bool($quick),
    "only": "$only",
    "knobs": {k: v for k, v in os.environ.items() if k.startswith("BENCH_")},
    "settings": {
        "duration": "$BENCH_DURATION", "warmup": "$BENCH_WARMUP", "conns": $BENCH_CONNS,
        "clients": $BENCH_CLIENTS, "keys": $BENCH_KEYS, "txn_keys": $BENCH_TXN_KEYS,
        "watchers": $BENCH_WATCHERS, "watch_streams": $BENCH_WATCH_STREAMS,
        "watch_rate": $BENCH_WATCH_RATE, "watch_puts": $BENCH_WATCH_PUTS,
        "rss_keys": $BENCH_RSS_KEYS, "val_size": $BENCH_VAL_SIZE, "threads": $BENCH_THREADS,
        "transport": "$BENCH_TRANSPORT", "cost_rate": $BENCH_COST_RATE,
        "cost_keys": $BENCH_COST_KEYS, "cost_py_threads": $BENCH_COST_PY_THREADS,
    },
}
json.dump(facts, open(sys.argv[1], "w"), indent=1)
PY
"$python" "$root/bench/report.py" "$raw" "$BENCH_OUT/$tag.md" "$BENCH_OUT/$tag.svg"
log "wrote $BENCH_OUT/$tag.md, $BENCH_OUT/$tag.svg and raw JSON in $raw"
