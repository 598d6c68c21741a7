#!/bin/bash
# run `pfdeploy bench ARGS` in the bench cgroup with every other process squeezed; log to ${LOGDIR:-/tmp}/$TAG.log
TAG=$1; shift
cd "$(dirname "$0")/../.."
export PFDEPLOY_CACHE_DIR=${CACHE:-${PFDEPLOY_CACHE_DIR:-}} PFDEPLOY_STORE=${STORE:-./pfdeploy-results.db}
( "$(dirname "$0")"/inbench.sh /usr/bin/time -f "wall %e s" .venv/bin/pfdeploy bench --tag $TAG "$@" > ${LOGDIR:-/tmp}/$TAG.log 2>&1; echo "exit $?" >> ${LOGDIR:-/tmp}/$TAG.log ) &
sleep 1
P=$(pgrep -f "pfdeploy bench --tag $TAG" | head -1)
"$(dirname "$0")"/squeeze.sh $P
