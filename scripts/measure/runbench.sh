#!/bin/bash
# runbench.sh --out DIR TAG ARGS...: `pfdeploy bench --tag TAG ARGS`, its log in DIR/TAG.log, its
# results in $PFDEPLOY_STORE (default DIR/pfdeploy-results.db), the artifact cache ${CACHE} when set.
# Where the cgroup v1 cpu groups `bench` and `low` of README.md exist and are writable (root), the
# bench runs in `bench` and every other process is squeezed into `low` while it runs; elsewhere it
# runs as it is, and says so in one line. Nothing is written outside DIR (and the store).
set -u
if [ "${1:-}" != --out ] || [ -z "${2:-}" ] || [ -z "${3:-}" ]; then
  echo "usage: runbench.sh --out DIR TAG [pfdeploy bench options]" >&2
  exit 2
fi
OUTDIR=$2 TAG=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
PFDEPLOY=${PFDEPLOY:-$(cd "$HERE/../.." && pwd)/.venv/bin/pfdeploy}
mkdir -p "$OUTDIR" || exit 1
export PFDEPLOY_STORE=${PFDEPLOY_STORE:-$OUTDIR/pfdeploy-results.db}
[ -n "${CACHE:-}" ] && export PFDEPLOY_CACHE_DIR=$CACHE
LOG=$OUTDIR/$TAG.log
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f "wall %e s")
CG=/sys/fs/cgroup/cpu
if [ -w "$CG/bench/cgroup.procs" ] && [ -w "$CG/low/cgroup.procs" ] && [ -w "$CG/low/cpu.cfs_quota_us" ]; then
  ( "$HERE/inbench.sh" "${TIMER[@]}" "$PFDEPLOY" bench --tag "$TAG" "$@" > "$LOG" 2>&1; echo "exit $?" >> "$LOG" ) &
  "$HERE/squeeze.sh" $!   # while the bench's subshell lives
  wait
else
  echo "runbench.sh: no writable cgroup v1 groups $CG/{bench,low} (root and cgroup v1 needed): the bench runs without isolation from other processes" >&2
  "${TIMER[@]}" "$PFDEPLOY" bench --tag "$TAG" "$@" > "$LOG" 2>&1
  echo "exit $?" >> "$LOG"
fi
