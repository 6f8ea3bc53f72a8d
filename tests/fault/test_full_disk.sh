#!/bin/sh
# A save that meets a full disk (a real ENOSPC, from a 1.2 MB tmpfs holding the checkpoint directory)
# fails on every rank, naming the rank and the cause, and ends the job with HCRT_EXIT_CKPT_IO (122).
# usage: test_full_disk.sh MPIRUN FAULT_JOB FAULT_RUN MPIRUN_ARGS...
set -u
MPIRUN=$1 JOB=$2 RUNNER=$3
shift 3
T=$(mktemp -d /tmp/hcrt-full-disk-XXXXXX)
cleanup() { umount "$T/disk" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$T/disk"
if ! mount -t tmpfs -o size=1200k tmpfs "$T/disk" 2>/dev/null; then
    echo "SKIP: cannot mount a tmpfs here (needs root)"
    exit 77
fi
python3 "$RUNNER" --status 122 \
    --expect 'checkpoint step [0-9]+ was not committed: rank [01] could not persist its data: ERR_IO: .*No space left on device.*exit status 122' \
    --reject 'WRONG DATA' \
    -- "$MPIRUN" "$@" -x HCRT_TIMEOUT=10 -np 2 "$JOB" ckpt host 6 "$T/disk"
