#!/usr/bin/env bash
# Regions benchmark: geoetcd with one region, geoetcd with three regions and etcd 3.4 with
# three members, on this machine, one deployment at a time, with the same client
# (build/geoetcd-bench) and fresh data dirs. Writes
#   bench/results/regions-<date>.md   the table, with ratios
#   bench/results/regions-<date>/     raw JSON of every run and the server logs
#
# usage: bench/regions.sh [--quick]
#
# What each row measures (W = geoetcd's write region r1, or etcd's leader; R = another
# region or follower):
#   put-1000 at W        durable puts, 1000 clients over 100 connections (h2 client)
#   put-1 at W / at R    one client: at R geoetcd forwards to W and answers once R applied
#                        the write; etcd's follower forwards to the leader
#   range-lin-1 at R     linearizable single-key range at R (geoetcd: a read index from W;
#                        etcd: ReadIndex from the leader)
#   range-ser-1 at R     serializable range at R: R's own state
#   lag idle / lag load  put sent at W -> its watch event received at R, one watcher
#                        (geoetcd-bench watch with --endpoints R,W: the watcher's connection
#                        goes to R, the writer's to W), minus the same with the watcher at W;
#                        "load" runs it beside a put-1000 run at W
#   catch-up             geoetcd, 3 regions: R killed, BENCH_CATCHUP_PUTS puts at W, R
#                        restarted; commits per second R applies, from its first answered
#                        read until it holds W's revision
#   server CPU           each server's user+system CPU and the machine's busy CPU over the
#                        put-1000 run, per put (W's alone, and all servers')
#   write quorum         geoetcd's 3 regions run --write-quorum majority (the default); a
#                        fourth deployment with --write-quorum local repeats the put rows
#
# All processes share this machine's cores and disk: three regions fsync every commit three
# times on one disk, which a real deployment spreads over three machines. The ratios say how
# the protocol costs compare here, not what a WAN deployment achieves.
#
# Knobs: BENCH_DURATION=10s BENCH_CONNS=100 BENCH_CLIENTS=1000 BENCH_THREADS=2
#        BENCH_SINGLE_TOTAL=5000  BENCH_LAG_PUTS=500  BENCH_CATCHUP_PUTS=200000
#        ETCD_BIN=/usr/bin/etcd  BUILD_DIR=build
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

quick=0
if [[ "${1:-}" == "--quick" ]]; then quick=1; fi
if ((quick)); then
  : "${BENCH_DURATION:=2s}" "${BENCH_SINGLE_TOTAL:=500}" "${BENCH_LAG_PUTS:=100}"
  : "${BENCH_CATCHUP_PUTS:=20000}"
fi
: "${BENCH_CATCHUP_PUTS:=200000}"
: "${BENCH_DURATION:=10s}" "${BENCH_CONNS:=100}" "${BENCH_CLIENTS:=1000}" "${BENCH_THREADS:=2}"
: "${BENCH_SINGLE_TOTAL:=5000}" "${BENCH_LAG_PUTS:=500}"
: "${ETCD_BIN:=/usr/bin/etcd}" "${BUILD_DIR:=build}"
bench="$BUILD_DIR/geoetcd-bench"
geoetcd_bin="$BUILD_DIR/geoetcd"
for b in "$bench" "$geoetcd_bin" "$ETCD_BIN"; do
  [[ -x "$b" ]] || { echo "regions: $b is missing (build first; scripts/deps.sh test installs etcd)" >&2; exit 1; }
done

tag="regions-$(date +%Y-%m-%d)"
out_dir="bench/results"
while [[ -e "$out_dir/$tag.md" ]]; do tag="$tag-b"; done
raw="$out_dir/$tag"
mkdir -p "$raw"
work="$(mktemp -d)"
pids=()
r_port=""
restart_r=""  # the command line that restarts R (printf %q), for the catch-up run

