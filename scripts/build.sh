#!/usr/bin/env bash
# Configures and builds geoetcd (Release) into ./build: every target (the server, the
# simulator, the bench and the tests), or only the targets named, e.g.
#   scripts/build.sh geoetcd                  # just the server (scripts/run.sh does this)
#   scripts/build.sh geoetcd geoetcd-bench
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" >/dev/null
fi
targets=()
if (($# > 0)); then targets=(--target "$@"); fi
cmake --build build -j"$(nproc)" "${targets[@]}"
