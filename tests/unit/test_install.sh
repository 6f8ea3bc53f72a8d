#!/bin/sh
# tests/unit/test_install.sh MESON BUILD_DIR 'CC [FLAGS]' EXAMPLE_C MPIRUN [MPIRUN ARGS...] - an install works as
# installed: `meson install` into a staging directory (--destdir, a prefix the library was not configured
# for), then, with no LD_LIBRARY_PATH, HCRT_BACKEND_PATH or HCRT_LIBRARY, as a user would:
#   - examples/c/allreduce_checkpoint.c builds with `pkg-config --cflags --libs hcrt` from that prefix and
#     runs alone and as 2 ranks under mpirun, on sim devices found in the prefix's plugin directory;
#   - the installed tools run: hcrt-info finds the installed sim plugin, hcrt-bench runs 2 ranks on sim
#     buffers with --check, hcrt-ckpt lists the example's checkpoint, hcrt-run and hcrt-train start.
set -u
MESON=$1 BUILD=$2 CC=$3 EXAMPLE=$4 MPIRUN=$5
shift 5
T=$(mktemp -d /tmp/hcrt-install-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$MESON" install -C "$BUILD" --destdir "$T/root" --no-rebuild --quiet >"$T/install.log" 2>&1 ||
    { cat "$T/install.log"; fail "meson install --destdir"; }
pc=$(find "$T/root" -name hcrt.pc)
info=$(find "$T/root" -name hcrt-info -type f)
[ -n "$pc" ] && [ -n "$info" ] || fail "hcrt.pc or hcrt-info not installed"
echo "installed: $pc, $info"
bindir=$(dirname "$info")

unset LD_LIBRARY_PATH HCRT_BACKEND_PATH HCRT_LIBRARY
export PKG_CONFIG_PATH="$(dirname "$pc")" HCRT_CKPT_LOCAL_DIR=
$CC -Wall -Wextra -Werror "$EXAMPLE" $(pkg-config --cflags --libs hcrt) -o "$T/example" || fail "compile the example"
ldd "$T/example" | grep -q "libhcrt.so.1 => $T/root/" || { ldd "$T/example"; fail "the example does not load the installed libhcrt"; }

"$T/example" "$T/ckpt1" >"$T/out" 2>&1; rc=$?
cat "$T/out"
[ $rc -eq 0 ] && grep -q "rank 0 of 1 on sim: allreduce gave 1, restored checkpoint step 1 ('step 1'): ok" "$T/out" ||
    fail "the example alone (exit $rc)"
"$MPIRUN" "$@" -np 2 "$T/example" "$T/ckpt2" >"$T/out" 2>&1; rc=$?
cat "$T/out"
[ $rc -eq 0 ] && [ "$(grep -c "of 2 on sim: allreduce gave 3, restored checkpoint step 1 ('step 1'): ok" "$T/out")" -eq 2 ] ||
    fail "the example on 2 ranks (exit $rc)"

"$bindir/hcrt-info" --json >"$T/info.json" || fail "installed hcrt-info"
python3 - "$T/info.json" "$T/root" <<'PY' || fail "installed hcrt-info does not load the installed sim plugin"
import json, sys
r = json.load(open(sys.argv[1]))
sim = [b for b in r["backends"] if b["name"] == "sim"]
assert sim and sim[0]["status"] == "loaded" and sim[0]["path"].startswith(sys.argv[2]), r["backends"]
PY
"$MPIRUN" "$@" -np 2 "$bindir/hcrt-bench" --backend sim -b 8 -e 64K -f 64 -n 2 -w 1 --check >"$T/out" 2>&1 ||
    { cat "$T/out"; fail "installed hcrt-bench"; }
cat "$T/out"
"$bindir/hcrt-ckpt" list "$T/ckpt2" >"$T/out" 2>&1 && grep -Eq "^1 +committed" "$T/out" ||
    { cat "$T/out"; fail "installed hcrt-ckpt"; }
for tool in hcrt-run hcrt-train; do
    "$bindir/$tool" --help >"$T/out" 2>&1 || { cat "$T/out"; fail "installed $tool --help"; }
done
echo "ok: installed into a staging prefix; the example and the tools run without LD_LIBRARY_PATH"