log() { printf '[regions %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# deploy <etcd|geoetcd> <members>: fresh data dirs; sets W and R (client endpoints).
deploy_extra=()  # more server flags for the next deploy (geoetcd only)
deploy_tag=""    # and a tag for its data dirs
deploy() {
  local kind="$1" n="$2" i cluster="" cports=() pports=()
  for ((i = 1; i <= n; i++)); do
    cports+=("$(free_port)")
    pports+=("$(free_port)")
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${pports[i - 1]}"
  done
  for ((i = 1; i <= n; i++)); do
    local c="http://127.0.0.1:${cports[i - 1]}" p="http://127.0.0.1:${pports[i - 1]}"
    local args=(--name "m$i" --data-dir "$work/$kind$deploy_tag-$n-m$i" --listen-client-urls "$c"
                --advertise-client-urls "$c" --listen-peer-urls "$p"
                --initial-advertise-peer-urls "$p" --initial-cluster "$cluster"
                --initial-cluster-token "bench-$kind-$n" --quota-backend-bytes 8589934592)
    if [[ $kind == etcd ]]; then
      "$ETCD_BIN" "${args[@]}" --logger zap --log-level error >>"$raw/$kind-$n-m$i.log" 2>&1 &
    else
      args+=("${deploy_extra[@]}")
      "$geoetcd_bin" "${args[@]}" >>"$raw/$kind$deploy_tag-$n-m$i.log" 2>&1 &
      if ((i == 2)); then
        restart_r="$(printf '%q ' "$geoetcd_bin" "${args[@]}")"
        r_port="${cports[1]}"
      fi
    fi
    pids+=($!)
  done
  local endpoints=()
  for ((i = 1; i <= n; i++)); do endpoints+=("127.0.0.1:${cports[i - 1]}"); done
  for ep in "${endpoints[@]}"; do
    for _ in $(seq 300); do
      if "$bench" range --endpoints "$ep" --total 1 --connect-timeout 1s --no-progress \
          >/dev/null 2>&1; then
        break
      fi
      sleep 0.1
    done
  done
  # The leader (etcd) or write region (geoetcd): Status names it.
  local leader
  leader="$(ETCDCTL_API=3 etcdctl --endpoints "$(IFS=,; echo "${endpoints[*]}")" endpoint status -w json |
    python3 -c 'import json,sys
st = json.load(sys.stdin)
lead = st[0]["Status"]["leader"]
print([s["Endpoint"] for s in st if s["Status"]["header"]["member_id"] == lead][0])')"
  W="$leader"
  R="$W"
  for ep in "${endpoints[@]}"; do if [[ $ep != "$W" ]]; then R="$ep"; break; fi; done
  log "$kind x$n ready: W=$W R=$R"
}

run() {  # run <name> <bench args...>: JSON to $raw/<name>.json
  local name="$1"
  shift
  "$bench" "$@" --json --no-progress >"$raw/$name.json" 2>>"$raw/bench.log" ||
    { echo "regions: run $name failed; see $raw/bench.log" >&2; exit 1; }
}

cpu_ticks() {  # user+system clock ticks of every server process, space-separated, and the machine's busy ticks
  local out=()
  for p in "${pids[@]}"; do out+=("$(awk '{print $14 + $15}' "/proc/$p/stat")"); done
  out+=("$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)")
  echo "${out[*]} $(date +%s.%N)"
}

measure() {  # measure <prefix>: every row for the deployment up now
  local p="$1"
  local before after
  before="$(cpu_ticks)"
  run "$p-put1000" put --endpoints "$W" --transport h2 --conns "$BENCH_CONNS" \
    --clients "$BENCH_CLIENTS" --threads "$BENCH_THREADS" --duration "$BENCH_DURATION" \
    --warmup 1s --key-prefix "$p/put/"
  after="$(cpu_ticks)"
  # CPU of each server (W first) and of the whole machine over the put-1000 run: on a
  # machine with few cores, what bounds 3 regions' throughput at W.
  python3 - "$raw/$p-put1000.json" "$raw/$p-put1000-cpu.json" "$(getconf CLK_TCK)" \
    "$before" "$after" <<'PY'
import json, sys
res, out, hz, before, after = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
b, a = before.split(), after.split()
wall = float(a[-1]) - float(b[-1])  # the whole run, its 1 s warm-up included
ticks = [(int(y) - int(x)) / hz for x, y in zip(b[:-1], a[:-1])]
d = json.load(open(res))
# Puts of the whole window: the measured rate over the warm-up too.
puts = d["requests_per_sec"] * wall
json.dump({"server_cpu_s": ticks[:-1], "machine_busy_cpu_s": ticks[-1], "wall_s": wall,
           "puts": puts}, open(out, "w"))
PY
  run "$p-put1-w" put --endpoints "$W" --total "$BENCH_SINGLE_TOTAL" --key-prefix "$p/p1w/"
  run "$p-put1-r" put --endpoints "$R" --total "$BENCH_SINGLE_TOTAL" --key-prefix "$p/p1r/"
  run "$p-rangelin-r" range --endpoints "$R" --total "$BENCH_SINGLE_TOTAL" \
    --key-prefix "$p/p1r/" --consistency linearizable
  run "$p-rangeser-r" range --endpoints "$R" --total "$BENCH_SINGLE_TOTAL" \
    --key-prefix "$p/p1r/" --consistency serializable
  local watch=(watch --conns 1 --streams 1 --watchers 1 --rate 100)
  run "$p-lag-w" "${watch[@]}" --total "$BENCH_LAG_PUTS" --endpoints "$W,$W" --key-prefix "$p/lagw/"
  run "$p-lag-r" "${watch[@]}" --total "$BENCH_LAG_PUTS" --endpoints "$R,$W" --key-prefix "$p/lagr/"
  # Under load: the same, beside a 1000-client put run at W.
  "$bench" put --endpoints "$W" --transport h2 --conns "$BENCH_CONNS" --clients "$BENCH_CLIENTS" \
    --threads "$BENCH_THREADS" --duration 30s --key-prefix "$p/bg/" --json --no-progress \
    >"$raw/$p-lag-load-bg.json" 2>>"$raw/bench.log" &
  local bg=$!
  sleep 1
  run "$p-lagload-w" "${watch[@]}" --endpoints "$W,$W" --key-prefix "$p/llw/" --total 200
  run "$p-lagload-r" "${watch[@]}" --endpoints "$R,$W" --key-prefix "$p/llr/" --total 200
  kill -INT "$bg" 2>/dev/null || true
  wait "$bg" 2>/dev/null || true
}

log "geoetcd, 1 region"
deploy geoetcd 1
measure geo1
stop_all
log "geoetcd, 3 regions"
deploy geoetcd 3
measure geo3
# Catch-up: R (m2; W is m1) is killed, W takes BENCH_CATCHUP_PUTS puts, R restarts.
[[ "$R" == "127.0.0.1:$r_port" ]] || { echo "regions: R is not m2" >&2; exit 1; }
kill -KILL "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
run geo3-catchup-load put --endpoints "$W" --transport h2 --conns 50 --clients 500 \
  --threads "$BENCH_THREADS" --total "$BENCH_CATCHUP_PUTS" --key-prefix catchup/
eval "$restart_r" '>>"$raw/geoetcd-3-m2.log" 2>&1 &'
pids[1]=$!
python3 - "$W" "$R" "$raw/geo3-catchup.json" <<'PY'
import json, subprocess, sys, time
w, r, out = sys.argv[1:4]
def revision(ep):
    p = subprocess.run(["etcdctl", "--endpoints", ep, "--command-timeout", "1s", "endpoint",
                        "status", "-w", "json"], capture_output=True, text=True,
                       env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    return json.loads(p.stdout)[0]["Status"]["header"]["revision"] if p.returncode == 0 else None
target = revision(w)
start = None
deadline = time.monotonic() + 300
while time.monotonic() < deadline:
    rev = revision(r)
    if rev is not None and start is None:
        start = (time.monotonic(), rev)
    if rev == target:
        break
    time.sleep(0.01)
else:
    sys.exit("regions: R did not catch up within 300 s")
took = time.monotonic() - start[0]
json.dump({"commits": target - start[1], "seconds": took,
           "commits_per_sec": (target - start[1]) / took}, open(out, "w"))
PY
stop_all
# The write quorum's cost: the same three regions with W acknowledging at its own fsync.
log "geoetcd, 3 regions, --write-quorum local"
deploy_extra=(--write-quorum local)
deploy_tag="-local"
deploy geoetcd 3
deploy_extra=()
deploy_tag=""
run geo3local-put1000 put --endpoints "$W" --transport h2 --conns "$BENCH_CONNS" \
  --clients "$BENCH_CLIENTS" --threads "$BENCH_THREADS" --duration "$BENCH_DURATION" \
  --warmup 1s --key-prefix "geo3local/put/"
run geo3local-put1-w put --endpoints "$W" --total "$BENCH_SINGLE_TOTAL" --key-prefix "geo3local/p1w/"
run geo3local-put1-r put --endpoints "$R" --total "$BENCH_SINGLE_TOTAL" --key-prefix "geo3local/p1r/"
stop_all
log "etcd, 3 members"
deploy etcd 3
measure etcd3
stop_all

python3 - "$raw" "$out_dir/$tag.md" "$(nproc)" <<'PY'
import json, os, sys
raw, out, cores = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    with open(os.path.join(raw, name + ".json")) as f:
        return json.load(f)
def lat(d): return "p50 %.2f / p99 %.2f ms" % (d["p50_ms"], d["p99_ms"])
def extra(d, k): return d.get(k, d.get("extras", {}).get(k))
rows = []
for label, fmt in [("put-1000 at W, puts/s", lambda p: "%.0f" % load(p + "-put1000")["requests_per_sec"]),
                   ("put-1000 at W, latency", lambda p: lat(load(p + "-put1000"))),
                   ("put-1 at W", lambda p: lat(load(p + "-put1-w"))),
                   ("put-1 at R", lambda p: lat(load(p + "-put1-r")) if p != "geo1" else "-"),
                   ("range-lin-1 at R", lambda p: lat(load(p + "-rangelin-r")) if p != "geo1" else "-"),
                   ("range-ser-1 at R", lambda p: lat(load(p + "-rangeser-r")) if p != "geo1" else "-"),
                   ("watch event at W, idle", lambda p: lat(load(p + "-lag-w"))),
                   ("watch event at R, idle", lambda p: lat(load(p + "-lag-r")) if p != "geo1" else "-"),
                   ("watch event at W, under put-1000", lambda p: lat(load(p + "-lagload-w"))),
                   ("watch event at R, under put-1000", lambda p: lat(load(p + "-lagload-r")) if p != "geo1" else "-")]:
    rows.append((label, fmt("geo1"), fmt("geo3"), fmt("etcd3")))
def cpu(p):
    c = load(p + "-put1000-cpu")
    n = c["puts"]
    return "W %.0f / all %.0f us per put; machine %.0f%% busy" % (
        1e6 * c["server_cpu_s"][0] / n, 1e6 * sum(c["server_cpu_s"]) / n,
        100.0 * c["machine_busy_cpu_s"] / (float(cores) * c["wall_s"]))
rows.append(("put-1000 server CPU", cpu("geo1"), cpu("geo3"), cpu("etcd3")))
cu = load("geo3-catchup")
rows.append(("catch-up of a restarted region, commits/s", "-",
             "%.0f (%d in %.2f s)" % (cu["commits_per_sec"], cu["commits"], cu["seconds"]), "-"))
g1 = load("geo1-put1000")["requests_per_sec"]
g3 = load("geo3-put1000")["requests_per_sec"]
e3 = load("etcd3-put1000")["requests_per_sec"]
with open(out, "w") as f:
    f.write("# Regions benchmark, %s cores, all processes on one machine\n\n" % cores)
    f.write("Produced by `bench/regions.sh`; raw JSON in `%s/`.\n\n" % os.path.basename(raw))
    f.write("| | geoetcd, 1 region | geoetcd, 3 regions | etcd 3.4, 3 members |\n|---|--:|--:|--:|\n")
    for r in rows:
        f.write("| %s | %s | %s | %s |\n" % r)
    f.write("\nput-1000 at W: 3 regions / 1 region = %.2f; geoetcd 3 regions / etcd 3 members = %.2f\n"
            % (g3 / g1, g3 / e3))
    f.write("\n| 3 regions, write quorum | majority (default) | local |\n|---|--:|--:|\n")
    f.write("| put-1000 at W, puts/s | %.0f | %.0f |\n"
            % (g3, load("geo3local-put1000")["requests_per_sec"]))
    f.write("| put-1 at W | %s | %s |\n" % (lat(load("geo3-put1-w")), lat(load("geo3local-put1-w"))))
    f.write("| put-1 at R | %s | %s |\n" % (lat(load("geo3-put1-r")), lat(load("geo3local-put1-r"))))
print(open(out).read())
PY
log "wrote $out_dir/$tag.md"
