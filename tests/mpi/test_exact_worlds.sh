#!/bin/sh
# tests/mpi/test_exact_worlds.sh MPIRUN TEST_BALANCE MPIRUN_ARGS... - exact sums of the same micro-batch
# gradients are bitwise identical at every world size: `test_balance exact` (which checks three splits
# and each rank alone within one job) prints a hash of its result on rank 0; 1, 3, 4 and 5 ranks (4
# on two fake nodes, so the int64 sum takes the hierarchical path) must print the same one.
set -u
mpirun=$1
prog=$2
shift 2
first=""
for run in "1" "3" "4 -x HCRT_FAKE_NODES=2" "5"; do
    np=${run%% *}
    extra=""
    [ "$run" != "$np" ] && extra=${run#* }
    # shellcheck disable=SC2086
    out=$("$mpirun" "$@" -x HCRT_SIM_DEVICES=1 -x HCRT_TIMEOUT=120 $extra -np "$np" "$prog" exact 2>&1)
    rc=$?
    hash=$(printf '%s\n' "$out" | sed -n 's/^exact-hash \([0-9a-f]*\)$/\1/p')
    if [ "$rc" -ne 0 ] || [ -z "$hash" ]; then
        printf '%s\n' "$out"
        echo "FAIL: $np ranks: exit status $rc, hash '$hash'"
        exit 1
    fi
    echo "$np ranks ($run): exact-hash $hash"
    if [ -z "$first" ]; then
        first=$hash
    elif [ "$hash" != "$first" ]; then
        echo "FAIL: $np ranks give $hash, 1 rank gave $first"
        exit 1
    fi
done
echo "ok: the same exact sums on 1, 3, 4 and 5 ranks"
