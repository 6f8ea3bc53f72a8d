#!/bin/sh
# Partner copies outlive the process: a job on NP ranks in FAKE fake nodes (HCRT_FAKE_NODES), each fake
# node with one node-local directory shared by its ranks (LOCAL/node<n>), saves steps 1..3. Between
# attempts node 1 is lost (its node-local directory and its ranks' files of the newest step in the shared
# directory are deleted); new jobs must restore step 3 exactly from the partner copies that node 2 keeps
# in its node-local storage, and say so, on the same world size and on a smaller one running on the
# surviving nodes. A corrupt partner copy is skipped with a message (the next copy is used, or the
# restore falls back to step 2); losing a node and its partner falls back to step 2, and with step 2 gone
# too the restore fails with a clear error. Never wrong data: ckpt_job checks every value. A partner copy
# that cannot be written fails the save.
# usage: test_ckpt_partner_relaunch.sh MPIRUN CKPT_JOB NP FAKE SAVE_BACKEND
set -u
MPIRUN=$1 JOB=$2 NP=$3 FAKE=$4 BE=$5
T=$(mktemp -d /tmp/hcrt-ckpt-relaunch-XXXXXX)
trap 'rm -rf "$T" "$T.orig"' EXIT
export TMPDIR="$T"
RUN="$MPIRUN --oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_vader_single_copy_mechanism none"
fail() { echo "FAIL: $*"; exit 1; }
PER=$((NP / FAKE)) # ranks per fake node (NP is a multiple of FAKE)
[ $((PER * FAKE)) -eq "$NP" ] && [ "$FAKE" -ge 3 ] || fail "NP must be a multiple of FAKE, FAKE at least 3"

