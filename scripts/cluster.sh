#!/usr/bin/env bash
# A local multi-region deployment in one command: N geoetcd regions on 127.0.0.1, started
# with etcd's own cluster flags, their data and logs under ./cluster/.
#
#   scripts/cluster.sh start [N]   N regions r1..rN (2..5, default 3); builds if needed.
#                                  r1 is the write region. Extra flags after N go to every
#                                  region, e.g. scripts/cluster.sh start 3 --forward-timeout 2s
#   scripts/cluster.sh stop        SIGTERM every region (SIGKILL after 10 s)
#   scripts/cluster.sh status      which regions run, and etcdctl's endpoint status of each
#
# Ports follow etcd's Procfile: region i serves clients on i2379 and peers on i2380
# (r1: 2379/2380, r2: 22379/22380, r3: 32379/32380, ...). Data survives stop/start; remove
# ./cluster/ to begin anew.
set -euo pipefail
cd "$(dirname "$0")/.."
# GEOETCD_CLUSTER_DIR and GEOETCD_BIN move the data and pick the binary (the tests use them).
root=${GEOETCD_CLUSTER_DIR:-$PWD/cluster}
bin=${GEOETCD_BIN:-$PWD/build/geoetcd}

client_port() { if (($1 == 1)); then echo 2379; else echo "${1}2379"; fi; }
peer_port() { if (($1 == 1)); then echo 2380; else echo "${1}2380"; fi; }

regions() { ls "$root"/*.pid 2>/dev/null | sed 's|.*/\(r[0-9]\)\.pid|\1|' || true; }

alive() { [[ -f "$root/$1.pid" ]] && kill -0 "$(cat "$root/$1.pid")" 2>/dev/null; }

start() {
  local n=${1:-3}
  if [[ $# -gt 0 ]]; then shift; fi
  if ! [[ $n =~ ^[2-5]$ ]]; then
    echo "cluster.sh: start takes a region count from 2 to 5, got '$n'" >&2
    exit 2
  fi
  for r in $(regions); do
    if alive "$r"; then
      echo "cluster.sh: $r is already running (pid $(cat "$root/$r.pid")); run stop first" >&2
      exit 1
    fi
  done
  if [[ ! -x $bin ]]; then
    scripts/deps.sh build
    scripts/build.sh geoetcd
  fi
  mkdir -p "$root"
  local cluster="" i
  for ((i = 1; i <= n; i++)); do
    cluster+="${cluster:+,}r$i=http://127.0.0.1:$(peer_port $i)"
  done
  for ((i = 1; i <= n; i++)); do
    local c="http://127.0.0.1:$(client_port $i)" p="http://127.0.0.1:$(peer_port $i)"
    "$bin" --name "r$i" --data-dir "$root/r$i" \
      --listen-client-urls "$c" --advertise-client-urls "$c" \
      --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
      --initial-cluster "$cluster" --initial-cluster-token geoetcd-local "$@" \
      >>"$root/r$i.log" 2>&1 </dev/null &
    echo $! >"$root/r$i.pid"
  done
  # Ready when every region answers a serializable read (its own state, no peer needed).
  local deadline=$((SECONDS + 30)) r
  for ((i = 1; i <= n; i++)); do
    r=r$i
    until (exec 3<>"/dev/tcp/127.0.0.1/$(client_port $i)") 2>/dev/null; do
      if ! alive "$r"; then
        echo "cluster.sh: $r exited; last lines of $root/$r.log:" >&2
        tail -5 "$root/$r.log" >&2
        exit 1
      fi
      if ((SECONDS > deadline)); then
        echo "cluster.sh: $r is not listening after 30 s; see $root/$r.log" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  local endpoints=""
  for ((i = 1; i <= n; i++)); do endpoints+="${endpoints:+,}127.0.0.1:$(client_port $i)"; done
  echo "cluster.sh: $n regions running, r1 is the write region; data and logs in $root"
  echo "  etcdctl --endpoints $endpoints endpoint status -w table"
  echo "  etcdctl --endpoints 127.0.0.1:$(client_port 2) put greeting hello"
  echo "  etcdctl --endpoints 127.0.0.1:$(client_port "$n") get greeting"
}

stop() {
  local r pid
  for r in $(regions); do
    pid=$(cat "$root/$r.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
      echo "cluster.sh: stopped $r (pid $pid)"
    fi
    rm -f "$root/$r.pid"
  done
}

status() {
  local r i any=0 endpoints=""
  for r in $(regions); do
    any=1
    i=${r#r}
    if alive "$r"; then
      echo "$r: running, pid $(cat "$root/$r.pid"), client URL http://127.0.0.1:$(client_port "$i")"
      endpoints+="${endpoints:+,}127.0.0.1:$(client_port "$i")"
    else
      echo "$r: not running (see $root/$r.log)"
    fi
  done
  if ((any == 0)); then
    echo "cluster.sh: no cluster here; start one with: scripts/cluster.sh start 3"
    return 0
  fi
  if [[ -n $endpoints ]] && command -v etcdctl >/dev/null; then
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w table
  fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: scripts/cluster.sh start [N] [geoetcd flags...] | stop | status" >&2
    exit 2
    ;;
esac
