#!/bin/sh
# tools/scripts/install-deps.sh - installs what hcrt needs to build and test, only what is missing, so a
# second run takes a moment. Debian packages through apt-get, Python packages through pip.
set -eu

# libopenblas0: only `hcrt-bench gemm` uses it (opened at run time), to compare hcrt's gemm with OpenBLAS.
# slurm-wlm, munge, iproute2, util-linux: the cluster suite's fake nodes (network namespaces, nsenter,
# unshare) and the Slurm cluster on them.
pkgs="gcc make meson ninja-build pkg-config libopenmpi-dev openmpi-bin libhwloc-dev hwloc libjansson-dev
      libxxhash-dev clang libclang-rt-14-dev hipcc libamdhip64-dev python3 libopenblas0 python3-dev python3-pip
      python3-venv python3-setuptools slurm-wlm munge iproute2 util-linux"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    echo "hcrt: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # hipcc is optional (it builds the HIP plugin); a failure there must not stop the rest.
    if ! $SUDO apt-get install -y -qq $missing >/dev/null; then
        echo "hcrt: retrying without the optional HIP packages"
        rest=$(echo "$missing" | tr ' ' '\n' | grep -v -e '^hipcc$' -e '^libamdhip64-dev$' | tr '\n' ' ')
        $SUDO apt-get install -y -qq $rest >/dev/null
    fi
fi

# What the Python tests need (the binding itself needs only ctypes): numpy; pytest; mpi4py (the
# communicator-from-mpi4py path; it builds against Open MPI with mpicc when pip has no wheel); setuptools
# and wheel, with which the pip-install test builds ./python offline (--no-build-isolation).
py_missing=""
for mod in numpy pytest mpi4py setuptools wheel; do
    python3 -c "import $mod" 2>/dev/null || py_missing="$py_missing $mod"
done
if [ -n "$py_missing" ]; then
    echo "hcrt: installing Python packages with pip:$py_missing"
    python3 -m pip install -q $py_missing || python3 -m pip install -q --break-system-packages $py_missing
fi
