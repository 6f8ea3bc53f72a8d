#!/bin/sh
# tools/scripts/demo.sh BUILD - the main job: 4 ranks under mpirun, two on sim devices (one of them at
# half speed) and two on the host (cpu backend), in one communicator.
set -eu
build=${1:-build}
[ $# -gt 0 ] && shift
export HCRT_BACKEND_PATH="$build/backends/sim:$build/backends/cuda:$build/backends/hip"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HCRT_SIM_DEVICES=2
train="$build/tools/hcrt-train/hcrt-train"
echo "== hcrt demo: 4 ranks, cpu and sim devices, one communicator =="
exec mpirun --oversubscribe --bind-to none \
    -np 1 -x HCRT_DEVICE=sim:0 "$train" "$@" : \
    -np 1 -x HCRT_DEVICE=sim:1 -x HCRT_SIM_SPEED=0.5 "$train" "$@" : \
    -np 2 -x HCRT_DEVICE=cpu "$train" "$@"
