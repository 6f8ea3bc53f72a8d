#!/usr/bin/env python3
"""tests/fault/test_matrix.py - the kill-anywhere matrix (suite fault; docs/fault-injection.md).

usage: test_matrix.py --hcrt-run X --hcrt-train X --hcrt-ckpt X --mpirun X --mpirun-args "..." GROUP
       test_matrix.py ... --list            (the cases of every group)
       test_matrix.py ... GROUP CASE...     (some cases of a group)

Each case runs hcrt-run over `hcrt-train --exact --ckpt-dir D --ckpt-every 2 --check-replicas 1` with
one HCRT_FAULT rule keyed to the launch it must fire in (attempt=0, or attempt=1 after a kill in launch 0
for the faults of a restore), on a device mix, and checks:
  - hcrt-run exits 0, after as many restarts as the fault causes (1 per failed launch, 0 for slow), each
    failed launch with the exit policy's status for that site and kind (include/hcrt/exit.h);
  - the fault fired (its "hcrt fault:" or "injected ..." line, or for slow the launch's duration);
  - the final weights_xxh64 equals the failure-free run's on the same mix, which is also the same on
    every mix (--exact);
  - after a restart, restored_from is a committed step;
  - every committed step left in the checkpoint directory verifies (hcrt-ckpt verify).
Mixes: sim3 (3 ranks: sim at speed 1, sim at speed 0.5, cpu) and cpu2 (2 cpu ranks). The group
`slowdown` is the training issue's job-level test of online balancing: a rank slowed from step N on
loses share within 10 steps (from hcrt-train's per-step plans). Nothing here depends on timing beyond
that: the slowed rank sleeps 40 ms per step against steps of about a millisecond.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The fault suite's failure list and checks (tests/fault/test_hcrt_run.py).
from test_hcrt_run import FAILS, check, fail  # noqa: E402

A = None
TMP = None

STEPS = 12
TRAIN = ["--exact", "--layers", "32,64,10", "--global-batch", "128", "--micro-batch", "16", "--steps", str(STEPS),
         "--ckpt-every", "2", "--measure-steps", "0", "--log-every", "0", "--replan", "2", "--check-replicas", "1"]

# Per rank: the environment that picks its device.
MIXES = {
    "sim3": [{"HCRT_DEVICE": "sim:0", "HCRT_SIM_SPEED": "1"}, {"HCRT_DEVICE": "sim:0", "HCRT_SIM_SPEED": "0.5"},
             {"HCRT_DEVICE": "cpu"}],
    "cpu2": [{"HCRT_DEVICE": "cpu"}, {"HCRT_DEVICE": "cpu"}],
    "cpu3": [{"HCRT_DEVICE": "cpu"}, {"HCRT_DEVICE": "cpu"}, {"HCRT_DEVICE": "cpu"}],
}

KILL = {124, 125, 137}  # a SIGKILLed rank: mpirun's teardown (137), a peer's check (125) or deadline (124)
HANG = {124}


# ---- the cases --------------------------------------------------------------------------------------------
# Each: (name, mix, HCRT_FAULT, the statuses of the failed launches in order, what shows it fired, options).
# Options: timeout (HCRT_TIMEOUT, small only for hangs), slow (seconds the first launch must at least take),
# relaunch_mix (a second plain launch on another mix after hcrt-run gave up: the restore reshards),
# corrupt_step (a step whose committed copy may fail verification: the corrupted one).

# A kill in launch 0 after step 6 was saved, so that launch 1 restores.
FIRST_KILL = "kill:rank=0:site=train:step=8:attempt=0"


def fired(site, name, kind, rank):
    if kind in ("kill", "hang", "slow"):
        verb = {"kill": "killed", "hang": "hangs", "slow": r"slowed by [\d.]+ s"}[kind]
        return rf"hcrt fault: rank {rank} {verb} at {site} {name}"
    if kind in ("error", "device_lost", "corrupt"):
        return rf"injected {kind} at {site} {name}.* on rank {rank}"
    return None


def site_cases(site, name, key, rank, statuses, kinds, mix="sim3", extra="", prefix=None, slow_key=None,
               train_args=None):
    """One case per kind at one place: statuses[kind] the expected status of the failed launch. A key with
    an open range (seq=300-: the first such call from the 300th on) fires once for kill, hang, error and
    device_lost, which end the launch; slow goes on, so it gets slow_key (a short range) instead."""
    out = []
    for kind in kinds:
        rule = f"{kind}:rank={rank}:{key}{extra}:attempt=0"
        if kind == "slow":
            rule = f"slow:rank={rank}:{slow_key or key}{extra}:secs=1:attempt=0"
        opts = {"timeout": 4} if kind == "hang" else {}
        if kind == "slow":
            opts["slow"] = 1
        if train_args:
            opts["train_args"] = train_args
        st = [] if kind == "slow" else [statuses[kind]]
        out.append(("_".join(x for x in (prefix or site, name, kind, mix) if x), mix, rule, st, fired(site, name, kind, rank), opts))
    return out


ALL = ["kill", "hang", "error", "device_lost", "slow"]


def group_compute():
    st = {"kill": KILL, "hang": HANG, "error": {121}, "device_lost": {121}}
    # The compute site counts this process's compute calls, which follow the rank's share of each step:
    # with the even split (--balance off; exact mode gives the same weights) the counts are fixed (sim3's
    # rank 2: 2 micro-batches, about 25 calls a step; cpu2's rank 1: 4, about 50), so seq=150- fires in
    # step 7 of 12 and seq=300- in step 6 or 7, after the first checkpoints are committed. With the online
    # balancer a rank measured slow under load may get 1 micro-batch a step and never reach the number.
    even = ["--balance", "off"]
    return (site_cases("compute", "gemm", "site=compute:op=gemm:seq=150-", 2, st, ALL,
                       slow_key="site=compute:op=gemm:seq=150-152", train_args=even) +
            site_cases("compute", "relu", "site=compute:op=relu:seq=300-", 1, st, ["kill", "error", "device_lost"],
                       mix="cpu2", train_args=even))


def group_coll():
    st = {"kill": KILL, "hang": HANG, "error": {123}, "device_lost": {121}, "corrupt": {122}}
    return (site_cases("coll", "allreduce", "op=allreduce:seq=20-", 1, st, ALL, slow_key="op=allreduce:seq=20-24") +
            site_cases("coll", "allreduce", "op=allreduce:seq=20-", 0, st, ["kill", "error"], mix="cpu2") +
            # A bit flip in one rank's copy of the allgathered weights: --check-replicas ends the job (122)
            # before the diverged replica is used or saved.
            site_cases("coll", "allgather", "op=allgather:seq=21-24", 2, st, ["corrupt"]))


def group_ckpt():
    cases = []
    for phase, rank, kinds, st in [
            ("snapshot", 1, ALL, {"kill": KILL, "hang": HANG, "error": {121}, "device_lost": {121}}),
            ("write", 2, ["kill", "hang", "error", "slow"], {"kill": KILL, "hang": HANG, "error": {122}}),
            ("before_agree", 1, ["kill", "hang", "error"], {"kill": KILL, "hang": HANG, "error": {122}}),
            ("before_rename", 0, ["kill", "hang", "error"], {"kill": KILL, "hang": HANG, "error": {122}}),
            ("gc", 0, ["kill", "slow"], {"kill": KILL})]:
        cases += site_cases("ckpt", phase, f"phase={phase}:step=6", rank, st, kinds)
    cases += site_cases("ckpt", "write", "phase=write:step=6", 1, {"kill": KILL, "error": {122}}, ["kill", "error"],
                        mix="cpu2")
    # A bit flipped in rank 1's data file of step 4 (every level) once it is written: committed, unnoticed
    # until the restore of launch 1 (after a kill in launch 0, when step 4 is the newest committed) finds it
    # by its checksum and falls back to step 2; still exact.
    cases.append(("ckpt_write_corrupt_sim3", "sim3", f"corrupt:rank=1:phase=write:step=4:attempt=0,{FIRST_KILL}",
                  [KILL], r"rank-00001.bin: tensor .* fails its checksum", {"corrupt_step": 4, "restored": 2}))
    return cases


def group_restore():
    """Faults during the restore of launch 1 (a second failure during recovery), after a kill in launch 0."""
    cases = []
    for phase, kinds, st in [
            ("read", ["kill", "hang", "error"], {"kill": KILL, "hang": HANG}),
            ("copy", ALL, {"kill": KILL, "hang": HANG, "error": {121}, "device_lost": {121}})]:
        for kind in kinds:
            rule = (f"{kind}:rank=1:site=restore:phase={phase}:attempt=1" if kind != "slow" else
                    f"slow:rank=1:site=restore:phase={phase}:secs=1:attempt=1")
            opts = {"timeout": 4} if kind == "hang" else {}
            if phase == "read" and kind == "error":
                # No failure: rank 1 cannot read step 4 (the newest committed when launch 0 died: step 6's
                # agreement would have completed in step 8's save), so every rank falls back to step 2.
                rule = "error:rank=1:site=restore:phase=read:step=4:attempt=1"
                opts["restored"] = 2
            launches = [KILL] + ([st[kind]] if kind in st else [])
            cases.append((f"restore_{phase}_{kind}_sim3", "sim3", f"{rule},{FIRST_KILL}", launches,
                          fired("restore", phase, kind, 1) or r"hcrt fault: rank 0 killed at train", opts))
    # The relaunch on another world size and mix: launch 0 (3 ranks) is killed and hcrt-run gives up
    # (--max-restarts 0); a plain second launch on 2 cpu ranks restores, resharding, and ends exact.
    cases.append(("restore_reshard_sim3_to_cpu2", "sim3", FIRST_KILL, [KILL], r"hcrt fault: rank 0 killed at train",
                  {"relaunch_mix": "cpu2"}))
    cases.append(("restore_reshard_cpu2_to_sim3", "cpu2", "kill:rank=1:site=train:step=9:attempt=0", [KILL],
                  r"hcrt fault: rank 1 killed at train", {"relaunch_mix": "sim3"}))
    return cases


def group_train():
    st = {"kill": KILL, "hang": HANG, "error": {121}, "device_lost": {121}, "corrupt": {122}}
    # corrupt: a bit of rank 1's weights flips before step 7; --check-replicas ends the job (122) before
    # the step runs, and the restart comes back exact.
    return (site_cases("train", "", "site=train:step=7", 1, st, ALL + ["corrupt"]) +
            site_cases("train", "", "site=train:step=5", 0, st, ["kill", "device_lost"], mix="cpu2"))


# Left out, and why: corrupt at a compute call (one rank's gradient contribution is wrong, and the exact sum
# carries it into every replica alike: no comparison of replicas can see it, only redundant compute could);
# corrupt at the ckpt phases other than write, and at restore, which the fault language refuses
# (docs/fault-injection.md).
GROUPS = {"compute": group_compute, "coll": group_coll, "ckpt": group_ckpt, "restore": group_restore,
          "train": group_train}


# ---- running ----------------------------------------------------------------------------------------------

def wrapper(mix):
    """A shell script that gives each rank its device (by OMPI_COMM_WORLD_RANK) and runs the command."""
    path = os.path.join(TMP, f"rank-env-{mix}.sh")
    if not os.path.exists(path):
        lines = ["#!/bin/sh", 'case "$OMPI_COMM_WORLD_RANK" in']
        for r, env in enumerate(MIXES[mix]):
            lines.append(f"{r}) export " + " ".join(f"{k}={v}" for k, v in env.items()) + " ;;")
        lines += ['*) echo "rank-env: no device for rank $OMPI_COMM_WORLD_RANK" >&2; exit 3 ;;', "esac",
                  'exec "$@"', ""]
        with open(path, "w") as f:
            f.write("\n".join(lines))
        os.chmod(path, 0o755)
    return path


def env_for(case_dir, fault="", timeout=30):
    env = dict(os.environ, HCRT_SIM_DEVICES="1", HCRT_TIMEOUT=str(timeout),
               HCRT_CKPT_LOCAL_DIR=os.path.join(case_dir, "local"))
    env.pop("HCRT_FAULT", None)
    if fault:
        env["HCRT_FAULT"] = fault
    return env


def hcrt_run(tag, mix, ckpt, env, max_restarts=3, train_args=()):
    """hcrt-run over hcrt-train on `mix`; returns (status, output, report, train json or None, seconds)."""
    rep, js = os.path.join(TMP, tag + ".report.json"), os.path.join(TMP, tag + ".train.json")
    for p in (rep, js):
        if os.path.exists(p):
            os.remove(p)
    cmd = [A.hcrt_run, "--mpirun", A.mpirun, "--mpirun-args", A.mpirun_args, "--np", str(len(MIXES[mix])),
           "--max-restarts", str(max_restarts), "--backoff", "0.05", "--report", rep, "--", wrapper(mix),
           A.hcrt_train] + TRAIN + list(train_args) + ["--ckpt-dir", ckpt, "--json", js]
    print("$ " + " ".join(f"{k}={v}" for k, v in env.items() if k in ("HCRT_FAULT", "HCRT_TIMEOUT")) + " " +
          " ".join(cmd), flush=True)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=240)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = -1, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        fail(f"{tag}: hcrt-run did not end within 240 s")
    secs = time.monotonic() - t0
    print(out, flush=True)
    r = j = None
    if os.path.exists(rep):
        with open(rep) as f:
            r = json.load(f)
    if os.path.exists(js):
        with open(js) as f:
            j = json.load(f)
    return rc, out, r, j, secs


REFS = {}


def reference(mix):
    """The failure-free run's weights_xxh64 on `mix` (and the same on every mix: --exact)."""
    if mix not in REFS:
        d = os.path.join(TMP, "ref-" + mix)
        os.makedirs(d)
        rc, out, r, j, _ = hcrt_run("ref-" + mix, mix, os.path.join(d, "ckpt"), env_for(d), max_restarts=0)
        if not check(rc == 0 and j is not None, f"the failure-free run on {mix} failed (status {rc})"):
            sys.exit(1)
        REFS[mix] = j["weights_xxh64"]
        others = {m: h for m, h in REFS.items() if h != REFS[mix]}
        check(not others, f"--exact gave {REFS[mix]} on {mix} but {others} elsewhere")
    return REFS[mix]


