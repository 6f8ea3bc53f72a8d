#!/bin/sh
# tools/scripts/demo.sh BUILD [hcrt-train options] - the main job: hcrt-train on 4 ranks of one
# communicator, three on sim devices of speeds 1, 0.5 and 0.25 and one on the host (cpu backend). The
# balancer gives each its share of every global batch by measured speed; the loss falls; a checkpoint is
# saved every 20 steps; the last lines give the efficiency against the ranks' solo speeds.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HCRT_SIM_DEVICES=1
train="$build/tools/hcrt-train/hcrt-train"
ckpt=$(mktemp -d "${TMPDIR:-/tmp}/hcrt-demo-ckpt-XXXXXX")
trap 'rm -rf "$ckpt"' EXIT
set -- --layers 256,512,512,10 --steps 60 --global-batch 1024 --micro-batch 32 --ckpt-dir "$ckpt" \
    --ckpt-every 20 --log-every 10 "$@"
echo "== hcrt demo: hcrt-train on 4 ranks: sim devices at speeds 1, 0.5, 0.25 and a cpu rank =="
mpirun --oversubscribe --bind-to none \
    -np 1 -x HCRT_DEVICE=sim:0 -x HCRT_SIM_SPEED=1 "$train" "$@" : \
    -np 1 -x HCRT_DEVICE=sim:0 -x HCRT_SIM_SPEED=0.5 "$train" "$@" : \
    -np 1 -x HCRT_DEVICE=sim:0 -x HCRT_SIM_SPEED=0.25 "$train" "$@" : \
    -np 1 -x HCRT_DEVICE=cpu "$train" "$@"
echo "== the committed checkpoints (hcrt-ckpt list) =="
"$build/tools/hcrt-ckpt/hcrt-ckpt" list "$ckpt"