# The ranks of node n are n*PER .. n*PER+PER-1; node n keeps the partner copies of node n-1's ranks.
node_files() { # the data file names of node $1's ranks
    r=$(($1 * PER))
    while [ $r -lt $((($1 + 1) * PER)) ]; do printf 'rank-%05d.bin ' $r; r=$((r + 1)); done
}
sub() { ls -d "${2:-$T/local}/$1"/*/ 2>/dev/null | head -1; } # LOCAL/node<n>/<name>-<hash>/
lose_node() { # $1 node: its node-local directory and its ranks' files of step $2 in the shared directory
    rm -rf "$T/local/node$1"
    for f in $(node_files "$1"); do rm -f "$T/ckpt/step-0000000$2/$f"; done
}
reset() { rm -rf "$T/ckpt" "$T/local" && cp -a "$T.orig/ckpt" "$T.orig/local" "$T/"; }
# restore NAME NP NODES DIRS BACKEND EXPECT: a relaunch; EXPECT -1 wants a clean failure.
restore() {
    echo "== $1: restore on $2 ranks, $3 fake nodes (${4:-node0..}), $5, expecting step $6"
    $RUN -x HCRT_FAKE_NODES="$3" -x CKPT_JOB_NODE_DIRS="$4" -np "$2" \
        "$JOB" restore "$T/ckpt" "nodes:$T/local" "$6" "$5" >"$T/$1.log" 2>&1
    rc=$?
    cat "$T/$1.log"
    [ $rc -eq 0 ] || fail "$1: the restore did not give step $6"
}

# Attempt 0: save steps 1..3 (keep 2).
$RUN -x HCRT_FAKE_NODES="$FAKE" -np "$NP" "$JOB" save "$T/ckpt" "nodes:$T/local" 3 "$BE" >"$T/save.log" 2>&1 ||
    { cat "$T/save.log"; fail "the save job failed"; }
grep -q '"partner_mode": "other-host"' "$T/ckpt/step-00000003/manifest.json" || fail "partner_mode is not other-host"
n=0
while [ $n -lt "$FAKE" ]; do
    keeper=$(((n + 1) % FAKE))
    for f in $(node_files $n); do
        cmp -s "$T/ckpt/step-00000003/$f" "$(sub node$keeper)step-00000003/partner/$f" ||
            fail "node $keeper holds no partner copy of $f equal to the shared one"
        cmp -s "$T/ckpt/step-00000003/$f" "$(sub node$n)step-00000003/$f" || fail "node $n has no node-local $f"
        [ ! -e "$(sub node$n)step-00000003/partner/$f" ] || fail "node $n keeps a partner copy of its own $f"
    done
    [ ! -d "$(sub node$n)step-00000001" ] || fail "step 1 was not garbage-collected on node $n (keep 2)"
    n=$((n + 1))
done
ls -R "$T/local" | head -30
mv "$T" "$T.orig" && mkdir "$T" && reset
SMALL=$((NP - PER)) SURVIVORS=node0,node2
[ "$FAKE" -gt 3 ] && SURVIVORS="$SURVIVORS$(seq -s '' -f ',node%g' 3 $((FAKE - 1)))"

# Node 1 lost; the same world size relaunched (node 1 comes back empty).
lose_node 1 3
restore same "$NP" "$FAKE" "" sim 3
for f in $(node_files 1); do
    grep -q "step 3: $f restored from the partner copy" "$T/same.log" || fail "same: $f was not restored from its partner copy"
done

# Node 1 lost; a smaller job on the surviving nodes, into host and sim buffers.
reset
lose_node 1 3
restore smaller "$SMALL" $((FAKE - 1)) "$SURVIVORS" mix 3
for f in $(node_files 1); do
    grep -q "step 3: $f restored from the partner copy" "$T/smaller.log" || fail "smaller: $f was not restored from its partner copy"
done

# A corrupt partner copy, the shared file intact: skipped with a message, the shared copy used.
reset
F=$(node_files 1 | cut -d' ' -f1)
printf '\377' | dd of="$(sub node2)step-00000003/partner/$F" bs=1 seek=100000 conv=notrunc 2>/dev/null
rm -rf "$T/local/node1"
restore corrupt_shared_ok "$SMALL" $((FAKE - 1)) "$SURVIVORS" host 3
grep -q "partner/$F: tensor 'big', chunk 0.* fails its checksum" "$T/corrupt_shared_ok.log" ||
    fail "the corrupt partner copy of $F was not reported"

# A corrupt partner copy and node 1 lost: no intact copy of step 3, so step 2 (never wrong data).
reset
printf '\377' | dd of="$(sub node2)step-00000003/partner/$F" bs=1 seek=100000 conv=notrunc 2>/dev/null
lose_node 1 3
restore corrupt_fallback "$NP" "$FAKE" "" sim 2
grep -q "partner/$F: tensor 'big', chunk 0.* fails its checksum; this copy is skipped" "$T/corrupt_fallback.log" ||
    fail "the corrupt partner copy of $F was not reported"
grep -q "falling back to step 2" "$T/corrupt_fallback.log" || fail "the fallback to step 2 was not reported"

# Node 1 and its partner node 2 lost: step 3 is gone, step 2 comes from the shared directory.
reset
lose_node 1 3
rm -rf "$T/local/node2"
restore node_and_partner "$NP" "$FAKE" "" sim 2
grep -q "falling back to step 2" "$T/node_and_partner.log" || fail "the fallback to step 2 was not reported"

# ...and with node 1's files of step 2 gone from the shared directory too, nothing can be restored.
reset
lose_node 1 3
lose_node 1 2
rm -rf "$T/local/node2"
restore nothing "$NP" "$FAKE" "" sim -1
grep -q "no committed step of .* could be restored; first failure: rank [0-9]*: step 3: rank-0000[0-9].bin" \
    "$T/nothing.log" || fail "the error does not say which file was missing"
# A keeper that cannot write its partner copy fails the save on every rank, naming the rank and the
# file (a file squats where node 2's partner directory of step 2 must go), and the step stays uncommitted.
D2="$T/ckpt2" L2="$T/local2"
$RUN -x HCRT_FAKE_NODES="$FAKE" -np "$NP" "$JOB" save "$D2" "nodes:$L2" 1 sim >"$T/pfail.log" 2>&1 ||
    { cat "$T/pfail.log"; fail "the first save into $D2 failed"; }
mkdir -p "$(sub node2 "$L2")step-00000002" && : >"$(sub node2 "$L2")step-00000002/partner"
$RUN -x HCRT_FAKE_NODES="$FAKE" -np "$NP" "$JOB" save "$D2" "nodes:$L2" 2 sim >"$T/pfail.log" 2>&1 &&
    { cat "$T/pfail.log"; fail "a save whose partner copy could not be written succeeded"; }
cat "$T/pfail.log"
grep -q "checkpoint step 2 was not committed: rank $((2 * PER)) could not persist its data: .*partner copy: .*step-00000002/partner" \
    "$T/pfail.log" || fail "the failed partner copy was not reported by rank and file"
[ ! -f "$D2/step-00000002/manifest.json" ] || fail "step 2 was committed without its partner copies"
echo "ok: partner copies restored a lost node's shards on $NP and $SMALL ranks; corrupt or lost copies never gave wrong data"
