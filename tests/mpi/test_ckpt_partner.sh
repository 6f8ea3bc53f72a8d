#!/bin/sh
# A lost "node": each rank has its own node-local directory; rank 1's is deleted (and its shared file)
# after step 2, and the restore rebuilds rank 1's shards from the in-memory copy of its partner.
# usage: test_ckpt_partner.sh MPIRUN CKPT_JOB NP BACKEND [FAKE_NODES]
# With FAKE_NODES the ranks form that many fake nodes (HCRT_FAKE_NODES) and every partner must be on
# another one ("other-host" in the manifest); without, all ranks share this host ("same-host").
set -u
MPIRUN=$1 JOB=$2 NP=$3 BE=$4 FAKE=${5:-0}
if [ "$FAKE" -gt 0 ]; then
    export HCRT_FAKE_NODES=$FAKE CKPT_JOB_PARTNER_MODE=other-host
else
    export CKPT_JOB_PARTNER_MODE=same-host
fi
T=$(mktemp -d /tmp/hcrt-ckpt-partner-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T"
$MPIRUN -x HCRT_FAKE_NODES -x CKPT_JOB_PARTNER_MODE --oversubscribe --bind-to none --mca btl self,tcp -np "$NP" "$JOB" partner "$T/ckpt" "$T/local" 0 "$BE"
