#!/usr/bin/env bash
# The bugs the simulator must catch: for each deliberately wrong behaviour
# (geoetcd-sim --inject-bug), some seed among the first 50 must report a violation, and the
# same seeds and profiles without the bug must report none.
#
#   bugs_test.sh <geoetcd-sim> [seeds, default 50]
set -uo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 <geoetcd-sim> [seeds]" >&2
  exit 2
fi
sim="$1"
seeds="${2:-50}"
# bug:profile. A crash is what exposes reuse-revision-after-crash and txn-not-atomic; the
# others show without faults.
cases=(
  ack-before-fsync:none
  stale-linearizable-read:none
  skip-watch-event:none
  reuse-revision-after-crash:crash
  txn-not-atomic:crash
  lease-revoke-not-atomic:none
  # Region bugs (bug:profile:regions): replication and forwarding between three regions.
  apply-out-of-order:all:3
  drop-replicated-commit:none:3
  ack-forward-before-apply:none:3
  # Shows only when a region repairs, i.e. after crashes or partitions.
  merge-prefers-older:all:3
)
failed=0
for c in "${cases[@]}"; do
  IFS=: read -r bug profile regions <<<"$c"
  regions="${regions:-1}"
  caught=()
  for seed in $(seq 1 "$seeds"); do
    # One process per seed: a bug may make the Node abort on a failed invariant.
    line="$("$sim" --seed "$seed" --faults "$profile" --regions "$regions" --inject-bug "$bug" 2>/dev/null | tail -n 1)"
    if [[ "$line" == *"result=violation:"* ]]; then
      caught+=("$seed:${line##*result=violation:}")
    elif [[ "$line" != *"result=ok" ]]; then
      echo "FAIL: $bug seed $seed: no verdict line: $line" >&2
      failed=1
    fi
  done
  if [[ ${#caught[@]} -eq 0 ]]; then
    echo "FAIL: --inject-bug $bug --faults $profile: no violation in seeds 1..$seeds" >&2
    failed=1
  else
    echo "caught $bug ($profile) at ${#caught[@]}/$seeds seeds; first: ${caught[*]:0:8}"
  fi
  clean="$("$sim" --seeds "1..$seeds" --faults "$profile" --regions "$regions" | tail -n 1)"
  if [[ "$clean" != *"violations=0"* ]]; then
    echo "FAIL: without a bug, $profile seeds 1..$seeds: $clean" >&2
    failed=1
  fi
done
if [[ $failed -ne 0 ]]; then exit 1; fi
echo "PASS: every injected bug caught; no violations without one"
