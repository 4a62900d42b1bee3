#!/usr/bin/env bash
# Installs what is missing (including a real etcd for the conformance suite), builds, and
# runs every test: unit tests, the layering check, integration and conformance suites.
# The last line is ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 -j"$(nproc)" "$@"
