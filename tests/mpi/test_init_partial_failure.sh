#!/bin/sh
# tests/mpi/test_init_partial_failure.sh MPIRUN HCRT_INFO - when hcrt_init fails on one rank only (here a
# bad HCRT_DEVICE on rank 1), the job must end with an error naming the cause, never hang: the failing
# rank must not wait in MPI_Finalize for ranks that are already past their own init.
set -u
mpirun=$1
info=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s)
timeout 60 "$mpirun" --oversubscribe --bind-to none -np 1 "$info" : -np 1 -x HCRT_DEVICE=sim:9 "$info" >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
if [ "$rc" -eq 124 ]; then
    echo "FAIL: the job hung (killed by timeout after ${elapsed}s)"
    exit 1
fi
if [ "$rc" -eq 0 ]; then
    echo "FAIL: the job succeeded although rank 1 could not initialise"
    exit 1
fi
if ! grep -q "HCRT_DEVICE='sim:9'" "$out"; then
    echo "FAIL: the error does not name HCRT_DEVICE='sim:9'"
    exit 1
fi
echo "ok: job ended with status $rc after ${elapsed}s, naming the cause"
