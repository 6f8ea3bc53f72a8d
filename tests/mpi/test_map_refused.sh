#!/bin/sh
# tests/mpi/test_map_refused.sh MPIRUN TEST_COLL - a sim rank whose backend refuses to map the node window
# halfway (HCRT_SIM_FAULT=register_fail=2: the second of three segments) must undo the first registration,
# say so, copy through the window instead, and still produce the host run's results, next to a host rank
# and a sim rank that maps the window.
set -u
mpirun=$1
coll=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# Exported rather than -x: mpirun applies -x options given before the first app context to that one only.
export HCRT_SIM_DEVICES=1 HCRT_TIMEOUT=120 HCRT_LOG_LEVEL=debug HCRT_LOG_SUBSYS=coll
timeout 120 "$mpirun" --oversubscribe --bind-to none --mca btl self,vader,tcp \
    --mca btl_vader_single_copy_mechanism none \
    -np 1 -x HCRT_DEVICE=sim:0 -x HCRT_SIM_FAULT=register_fail=2 "$coll" mixed : \
    -np 1 -x HCRT_DEVICE=cpu "$coll" mixed : \
    -np 1 -x HCRT_DEVICE=sim:0 "$coll" mixed >"$out" 2>&1
rc=$?
cat "$out"
if [ "$rc" -ne 0 ]; then
    echo "FAIL: the job ended with status $rc"
    exit 1
fi
if ! grep -q "^\[[^]]*:0\] .*cannot map the node window (.*injected refusal to pin.*); staging instead" "$out"; then
    echo "FAIL: rank 0 did not report falling back to copies after the refused registration"
    exit 1
fi
if ! grep -q "^\[[^]]*:2\] .*node window (3 segments of [0-9]* bytes) mapped for the kernels of sim:0" "$out"; then
    echo "FAIL: rank 2 did not map the window"
    exit 1
fi
if grep -q "^\[[^]]*:0\] .*mapped for the kernels" "$out"; then
    echo "FAIL: rank 0 reports a mapped window although its registration was refused"
    exit 1
fi
echo "ok: rank 0 copied through the window, rank 2 reduced in it, results equal the host run"
