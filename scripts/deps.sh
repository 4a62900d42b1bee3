#!/usr/bin/env bash
# Installs the Debian 12 packages geoetcd needs, only those missing.
#   scripts/deps.sh build   - what building and running the server needs
#   scripts/deps.sh test    - plus a real etcd 3.4, etcdctl, python3-etcd3, python3-hpack and Node.js
#                             with npm for the conformance suites, and python3-prometheus-client
#                             and Prometheus for the metrics suite
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config
            libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
            librocksdb-dev libxxhash-dev libcxxopts-dev libyaml-cpp-dev libasio-dev libabsl-dev
            libnghttp2-dev libcpp-httplib-dev
            libgtest-dev libgmock-dev libtcmalloc-minimal4)
test_pkgs=(etcd-server etcd-client python3 python3-etcd3 python3-grpcio python3-protobuf
           python3-hpack python3-h2 python3-prometheus-client prometheus)

want=("${build_pkgs[@]}")
if [[ "${1:-build}" == "test" ]]; then
  want+=("${test_pkgs[@]}")
  # The Node.js client suite needs node and npm; a machine that has them from elsewhere
  # (nvm, NodeSource) keeps its own.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then want+=(nodejs npm); fi
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi

echo "deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# Debian's etcd-server package would start a system etcd on :2379 where a service manager
# runs; policy-rc.d keeps package installs from starting daemons.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  trap '"${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
