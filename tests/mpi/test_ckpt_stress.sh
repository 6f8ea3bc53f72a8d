#!/bin/sh
# Ranks of one node share the node-local level and save every step (waiting every third), keep 2:
# no save may fail, every committed step must verify, and each node-local file must equal its shared
# copy. The regression test for one rank's garbage collection removing a peer's in-flight step.
# usage: test_ckpt_stress.sh MPIRUN CKPT_JOB HCRT_CKPT NP BACKEND STEPS
set -u
MPIRUN=$1 JOB=$2 TOOL=$3 NP=$4 BE=$5 STEPS=$6
T=$(mktemp -d /tmp/hcrt-ckpt-stress-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T" CKPT_JOB_HCRT_CKPT="$TOOL"
$MPIRUN --oversubscribe --bind-to none --mca btl self,vader,tcp -x CKPT_JOB_HCRT_CKPT -np "$NP" \
    "$JOB" stress "$T/ckpt" "$T/local" "$STEPS" "$BE" || { echo "FAIL: $NP ranks saving every step ($BE)"; exit 1; }
echo "ok: $NP ranks on one node saved $STEPS steps ($BE), every committed step verified"
