#!/usr/bin/env bash
# tools/scripts/gpu-check.sh - the checks that need a real GPU, for a machine that has one.
#
# usage: tools/scripts/gpu-check.sh [--build DIR] [--out FILE] [--sections LIST] [--mock] [--dry-run]
#
#   --build DIR     build tree to use (default build-gpu); configured with -Dcuda=enabled -Dnccl=enabled
#                   when it does not exist yet, then built
#   --out FILE      where the figures go (default DIR/gpu-check.txt); the console shows them too
#   --sections L    comma-separated sections to run (default: all); sections: plugin, compute, vendor,
#                   bench, train
#   --mock          run every command against the test suite's mock cuda plugin and mock NCCL
#                   (tests/plugin/nccl_mock) instead of the real ones, to exercise this script where
#                   there is no GPU (the figures are then the mock's, not a GPU's)
#   --dry-run       print the commands instead of running them
#
# Each section is one function below; a failing section does not stop the others, and the exit status
# is 0 only when every section passed. The whole run takes about 5 minutes on one GPU (most of it the
# build): the device time of a lent GPU is short, so run it once, read the figures file, fix, rerun.
set -u -o pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="$SRC/build-gpu"
OUT=""
SECTIONS="plugin,compute,vendor,bench,train"
MOCK=0
DRY=0

while [ $# -gt 0 ]; do
    case "$1" in
    --build) BUILD="$(realpath -m "$2")"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    --sections) SECTIONS="$2"; shift 2 ;;
    --mock) MOCK=1; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -n "$OUT" ] || OUT="$BUILD/gpu-check.txt"

if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
MPIRUN=(mpirun --oversubscribe --bind-to none)
FAILED=()

# Runs a command (or prints it with --dry-run), copying its output to the figures file.
run() {
    echo "\$ $*" | tee -a "$OUT"
    if [ "$DRY" = 1 ]; then
        return 0
    fi
    "$@" 2>&1 | tee -a "$OUT"
    return "${PIPESTATUS[0]}"
}

note() { echo "$*" | tee -a "$OUT"; }

build() {
    if [ ! -d "$BUILD" ]; then
        if [ "$MOCK" = 1 ]; then
            run meson setup "$BUILD" "$SRC" -Dcuda=enabled -Dnccl=enabled -Dhip=disabled || return 1
        else
            run meson setup "$BUILD" "$SRC" -Dcuda=enabled -Dnccl=enabled -Dbuildtype=release || return 1
        fi
    fi
    run ninja -C "$BUILD" || return 1
}

# The environment that points hcrt at the real plugins, or at the mocks.
plugin_env() {
    if [ "$MOCK" = 1 ]; then
        export HCRT_BACKEND_PATH="$BUILD/tests/plugin/nccl_mock"
        export HCRT_NCCL_LIBRARY="$BUILD/tests/plugin/nccl_mock/libnccl-mock.so"
    else
        export HCRT_BACKEND_PATH="$BUILD/backends/cuda:$BUILD/backends/sim"
    fi
    export HCRT_BACKENDS="cpu,cuda"
}

# ---- plugin (issues 2, 8): the plugin suite on the real cuda backend ----------------------------------
# backend_ops_cuda (every op of the ABI), compute_cuda (every compute op against the float64 reference,
# within the GPU tolerances of docs/plugin-abi.md) and gpu_kernel_math run on the GPU instead of skipping.
section_plugin() {
    local ok=0
    note "== plugin: $(date -u +%FT%TZ)"
    if [ "$MOCK" = 1 ]; then
        note "plugin: skipped with --mock (the plugin suite runs the mocks in every build already)"
        return 0
    fi
    run meson test -C "$BUILD" --suite plugin --print-errorlogs --num-processes 4 || ok=1
    # The tests that skip without a GPU must have run here.
    if [ "$DRY" = 0 ] && grep -Eq '"name": "(backend_ops_cuda|compute_cuda)".*"result": "SKIP"' \
        "$BUILD/meson-logs/testlog.json"; then
        note "plugin: FAIL: backend_ops_cuda or compute_cuda skipped on a machine with a GPU"
        ok=1
    fi
    [ "$ok" = 0 ] && note "plugin: PASS" || note "plugin: FAIL"
    return "$ok"
}

