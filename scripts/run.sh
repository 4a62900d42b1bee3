#!/usr/bin/env bash
# Installs what is missing, builds the server (only the geoetcd target: not the tests, the
# simulator or the bench), and starts one geoetcd region serving etcd clients on
# 127.0.0.1:2379 with its data in ./default.geoetcd. Extra arguments are passed to the
# server (any etcd server flag), e.g. scripts/run.sh --max-txn-ops 256
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/build.sh geoetcd
exec build/geoetcd --name default --data-dir default.geoetcd \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster default=http://127.0.0.1:2380 "$@"
