#!/bin/sh
# Saves with one world size and backend, restores with others: 4->2, 2->3, 3->5 ranks, sim <-> host.
# usage: test_ckpt_reshard.sh MPIRUN CKPT_JOB SAVE_NP SAVE_BACKEND RESTORE_NP RESTORE_BACKEND [LOCAL]
set -u
MPIRUN=$1 JOB=$2 SNP=$3 SBE=$4 RNP=$5 RBE=$6 LOCAL=${7:--}
T=$(mktemp -d /tmp/hcrt-ckpt-reshard-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T"
[ "$LOCAL" = local ] && LOCAL="$T/local"
RUN="$MPIRUN --oversubscribe --bind-to none --mca btl self,tcp"
$RUN -np "$SNP" "$JOB" save "$T/ckpt" "$LOCAL" 3 "$SBE" || { echo "save on $SNP ranks failed"; exit 1; }
$RUN -np "$RNP" "$JOB" restore "$T/ckpt" "$LOCAL" 3 "$RBE" || { echo "restore on $RNP ranks failed"; exit 1; }
echo "saved on $SNP ranks ($SBE), restored on $RNP ranks ($RBE): ok"