# ---- compute (issue 8): the compute extension's gemm on the GPU (cuBLAS) ----------------------------
# The job's gemm shapes timed on cuda device 0 (events), beside single-threaded OpenBLAS on the host.
section_compute() {
    local ok=0 bench="$BUILD/tools/hcrt-bench/hcrt-bench"
    plugin_env
    note "== compute: $(date -u +%FT%TZ)"
    run "$bench" gemm --backend cuda --repeat 5 || ok=1
    run "$bench" gemm --backend cuda --dtype bf16 --shape 256x2048x2048 --shape 2048x2048x256t --repeat 5 || ok=1
    run "$bench" gemm --backend cuda --dtype f16 --shape 256x2048x2048 --repeat 5 || ok=1
    [ "$ok" = 0 ] && note "compute: PASS" || note "compute: FAIL"
    return "$ok"
}

# ---- vendor (issue 11): the NCCL vendor path of the cuda plugin ---------------------------------------
# 1. hcrt-info shows the cuda backend loaded and NCCL usable (loaded lazily, on that question).
# 2. One rank: lazy loading, exact sums on cuda buffers, a 1-rank NCCL communicator through the plugin's
#    table, and small-message latency of hcrt's allreduce on cuda buffers beside NCCL's own.
# 3. Two ranks on the one GPU: the same, if NCCL allows two ranks per GPU (it reports "duplicate GPU"
#    otherwise, and hcrt must then fall back to its own path with a warning and right results).
# 4. hcrt-bench: allreduce on cuda buffers, 8 B to 64 MiB, --check, 1 and 2 ranks, vendor path on and off.
section_vendor() {
    local ok=0 t="$BUILD/tests/mpi/test_gpu_vendor_mock" bench="$BUILD/tools/hcrt-bench/hcrt-bench"
    plugin_env
    note "== vendor: $(date -u +%FT%TZ) $( [ "$MOCK" = 1 ] && echo '(MOCK: figures of the mock plugin, not a GPU)')"
    run "$BUILD/tools/hcrt-info/hcrt-info" || ok=1
    if [ "$DRY" = 0 ] && ! grep -q "^      vendor collectives: yes" <("$BUILD/tools/hcrt-info/hcrt-info" 2>/dev/null | sed -n '/^  cuda /,/^  [a-z]/p'); then
        note "vendor: FAIL: hcrt-info does not show NCCL usable for the cuda backend"
        ok=1
    fi
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$t" gpu cuda || ok=1
    run "${MPIRUN[@]}" -np 2 -x HCRT_DEVICE=cuda:0 "$t" gpu cuda || ok=1
    local maxb=64M
    [ "$MOCK" = 1 ] && maxb=8M # the mock devices hold 64 MiB
    local common=(-c allreduce -d f32 -b 8 -e "$maxb" -f 8 -n 200 -w 20 --check --backend cuda)
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$bench" "${common[@]}" || ok=1
    run "${MPIRUN[@]}" -np 2 -x HCRT_DEVICE=cuda:0 -x HCRT_LOG_LEVEL=info "$bench" "${common[@]}" || ok=1
    run "${MPIRUN[@]}" -np 2 -x HCRT_DEVICE=cuda:0 -x HCRT_VENDOR_COLL=0 "$bench" "${common[@]}" || ok=1
    [ "$ok" = 0 ] && note "vendor: PASS" || note "vendor: FAIL"
    return "$ok"
}

# ---- bench (issue 8): hcrt-bench on cuda buffers, 8 B to 1 GiB, with NCCL's own figures beside ---------
# hcrt's allreduce through its public API (the vendor path when NCCL takes the group, and staged with
# HCRT_VENDOR_COLL=0) and NCCL's allreduce through the plugin's table, in the same run, to 1 GiB.
section_bench() {
    local ok=0 t="$BUILD/tests/mpi/test_gpu_vendor_mock" bench="$BUILD/tools/hcrt-bench/hcrt-bench" maxb=1G
    plugin_env
    [ "$MOCK" = 1 ] && maxb=8M
    note "== bench: $(date -u +%FT%TZ)"
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$t" gpu cuda "$maxb" || ok=1
    local common=(-c allreduce -d f32 -b 8 -e "$maxb" -f 4 -n 20 -w 5 --check --backend cuda)
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$bench" "${common[@]}" || ok=1
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 -x HCRT_VENDOR_COLL=0 "$bench" "${common[@]}" || ok=1
    [ "$ok" = 0 ] && note "bench: PASS" || note "bench: FAIL"
    return "$ok"
}