def committed(ckpt):
    p = subprocess.run([A.hcrt_ckpt, "list", ckpt], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+committed", p.stdout, re.M)]


def verify_all(tag, ckpt, corrupt_step=None):
    """Every committed step verifies; only the step a case corrupted on purpose may not (and must not
    have been restored)."""
    steps = committed(ckpt)
    check(steps, f"{tag}: no committed step left in {ckpt}")
    for s in steps:
        p = subprocess.run([A.hcrt_ckpt, "verify", ckpt, str(s)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if p.returncode != 0:
            print(p.stdout)
            check(s == corrupt_step, f"{tag}: committed step {s} does not verify (hcrt-ckpt verify: {p.returncode})")
    print(f"{tag}: committed steps {steps} verify", flush=True)


def run_case(case):
    name, mix, fault, launches, shows, opts = case
    print(f"==== {name}: HCRT_FAULT={fault}", flush=True)
    d = os.path.join(TMP, name)
    os.makedirs(d)
    ckpt = os.path.join(d, "ckpt")
    ref = reference(mix)
    nfail = len(FAILS)
    relaunch = opts.get("relaunch_mix")
    rc, out, r, j, secs = hcrt_run(name, mix, ckpt, env_for(d, fault, opts.get("timeout", 30)),
                                   max_restarts=0 if relaunch else 3, train_args=opts.get("train_args", ()))
    if shows:
        check(re.search(shows, out), f"{name}: the fault never fired (no line matches {shows!r})")
    if relaunch:
        # hcrt-run gave up after launch 0; the job is relaunched by hand on another mix and world size.
        check(rc in launches[0], f"{name}: launch 0 ended with {rc}, expected one of {sorted(launches[0])}")
        newest = max(committed(ckpt) or [0])
        rc, out, r, j, _ = hcrt_run(name + "-relaunch", relaunch, ckpt, env_for(d), max_restarts=0)
        launches = []
        check(j is not None and j.get("restored_from") == newest and j.get("world_size") == len(MIXES[relaunch]),
              f"{name}: the relaunch on {relaunch} did not restore the newest committed step {newest}")
        ref = reference(relaunch)
    check(rc == 0, f"{name}: hcrt-run exited {rc}, expected 0")
    if r is not None:
        att = r["attempts"]
        check(r["restarts"] == len(launches), f"{name}: {r['restarts']} restarts, expected {len(launches)}")
        for i, want in enumerate(launches):
            if i < len(att):
                check(att[i]["exit_status"] in want and att[i]["restartable"],
                      f"{name}: launch {i} ended with {att[i]['exit_status']} ({att[i]['cause']}), expected one of "
                      f"{sorted(want)}")
        check(att and att[-1]["exit_status"] == 0, f"{name}: the last launch did not finish")
        if "slow" in opts:
            check(att[0]["end_s"] - att[0]["start_s"] >= opts["slow"],
                  f"{name}: the launch took {att[0]['end_s'] - att[0]['start_s']:.2f} s, less than the injected "
                  f"{opts['slow']} s: the slow fault never fired")
    else:
        fail(f"{name}: hcrt-run wrote no report")
    if check(j is not None, f"{name}: hcrt-train wrote no --json"):
        check(j["weights_xxh64"] == ref, f"{name}: weights_xxh64 {j['weights_xxh64']} != failure-free {ref}")
        if launches:
            check(isinstance(j["restored_from"], int) and j["restored_from"] >= 2,
                  f"{name}: restored_from {j['restored_from']!r} is not a committed step")
        elif not relaunch:
            check(j["restored_from"] is None, f"{name}: restored {j['restored_from']} without a failure")
        if "restored" in opts:
            check(j["restored_from"] == opts["restored"],
                  f"{name}: restored_from {j['restored_from']}, expected step {opts['restored']}")
    verify_all(name, ckpt, opts.get("corrupt_step"))
    print(f"==== {name}: {'ok' if len(FAILS) == nfail else 'FAILED'}", flush=True)


def slowdown():
    """Issue 8 item 3 at the job level: a rank that slows down loses share within 10 steps.

    3 cpu ranks, online balancing re-planned every 2 steps, 24 micro-batches per step (about 8 each). From
    its 1000th compute call on (about step 10), rank 1 sleeps 10 ms in every gemm (HCRT_FAULT slow at the
    compute site, a call range): its micro-batches take tens of ms against well under one. The balancer
    measures the micro-batches on the device's events, so the sleep is what it sees; the train site's
    sleep, before a step, would be outside that measurement. The step the slowdown began is read from the
    trace (HCRT_TRACE: rank 1's forward+backward events and their step); the per-step plans come from
    hcrt-train's --json. Robust on a loaded machine: the only figure is a share falling from about 8 to at
    most a third of what it was, against a slowdown of some hundred times."""
    d = os.path.join(TMP, "slowdown")
    os.makedirs(d)
    js, trace = os.path.join(d, "train.json"), os.path.join(d, "trace.json")
    steps, slowed = 36, 1
    args = ["--layers", "32,64,10", "--global-batch", "384", "--micro-batch", "16", "--steps", str(steps),
            "--measure-steps", "0", "--log-every", "0", "--balance", "online", "--replan", "2", "--json", js]
    fault = f"slow:rank={slowed}:site=compute:op=gemm:seq=1000-:secs=0.01"
    env = env_for(d, fault)
    env["HCRT_TRACE"] = trace
    cmd = [A.mpirun] + A.mpirun_args.split() + ["-np", "3", wrapper("cpu3"), A.hcrt_train] + args
    print(f"$ HCRT_FAULT={fault} HCRT_TRACE={trace} " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=240)
    print(p.stdout, flush=True)
    if not check(p.returncode == 0 and os.path.exists(js) and os.path.exists(trace),
                 f"slowdown: hcrt-train exited {p.returncode}"):
        return
    with open(js) as f:
        plans = json.load(f)["plans"]
    with open(trace) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    # The slowed rank's micro-batch durations per step (its process id in the trace is its rank).
    per_step = {}
    for e in events:
        a = e.get("args") or {}
        if e.get("name") == "forward+backward" and e.get("pid") == slowed and "step" in a:
            per_step.setdefault(a["step"], []).append(e.get("dur", 0) / 1e6)
    slow_steps = sorted(s for s, durs in per_step.items() if max(durs) >= 0.02)
    print("plans:", plans)
    print("rank 1 steps with a micro-batch of 20 ms or more:", slow_steps)
    if not check(slow_steps, "slowdown: the trace shows no slowed micro-batch of rank 1: the fault never fired"):
        return
    onset = slow_steps[0]
    check(onset + 10 < steps, f"slowdown: the slowdown began at step {onset}, too late to watch 10 steps")
    check(all(s in slow_steps for s in range(onset, steps)), "slowdown: rank 1 was not slow at every step after "
          f"step {onset}: {slow_steps}")
    before = plans[onset][slowed]
    check(before >= 4, f"slowdown: rank 1 had only {before} micro-batches when it slowed down (plans {plans})")
    after = [plans[s][slowed] for s in range(onset + 1, min(onset + 11, steps))]
    check(min(after) <= before // 3,
          f"slowdown: rank 1's share went {before} -> {after} in the 10 steps after it slowed down at step {onset}: "
          "expected at most a third")
    check(plans[-1][slowed] <= before // 3, f"slowdown: rank 1's share came back to {plans[-1][slowed]}")
    check(all(sum(p) == 24 for p in plans), "slowdown: a plan does not cover the 24 micro-batches")
    print(f"slowdown: rank 1 slowed from step {onset}: share {before} -> {after}", flush=True)


def main():
    global A, TMP
    ap = argparse.ArgumentParser()
    for k in ("--hcrt-run", "--hcrt-train", "--hcrt-ckpt", "--mpirun"):
        ap.add_argument(k, required=True)
    ap.add_argument("--mpirun-args", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("group", nargs="?")
    ap.add_argument("cases", nargs="*")
    A = ap.parse_args()
    if A.list:
        for g, f in GROUPS.items():
            for c in f():
                print(f"{g} {c[0]}: HCRT_FAULT={c[2]}")
        return 0
    TMP = tempfile.mkdtemp(prefix="hcrt-matrix-")
    try:
        if A.group == "slowdown":
            slowdown()
        elif A.group in GROUPS:
            cases = GROUPS[A.group]()
            if A.cases:
                cases = [c for c in cases if c[0] in A.cases]
                check(cases, f"no such case in group {A.group}: {A.cases}")
            for c in cases:
                run_case(c)
        else:
            fail(f"unknown group {A.group!r} ({', '.join(GROUPS)}, slowdown)")
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if FAILS:
        print(f"{len(FAILS)} failure(s):\n  " + "\n  ".join(FAILS))
        return 1
    print("all ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
