#!/bin/sh
# A job saving steps 1..3 is killed (SIGKILL through HCRT_FAULT) in one phase of step 3's save, or has
# step 3's data corrupted; a new job must restore the newest step that was committed intact, bit for
# bit, and the partial step must be ignored.
# usage: test_ckpt_kill.sh MPIRUN CKPT_JOB KIND PHASE RANK EXPECT_STEP
#   KIND kill|corrupt|truncate; PHASE snapshot|write|before_agree|before_rename|gc; EXPECT_STEP the step
#   restored. truncate cuts rank RANK's step-3 file short on every level after a clean save.
set -u
MPIRUN=$1 JOB=$2 KIND=$3 PHASE=$4 RANK=$5 EXPECT=$6
NP=3
T=$(mktemp -d /tmp/hcrt-ckpt-fault-XXXXXX)
trap 'rm -rf "$T"' EXIT
export TMPDIR="$T"
RUN="$MPIRUN --oversubscribe --bind-to none --mca btl self,tcp -np $NP"
fail() { echo "FAIL: $*"; exit 1; }

FAULT="$KIND:rank=$RANK:step=3:phase=$PHASE"
[ "$KIND" = truncate ] && FAULT=""
$RUN -x HCRT_FAULT="$FAULT" "$JOB" save "$T/ckpt" "$T/local" 3 sim >"$T/save.log" 2>&1
rc=$?
cat "$T/save.log"
if [ "$KIND" = kill ]; then
    [ $rc -ne 0 ] || fail "the job survived the injected kill"
    grep -q "hcrt fault: rank $RANK killed at ckpt $PHASE 3" "$T/save.log" || fail "no injected kill in phase $PHASE"
else
    [ $rc -eq 0 ] || fail "the save job failed (status $rc)"
fi
ls -R "$T/ckpt" | head -40
if [ "$KIND" = truncate ]; then
    for f in "$T/ckpt/step-00000003/rank-0000$RANK.bin" "$T"/local/node$RANK/*/step-00000003/rank-0000$RANK.bin; do
        [ -f "$f" ] || fail "no file $f to truncate"
        truncate -s 3000000 "$f"
    done
fi

M3="$T/ckpt/step-00000003/manifest.json"
case "$PHASE:$KIND" in
    gc:kill) [ -f "$M3" ] || fail "step 3 should be committed before gc runs"
             [ -f "$T/ckpt/step-00000002/manifest.json" ] || fail "gc removed step 2, one of the newest two"
             # gc removes a step's manifest first, then its data: killed in between, step 1 is no longer
             # committed (restore ignores it) even if some of its data is still there.
             [ ! -f "$T/ckpt/step-00000001/manifest.json" ] || fail "step 1 is still committed after its gc began"
             [ -d "$T/ckpt/step-00000001" ] || fail "the kill between the manifest's removal and the data's left nothing to check" ;;
    *:kill)  [ ! -f "$M3" ] || fail "step 3 is committed although the job died in phase $PHASE" ;;
esac
[ "$PHASE" = before_rename ] && { [ -f "$M3.tmp" ] || fail "expected the unrenamed manifest.json.tmp"; }

$RUN "$JOB" restore "$T/ckpt" "$T/local" "$EXPECT" sim >"$T/restore.log" 2>&1
rc=$?
cat "$T/restore.log"
[ $rc -eq 0 ] || fail "restore after $KIND in $PHASE did not give step $EXPECT"
if [ "$KIND" != kill ]; then
    grep -q "rank-0000$RANK.bin" "$T/restore.log" || fail "the corrupt file was not named"
    grep -q "falling back to step 2" "$T/restore.log" || fail "the fallback was not reported"
fi
# A relaunched job continues in the same directories: it restores step EXPECT, saves the next step over
# whatever the failed job left of it (a partial, uncommitted or corrupt step 3), and that step restores.
NEXT=$((EXPECT + 1))
$RUN "$JOB" resume "$T/ckpt" "$T/local" "$NEXT" sim >"$T/resume.log" 2>&1
rc=$?
cat "$T/resume.log"
[ $rc -eq 0 ] || fail "the relaunched job could not save step $NEXT after restoring step $EXPECT and restore it"
[ -f "$T/ckpt/step-0000000$NEXT/manifest.json" ] || fail "step $NEXT is not committed"
[ ! -f "$T/ckpt/step-0000000$NEXT/manifest.json.tmp" ] || fail "step $NEXT still has a manifest.json.tmp"
echo "ok: $KIND in $PHASE -> restored step $EXPECT; step $NEXT saved over it and restored"
