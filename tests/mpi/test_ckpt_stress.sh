#!/bin/sh
# Ranks of one node share the node-local level and save every step (waiting every third), keep 2:
# no save may fail, every committed step must verify, and each node-local file must equal its shared
# copy. The regression test for one rank's garbage collection removing a peer's in-flight step.
# With FAKE_NODES the ranks form that many fake nodes that still share the one directory: the partner
# copies (other-host) are written there too, under the same garbage collection, and must equal the
# shared files.
# usage: test_ckpt_stress.sh MPIRUN CKPT_JOB HCRT_CKPT NP BACKEND STEPS [FAKE_NODES]
set -u
MPIRUN=$1 JOB=$2 TOOL=$3 NP=$4 BE=$5 STEPS=$6 FAKE=${7:-0}
export HCRT_FAKE_NODES="$FAKE" CKPT_JOB_PARTNER_COPIES=0
[ "$FAKE" -gt 1 ] && CKPT_JOB_PARTNER_COPIES=1
T=$(mktemp -d /tmp/hcrt-ckpt-stress-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T" CKPT_JOB_HCRT_CKPT="$TOOL"
$MPIRUN --oversubscribe --bind-to none --mca btl self,vader,tcp -x CKPT_JOB_HCRT_CKPT -x HCRT_FAKE_NODES -x CKPT_JOB_PARTNER_COPIES -np "$NP" \
    "$JOB" stress "$T/ckpt" "$T/local" "$STEPS" "$BE" || { echo "FAIL: $NP ranks saving every step ($BE)"; exit 1; }
echo "ok: $NP ranks on one node ($FAKE fake nodes) saved $STEPS steps ($BE), every committed step verified"