# ---- train (issue 8): hcrt-train on the GPU -----------------------------------------------------------
# 1. One rank on cuda:0: the loss falls; samples/s of a GPU step. 2. --exact twice: the same weights hash
#    run to run on one device (cuBLAS is deterministic for fixed shapes on one GPU). 3. A mixed job, the
#    GPU beside a cpu rank: the balancer gives the GPU its share; the loss falls (exactness across
#    vendors is not expected: their gemms round differently, docs/exact-mode.md).
section_train() {
    local ok=0 train="$BUILD/tools/hcrt-train/hcrt-train" out="$BUILD/gpu-check-train"
    plugin_env
    export HCRT_BACKENDS="cpu,cuda"
    mkdir -p "$out"
    note "== train: $(date -u +%FT%TZ)"
    local args=(--steps 60 --log-every 20 --layers 512,1024,1024,10 --global-batch 4096 --micro-batch 256)
    # The mock computes on the host: a model it trains in seconds.
    [ "$MOCK" = 1 ] && args=(--steps 40 --log-every 20 --layers 64,128,10 --global-batch 512 --micro-batch 32)
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$train" "${args[@]}" --json "$out/one.json" || ok=1
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$train" "${args[@]}" --exact --steps 20 --json "$out/e1.json" || ok=1
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$train" "${args[@]}" --exact --steps 20 --json "$out/e2.json" || ok=1
    run "${MPIRUN[@]}" -np 1 -x HCRT_DEVICE=cuda:0 "$train" "${args[@]}" --json "$out/mixed.json" : \
        -np 1 -x HCRT_DEVICE=cpu "$train" "${args[@]}" || ok=1
    if [ "$DRY" = 0 ]; then
        python3 - "$out" <<'PY' 2>&1 | tee -a "$OUT" || ok=1
import json, sys
d = sys.argv[1]
r = {k: json.load(open(f"{d}/{k}.json")) for k in ("one", "e1", "e2", "mixed")}
bad = []
for k in ("one", "mixed"):
    if not r[k]["final_loss"] < 0.85 * r[k]["loss_curve"][0]:
        bad.append(f"{k}: the loss did not fall ({r[k]['loss_curve'][0]} -> {r[k]['final_loss']})")
if r["e1"]["weights_xxh64"] != r["e2"]["weights_xxh64"]:
    bad.append("--exact on one GPU gave different weights run to run")
print(f"train: GPU alone {r['one']['samples_per_s']:.0f} samples/s; GPU + cpu {r['mixed']['samples_per_s']:.0f} "
      f"samples/s, shares {r['mixed']['shares']}, efficiency {r['mixed']['efficiency']}")
for b in bad:
    print("train: FAIL:", b)
sys.exit(1 if bad else 0)
PY
    fi
    [ "$ok" = 0 ] && note "train: PASS" || note "train: FAIL"
    return "$ok"
}

: > "$OUT" 2>/dev/null || { mkdir -p "$(dirname "$OUT")" && : > "$OUT"; }
note "gpu-check.sh: sections $SECTIONS; build $BUILD; figures in $OUT"
if ! build; then
    note "gpu-check.sh: the build failed"
    exit 1
fi
IFS=, read -r -a want <<< "$SECTIONS"
for s in "${want[@]}"; do
    if ! declare -F "section_$s" >/dev/null; then
        note "gpu-check.sh: no section '$s'"
        FAILED+=("$s")
        continue
    fi
    "section_$s" || FAILED+=("$s")
done
if [ "${#FAILED[@]}" -gt 0 ]; then
    note "gpu-check.sh: FAILED: ${FAILED[*]}"
    exit 1
fi
note "gpu-check.sh: all sections passed"
