#!/bin/bash
# runbench.sh TAG ARGS...: `pfdeploy bench --tag TAG ARGS` in the bench cgroup with every other process
# squeezed (README.md here); log in ${LOGDIR:-/tmp}/TAG.log, store ${STORE:-./pfdeploy-results.db},
# artifact cache ${CACHE} when set.
TAG=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
export PFDEPLOY_STORE=${STORE:-./pfdeploy-results.db}
[ -n "${CACHE:-}" ] && export PFDEPLOY_CACHE_DIR=$CACHE
LOG=${LOGDIR:-/tmp}/$TAG.log
( "$HERE/inbench.sh" /usr/bin/time -f "wall %e s" .venv/bin/pfdeploy bench --tag "$TAG" "$@" > "$LOG" 2>&1; echo "exit $?" >> "$LOG" ) &
sleep 1
P=$(pgrep -f "pfdeploy bench --tag $TAG" | head -1)
"$HERE/squeeze.sh" "$P"
