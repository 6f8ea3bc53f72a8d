#!/bin/sh
# tools/scripts/install-deps.sh - installs what hcrt needs to build and test, only what is missing, so a
# second run takes a moment. Debian packages through apt-get, Python packages through pip.
set -eu

# libopenblas0: only `hcrt-bench gemm` uses it (opened at run time), to compare hcrt's gemm with OpenBLAS.
pkgs="gcc make meson ninja-build pkg-config libopenmpi-dev openmpi-bin libhwloc-dev hwloc libjansson-dev
      libxxhash-dev clang libclang-rt-14-dev hipcc libamdhip64-dev python3 libopenblas0"

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

# numpy for the Python binding's tests (the binding itself needs only ctypes).
if ! python3 -c 'import numpy' 2>/dev/null; then
    echo "hcrt: installing numpy with pip"
    python3 -m pip install -q numpy || python3 -m pip install -q --break-system-packages numpy
fi
