#!/bin/sh
# hcrt-ckpt on real checkpoints: list, verify (ok, flipped bit, truncated file), show, diff, gc, and
# its exit statuses. The checkpoints come from ckpt_job under mpirun.
# usage: test_hcrt_ckpt.sh MPIRUN CKPT_JOB HCRT_CKPT
set -u
MPIRUN=$1 JOB=$2 TOOL=$3
T=$(mktemp -d /tmp/hcrt-ckpt-tool-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T"
fail() { echo "FAIL: $*"; exit 1; }
expect() { # expect STATUS CMD... : runs hcrt-ckpt, checks its exit status, keeps its output in $T/out
    want=$1; shift
    "$TOOL" "$@" >"$T/out" 2>&1; got=$?
    cat "$T/out"
    [ "$got" -eq "$want" ] || fail "hcrt-ckpt $* exited $got, expected $want"
}
RUN="$MPIRUN --oversubscribe --bind-to none --mca btl self,tcp"
$RUN -np 3 "$JOB" save "$T/a" - 3 sim >/dev/null 2>&1 || fail "save a"
$RUN -np 2 "$JOB" save "$T/b" - 3 host >/dev/null 2>&1 || fail "save b"
mkdir "$T/a/step-00000009"   # a partial step newer than every committed one: a save in flight

expect 0 --help
expect 2
expect 2 frobnicate "$T/a"
expect 2 show "$T/a"
expect 0 list "$T/a"
grep -q "partial" "$T/out" || fail "list does not show the partial step"
grep -Eq "^3 +committed .* 3 +sim" "$T/out" || fail "list does not show step 3 (3 ranks, sim)"
expect 3 list "$T/none"
expect 0 verify "$T/a"
grep -q "step 2: ok" "$T/out" || fail "verify did not check step 2"
expect 3 verify "$T/a" 7
expect 0 show "$T/a" 3
grep -q "big .*f64 .*\[4000, 400\] sharded" "$T/out" || fail "show lacks tensor big"
grep -q "rows \[1334, 2667)  rank 1" "$T/out" || fail "show lacks rank 1's shard"
# Same values saved by 3 sim ranks and 2 host ranks: no difference; against step 2, differences.
expect 0 diff "$T/a" 3 "$T/b" 3
expect 1 diff "$T/a" 3 "$T/b" 2
grep -q "big .*differs: 1600000 elements, max |difference| 1e+07" "$T/out" || fail "diff figures"
# A tensor of another shape or dtype is named with both shapes or dtypes.
# (stress mode saves big as [400, 400]; the dtype of mask is edited in its manifest, same element size)
$RUN -x CKPT_JOB_HCRT_CKPT="$TOOL" -np 2 "$JOB" stress "$T/c" "$T/cl" 3 host >/dev/null 2>&1 || fail "save c"
sed -i 's/"dtype": "u8"/"dtype": "i8"/' "$T/c/step-00000003/manifest.json"
expect 1 diff "$T/b" 3 "$T/c" 3
grep -q "big .*differs in shape (\[4000, 400\] vs \[400, 400\])" "$T/out" || fail "diff does not name the shapes"
grep -q "mask .*differs in dtype (u8 vs i8)" "$T/out" || fail "diff does not name the dtypes"
# A flipped bit and a truncated file are reported by file, tensor and chunk.
printf '\001' | dd of="$T/a/step-00000003/rank-00002.bin" bs=1 seek=70000 conv=notrunc 2>/dev/null
expect 1 verify "$T/a" 3
grep -q "rank-00002.bin: tensor 'big' chunk 0 .*checksum mismatch" "$T/out" || fail "flipped bit not named"
truncate -s 1000 "$T/a/step-00000002/rank-00000.bin"
expect 1 verify "$T/a" 2
grep -q "rank-00000.bin: 1000 bytes" "$T/out" || fail "truncation not named"
expect 1 diff "$T/a" 3 "$T/b" 3
echo '{"format": "hcrt-checkpoint", "version": 1' > "$T/b/step-00000002/manifest.json"
expect 1 show "$T/b" 2
grep -q "not valid JSON" "$T/out" || fail "malformed manifest not reported"
expect 0 gc "$T/b" --keep 1
[ -d "$T/b/step-00000002" ] && fail "gc kept step 2"
[ -f "$T/b/step-00000003/manifest.json" ] || fail "gc removed step 3"
expect 0 gc "$T/a"
[ -d "$T/a/step-00000009" ] || fail "gc removed the partial step that may be in flight"
echo "ok"
