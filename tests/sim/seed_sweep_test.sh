#!/usr/bin/env bash
# Seed sweep: runs geoetcd-sim over a range of seeds under one fault profile, with no bug
# injected, and fails on any violation. Each violating seed prints its verdict line, the
# history file and the command that reproduces it.
#
#   seed_sweep_test.sh <geoetcd-sim> <profile> <first seed> <last seed> [more geoetcd-sim flags]
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 <geoetcd-sim> <none|crash|network|disk|all> <first> <last> [flags...]" >&2
  exit 2
fi
sim="$1"
profile="$2"
first="$3"
last="$4"
shift 4
out="$("$sim" --seeds "$first..$last" --faults "$profile" "$@")" && status=0 || status=$?
printf '%s\n' "$out" | grep -v '^seed=.*result=ok$' || true
if [[ $status -ne 0 ]]; then
  echo "FAIL: violations in the $profile sweep over seeds $first..$last (see above)" >&2
  exit 1
fi
echo "PASS: $profile, seeds $first..$last: no violations"
