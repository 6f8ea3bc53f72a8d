#!/usr/bin/env python3
"""tests/fault/test_hcrt_run.py - hcrt-run end to end (suite fault), one case per meson test.

usage: test_hcrt_run.py --hcrt-run X --job RUN_JOB --hcrt-ckpt X --mpirun X --mpirun-args "..." CASE
       test_hcrt_run.py check-report FILE       (the report checker alone)

Each case runs tests/fault/run_job.c (a job that restores, heartbeats, checkpoints, and fails on request)
under hcrt-run with real mpirun ranks, and checks the exit status, the JSON report (check_report: every
field, with sane values) and, where the job was restarted, that its final checksum equals the one of a
run without failures. Nothing here depends on timing: deadlines are generous and only bound a hang.
"""
import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

A = None  # the parsed command line
TMP = None
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


# ---- the report checker -------------------------------------------------------------------------------

ATTEMPT_KEYS = {"attempt": int, "np": int, "start_s": float, "end_s": float, "backoff_s": float,
                "exit_status": int, "exit_name": str, "restartable": bool, "cause": str,
                "first_step": (int, type(None)), "last_step": (int, type(None)),
                "restored_step": (int, type(None)), "last_committed_step": (int, type(None)),
                "failure_s": (float, type(None)), "ready_s": (float, type(None)),
                "first_step_s": (float, type(None)), "lost_node": (str, type(None)), "stop_requested": bool,
                "ranks_per_node": dict}
TOP_KEYS = {"version": int, "start_time": float, "command": list, "np": int, "min_np": int, "max_restarts": int, "attempts": list,
            "failures": int, "restarts": int, "wall_s": float, "useful_s": float, "lost_s": float,
            "ckpt_s": float, "other_s": float, "recovery_s": list, "restart_s": list, "goodput": float,
            "steps_done": int, "exit_status": int, "exit_name": str, "stop_reason": str, "measured": dict}
MEASURED_KEYS = {"step_s": float, "ckpt_every": int, "ckpt_interval_s": float, "ckpt_stall_s": float,
                 "commit_s": float, "restart_s": float, "startup_s": float, "mtbf_s": (float, type(None))}


def typed(obj, keys, where):
    ok = True
    for k, t in keys.items():
        if k not in obj:
            ok = check(False, f"{where}: key {k!r} missing") and ok
            continue
        v = obj[k]
        if t is float:
            t = (int, float)
        if isinstance(v, bool) and t is not bool and bool not in (t if isinstance(t, tuple) else (t,)):
            ok = check(False, f"{where}: {k} = {v!r} is a boolean") and ok
        elif not isinstance(v, t):
            ok = check(False, f"{where}: {k} = {v!r} has the wrong type") and ok
    return ok


def check_report(r):
    """Every field of an hcrt-run report, with values that make sense together. Returns r."""
    eps = 1e-3
    if not typed(r, TOP_KEYS, "report") or not typed(r["measured"], MEASURED_KEYS, "report.measured"):
        return r
    att = r["attempts"]
    check(len(att) >= 1, "no attempt")
    check(r["restarts"] == len(att) - 1, f"restarts {r['restarts']} != attempts - 1")
    check(len(r["recovery_s"]) == r["restarts"] and len(r["restart_s"]) == r["restarts"],
          "one recovery_s and restart_s per restart")
    prev_end = 0.0
    failures = 0
    for i, a in enumerate(att):
        w = f"attempt {i}"
        if not typed(a, ATTEMPT_KEYS, w):
            continue
        check(a["attempt"] == i, f"{w}: numbered {a['attempt']}")
        check(a["np"] >= r["min_np"] and a["np"] <= r["np"], f"{w}: np {a['np']} outside [min_np, np]")
        check(a["start_s"] >= prev_end - eps and a["end_s"] >= a["start_s"], f"{w}: times out of order")
        check(a["backoff_s"] >= 0 and (i > 0 or a["backoff_s"] == 0), f"{w}: backoff {a['backoff_s']}")
        if i > 0:
            check(a["start_s"] - att[i - 1]["end_s"] >= a["backoff_s"] - eps, f"{w}: started before its backoff")
        check(a["cause"] != "", f"{w}: empty cause")
        if a["first_step"] is not None:
            check(a["last_step"] is not None and a["first_step"] <= a["last_step"], f"{w}: first > last step")
            check(a["first_step_s"] is not None and a["start_s"] <= a["first_step_s"] <= a["end_s"] + eps,
                  f"{w}: first_step_s outside the attempt")
        if a["restored_step"] is not None and a["first_step"] is not None:
            check(a["first_step"] == a["restored_step"] + 1, f"{w}: first step is not the restored one + 1")
        if a["ready_s"] is not None:
            check(a["start_s"] <= a["ready_s"] <= a["end_s"] + eps, f"{w}: ready_s outside the attempt")
        if a["last_committed_step"] is not None and a["last_step"] is not None:
            check(a["last_committed_step"] <= a["last_step"], f"{w}: committed a step it did not compute")
        failed = a["exit_status"] != 0 and not a["stop_requested"]
        failures += failed
        if failed:
            check(a["failure_s"] is not None and a["start_s"] <= a["failure_s"] <= a["end_s"] + eps,
                  f"{w}: failure_s {a['failure_s']} outside the attempt")
        if i + 1 < len(att):
            check(a["restartable"], f"{w}: relaunched after a status that is not restartable")
        check(sum(a["ranks_per_node"].values()) <= a["np"], f"{w}: more ranks reported than launched")
        prev_end = a["end_s"]
    check(r["failures"] == failures, f"failures {r['failures']}, counted {failures}")
    check(r["exit_status"] == att[-1]["exit_status"], "exit_status is not the last attempt's")
    check(abs(r["wall_s"] - att[-1]["end_s"]) < eps, "wall_s is not the end of the last attempt")
    for k in ("useful_s", "lost_s", "ckpt_s"):
        check(0 <= r[k] <= r["wall_s"] + eps, f"{k} {r[k]} outside [0, wall]")
    check(abs(r["useful_s"] + r["lost_s"] + r["ckpt_s"] + r["other_s"] - r["wall_s"]) < eps,
          "useful + lost + ckpt + other != wall")
    check(r["other_s"] >= -eps, f"other_s {r['other_s']} negative")
    check(0 <= r["goodput"] <= 1 and abs(r["goodput"] - r["useful_s"] / r["wall_s"]) < 1e-5, "goodput")
    for i, v in enumerate(r["recovery_s"]):
        if v is not None:
            check(0 < v < r["wall_s"], f"recovery_s[{i}] = {v}")
            rs = r["restart_s"][i]
            check(rs is None or 0 < rs <= v + eps, f"restart_s[{i}] = {rs} not within the recovery {v}")
            prev = att[i]
            check(abs(att[i + 1]["first_step_s"] - v - (prev["failure_s"] or prev["end_s"])) < eps,
                  f"recovery_s[{i}] is not from the failure to the first step after the restore")
    m = r["measured"]
    check(m["step_s"] >= 0 and m["ckpt_stall_s"] >= 0 and m["commit_s"] >= 0, "negative measured figure")
    check((m["mtbf_s"] is None) == (r["failures"] == 0), "mtbf_s without failures or missing")
    return r


# ---- running things -----------------------------------------------------------------------------------

def run(cmd, env=None, timeout=240, expect=None, name=""):
    """Runs cmd, prints its output, returns (status, output)."""
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=timeout)
    print(p.stdout, flush=True)
    if expect is not None:
        check(p.returncode == expect, f"{name or cmd[0]}: exit status {p.returncode}, expected {expect}")
    return p.returncode, p.stdout


def hcrt_run(opts, job_args, tag, env=None, expect=None, report=True):
    """hcrt-run OPTS -- run_job JOB_ARGS; returns (status, output, report or None)."""
    rep = os.path.join(TMP, tag + ".json")
    cmd = [A.hcrt_run, "--mpirun", A.mpirun, "--mpirun-args", A.mpirun_args] + opts
    if report:
        cmd += ["--report", rep]
    cmd += ["--", A.job] + job_args
    rc, out = run(cmd, env=env, expect=expect, name=f"hcrt-run ({tag})")
    r = None
    if report and check(os.path.exists(rep), f"{tag}: no report written"):
        with open(rep) as f:
            r = check_report(json.load(f))
    return rc, out, r


def job_args(tag, steps, extra=()):
    d = os.path.join(TMP, tag)
    return ["--steps", str(steps), "--ckpt-dir", d + "-ckpt", "--local-dir", d + "-local", "--ckpt-every", "5",
            "--result", d + ".result"] + list(extra)


def result(tag):
    with open(os.path.join(TMP, tag + ".result")) as f:
        return f.read().strip()


def reference(steps, np=4, backend="host"):
    """The checksum of a run without failures (the state after S steps does not depend on np)."""
    tag = f"ref{steps}"
    if not os.path.exists(os.path.join(TMP, tag + ".result")):
        hcrt_run(["--np", str(np)], job_args(tag, steps, ["--backend", backend]), tag, expect=0)
    return result(tag)


def verify_ckpt(tag):
    """Every committed step of tag's checkpoint directory verifies (hcrt-ckpt verify)."""
    rc, out = run([A.hcrt_ckpt, "verify", os.path.join(TMP, tag + "-ckpt")])
    check(rc == 0, f"{tag}: hcrt-ckpt verify failed")


def newest_committed(tag):
    rc, out = run([A.hcrt_ckpt, "list", os.path.join(TMP, tag + "-ckpt")])
    steps = [int(m.group(1)) for m in re.finditer(r"^(\d+)\s+committed", out, re.M)]
    return max(steps) if steps else None


def fail_times(out):
    """Unix times at which run_job said a rank fails."""
    return [float(m.group(1)) for m in re.finditer(r"run_job: rank \d+ fails at step \d+ \(([\d.]+)\)", out)]


# ---- cases --------------------------------------------------------------------------------------------

def case_kill():
    """A rank SIGKILLed in attempt 0, another in attempt 1 three steps after its restore: relaunched
    twice, restored each time from a committed step, same checksum as without failures."""
    ref = reference(40)
    rc, out, r = hcrt_run(["--np", "4"], job_args("kill", 40, ["--backend", "mix", "--kill", "17:0",
                                                               "--kill", "+3:1:0"]), "kill", expect=0)
    check(result("kill") == ref, f"checksum after restarts {result('kill')!r} != failure-free {ref!r}")
    verify_ckpt("kill")
    if r is None:
        return
    att = r["attempts"]
    if not check([a["exit_status"] for a in att] == [137, 137, 0], "attempts should end 137, 137, 0"):
        return
    check(r["failures"] == 2 and r["restarts"] == 2, "2 failures, 2 restarts")
    check(att[0]["last_step"] == 17 and att[0]["first_step"] == 1, "attempt 0 ran steps 1-17")
    for i in (1, 2):
        prev, a = att[i - 1], att[i]
        rs = a["restored_step"]
        check(rs is not None and rs % 5 == 0 and rs <= prev["last_step"], f"attempt {i} restored step {rs}")
        check(prev["last_committed_step"] is None or rs >= prev["last_committed_step"],
              f"attempt {i} restored {rs}, older than the {prev['last_committed_step']} committed before")
        check("SIGNAL" in prev["cause"] and "SIGKILL" in prev["cause"], f"attempt {i - 1} cause: {prev['cause']}")
    check(att[1]["last_step"] == att[1]["restored_step"] + 3, "attempt 1 died 3 steps after its restore")
    check("rank 3" in att[0]["cause"] and "rank 0" in att[1]["cause"], "the dead rank is named")
    # The failure time is the rank's death, seen by hcrt-run right after the job announced it (the 2 s
    # only bound a stalled machine: the pidfd wakes hcrt-run within milliseconds).
    said = fail_times(out)
    if check(len(said) == 2, "the job announced two failures"):
        for i in (0, 1):
            seen = r["start_time"] + att[i]["failure_s"]
            check(said[i] - 0.005 <= seen <= said[i] + 2.0,
                  f"failure {i} placed at {seen:.3f}, the job died at {said[i]:.3f}")
    check(r["lost_s"] > 0, "steps after the last checkpoint were lost")
    check(r["steps_done"] == 40, "steps_done")
    check(r["stop_reason"] == "the job finished", r["stop_reason"])


def case_abort_restartable():
    """A rank records a failure (as the runtime's fail path does) and aborts with PEER_DEAD: the cause
    quotes the record, the failure time is the record's, the job is relaunched and finishes."""
    ref = reference(30)
    rc, out, r = hcrt_run(["--np", "3"], job_args("abortr", 30, ["--abort", "9:0:125"]), "abortr", expect=0)
    check(result("abortr") == ref, "checksum after the restart differs from the failure-free one")
    if r is None:
        return
    a0 = r["attempts"][0]
    check(a0["exit_status"] == 125 and a0["restartable"], f"attempt 0 status {a0['exit_status']}")
    check(re.match(r"PEER_DEAD: rank 2 on \S+: run_job: failure requested by --abort", a0["cause"]) is not None,
          f"cause {a0['cause']!r} does not quote the failure record")
    check(len(r["attempts"]) == 2 and r["attempts"][1]["exit_status"] == 0, "relaunched once, then finished")


def case_not_restartable():
    """APP (4) cannot be cured by a restart: one attempt, hcrt-run ends with 4 and says why."""
    rc, out, r = hcrt_run(["--np", "3"], job_args("norestart", 30, ["--abort", "7:0:4"]), "norestart", expect=4)
    if r is None:
        return
    check(len(r["attempts"]) == 1 and r["restarts"] == 0, "no restart")
    check(r["attempts"][0]["cause"].startswith("APP: rank 2 on "), f"cause {r['attempts'][0]['cause']!r}")
    check(not r["attempts"][0]["restartable"], "4 is not restartable")
    check("not one a restart can cure" in r["stop_reason"], r["stop_reason"])
    check(r["exit_status"] == 4 and r["exit_name"] == "APP", "report exit status")
    check("not one a restart can cure" in out, "the text report says why it stopped")


def case_max_restarts():
    """A job that dies two steps into every attempt: relaunched --max-restarts 2 times, then hcrt-run
    gives up with the job's status."""
    rc, out, r = hcrt_run(["--np", "2", "--max-restarts", "2", "--backoff", "0.1"],
                          job_args("maxr", 1000, ["--kill", "+2:*:1"]), "maxr", expect=137)
    if r is None:
        return
    att = r["attempts"]
    check(len(att) == 3 and all(a["exit_status"] == 137 for a in att), "3 attempts, each killed")
    check(r["restarts"] == 2 and r["failures"] == 3, "2 restarts, 3 failures")
    check("restart limit" in r["stop_reason"] and "--max-restarts 2" in r["stop_reason"], r["stop_reason"])
    check([a["backoff_s"] for a in att] == [0, 0.1, 0.1], "backoff stays short while attempts make progress")
    check(all(a["last_step"] == a["restored_step"] + 2 for a in att), "each attempt ran two steps")


def case_min_np():
    """4 ranks on 2 fake nodes; rank 3 reports its node lost and the job ends with 205: with --min-np 2 the
    relaunch runs on the 2 ranks left, the checkpoint reshards, and the checksum is the failure-free one.
    Without --min-np hcrt-run stops instead."""
    ref = reference(30)
    env = dict(os.environ, HCRT_FAKE_NODES="2")
    host = socket.gethostname()
    rc, out, r = hcrt_run(["--np", "4", "--min-np", "2"], job_args("minnp", 30, ["--lose-node", "12:0"]), "minnp",
                          env=env, expect=0)
    check(result("minnp") == ref, "checksum after the relaunch on 2 ranks differs")
    verify_ckpt("minnp")
    if r is not None:
        att = r["attempts"]
        check([a["np"] for a in att] == [4, 2], f"np per attempt {[a['np'] for a in att]}, expected [4, 2]")
        check(att[0]["exit_status"] == 205 and att[0]["lost_node"] == host + "~1",
              f"attempt 0: status {att[0]['exit_status']}, lost node {att[0]['lost_node']}")
        check(att[0]["ranks_per_node"] == {host + "~0": 2, host + "~1": 2}, f"{att[0]['ranks_per_node']}")
        check(att[1]["ranks_per_node"] == {host + "~0": 1, host + "~1": 1}, f"{att[1]['ranks_per_node']}")
    rc, out, r = hcrt_run(["--np", "4"], job_args("minnp4", 30, ["--lose-node", "12:0"]), "minnp4", env=env,
                          expect=205)
    if r is not None:
        check(len(r["attempts"]) == 1, "no relaunch below --min-np")
        check("fewer than --min-np 4" in r["stop_reason"], r["stop_reason"])


def wait_for_step(path, step, deadline_s=120):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if os.path.exists(path):
            with open(path) as f:
                if any(line.startswith("S ") and int(line.split()[1]) >= step for line in f if line.endswith("\n")):
                    return True
        time.sleep(0.05)
    return False


def sigterm_at_step(opts, args, tag, step):
    """Starts hcrt-run OPTS -- run_job ARGS, sends it SIGTERM once rank 0 completed `step`, waits for it:
    returns (status, output, report or None)."""
    rep, run_dir = os.path.join(TMP, tag + ".json"), os.path.join(TMP, tag + "-run")
    cmd = [A.hcrt_run, "--mpirun", A.mpirun, "--mpirun-args", A.mpirun_args, "--report", rep, "--run-dir",
           run_dir] + opts + ["--", A.job] + args
    print("$ " + " ".join(cmd), flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(wait_for_step(os.path.join(run_dir, "attempt-0", "rank-0.hb"), step), f"the job never reached step {step}")
    p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        fail("hcrt-run did not end after SIGTERM")
    print(out, flush=True)
    r = None
    if check(os.path.exists(rep), "no report"):
        with open(rep) as f:
            r = check_report(json.load(f))
    return p.returncode, out, r


def case_sigterm():
    """SIGTERM to hcrt-run: the job agrees to stop, saves, exits 120; hcrt-run exits 120 without a
    relaunch; the newest committed step is the last step run, and a new hcrt-run resumes from it."""
    rc, out, r = sigterm_at_step(["--np", "3"], job_args("term", 1000000, ["--step-ms", "20"]), "term", 10)
    check(rc == 120, f"exit status {rc}, expected 120")
    if r is None:
        return
    a = r["attempts"]
    check(len(a) == 1 and a[0]["stop_requested"] and a[0]["exit_status"] == 120, "one attempt, stopped, 120")
    check(a[0]["cause"].startswith("PREEMPTED"), a[0]["cause"])
    check(r["failures"] == 0 and r["stop_reason"].startswith("stopped on request"), r["stop_reason"])
    last = a[0]["last_step"]
    check(last is not None and last >= 10 and a[0]["last_committed_step"] == last,
          f"last step {last}, last committed {a[0]['last_committed_step']}")
    check(newest_committed("term") == last, "the newest committed checkpoint is not the last step")
    verify_ckpt("term")
    # A new run continues from there.
    args = job_args("term", last + 5)
    rc, out, r2 = hcrt_run(["--np", "2"], args, "term2", expect=0)
    if r2 is not None:
        check(r2["attempts"][0]["restored_step"] == last, "the next run did not resume from the saved step")
    check(result("term") == reference(last + 5), "checksum after stop and resume differs")


def case_sigterm_ignored():
    """A job that never asks whether to stop: after --grace, mpirun is told to end it; no relaunch."""
    rc, out, r = sigterm_at_step(["--np", "2", "--grace", "1"], job_args("ign", 1000000, ["--ignore-stop"]), "ign", 5)
    check(rc != 0, "a job ended by SIGTERM did not finish")
    check("ending the job" in out, "hcrt-run did not say it ends the job")
    if r is not None:
        check(len(r["attempts"]) == 1 and r["attempts"][0]["stop_requested"], "one attempt, no relaunch")
        check(r["stop_reason"].startswith("stopped on request"), r["stop_reason"])


FAKE_MPIRUN = r'''#!/usr/bin/env python3
# A stand-in for mpirun: logs its arguments and hostfile, then does what STEPS says for this attempt.
import json, os, sys
args = sys.argv[1:]
hostfile = args[args.index("--hostfile") + 1] if "--hostfile" in args else None
hosts = [l.split()[0] for l in open(hostfile) if l.strip() and not l.startswith("#")] if hostfile else []
attempt = int(os.environ["HCRT_RUN_ATTEMPT"])
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"attempt": attempt, "np": int(args[args.index("-np") + 1]), "hosts": hosts}) + "\n")
action = os.environ["FAKE_STEPS"].split(",")[attempt]
if action.startswith("lose:"):
    sys.stderr.write("ORTE has lost communication with a remote daemon.\n\n  HNP daemon   : [[1,0],0] on node h0\n"
                     "  Remote daemon: [[1,0],2] on node %s\n" % action[5:])
    sys.exit(205)
sys.exit(int(action))
'''


def case_hostfile():
    """The lost node named by Open MPI's message (status 205) is left out of the next attempt's hostfile;
    spare slots keep np, too few slots shrink it down to --min-np, and below that hcrt-run stops. (A
    stand-in launcher plays mpirun; the last part runs the real mpirun on the copy it is given.)"""
    fake = os.path.join(TMP, "fake-launcher")
    with open(fake, "w") as f:
        f.write(FAKE_MPIRUN)
    os.chmod(fake, 0o755)
    hf = os.path.join(TMP, "hosts")
    with open(hf, "w") as f:
        f.write("# three nodes\nnodeA slots=2\nnodeB slots=2   # the one that dies\nnodeC slots=2\n")

    def attempts(opts, steps, expect, tag):
        log = os.path.join(TMP, tag + ".log")
        env = dict(os.environ, FAKE_LOG=log, FAKE_STEPS=steps)
        rep = os.path.join(TMP, tag + ".json")
        cmd = [A.hcrt_run, "--mpirun", fake, "--hostfile", hf, "--backoff", "0", "--report", rep] + opts + \
              ["--", "job"]
        run(cmd, env=env, expect=expect, name=f"hcrt-run ({tag})")
        with open(log) as f:
            seen = [json.loads(line) for line in f]
        with open(rep) as f:
            return seen, check_report(json.load(f))

    seen, r = attempts(["--np", "4"], "lose:nodeB,0", 0, "hf-spare")
    check([s["np"] for s in seen] == [4, 4], f"spare slots keep np: {seen}")
    check(seen[0]["hosts"] == ["nodeA", "nodeB", "nodeC"] and seen[1]["hosts"] == ["nodeA", "nodeC"],
          f"hostfiles {seen}")
    check(r["attempts"][0]["lost_node"] == "nodeB" and "NODE_LOST" in r["attempts"][0]["cause"],
          r["attempts"][0]["cause"])
    seen, r = attempts(["--np", "6", "--min-np", "2"], "lose:nodeB,lose:nodeC,0", 0, "hf-shrink")
    check([s["np"] for s in seen] == [6, 4, 2], f"np shrinks with the slots left: {seen}")
    check(seen[2]["hosts"] == ["nodeA"], f"hostfiles {seen}")
    seen, r = attempts(["--np", "6", "--min-np", "5"], "lose:nodeB,0", 205, "hf-stop")
    check(len(seen) == 1 and "fewer than --min-np 5" in r["stop_reason"], r["stop_reason"])
    seen, r = attempts(["--np", "2"], "124,124,3", 3, "hf-status")
    check([a["exit_status"] for a in r["attempts"]] == [124, 124, 3], "a restartable status, then 3 (CONFIG)")
    check(r["attempts"][0]["cause"].startswith("TIMEOUT"), r["attempts"][0]["cause"])

    # The real mpirun takes the hostfile hcrt-run writes.
    with open(hf, "w") as f:
        f.write("localhost slots=2\n")
    rc, out, r = hcrt_run(["--np", "2", "--hostfile", hf], job_args("hfreal", 10), "hfreal", expect=0)
    check(result("hfreal") == reference(10), "checksum with a hostfile")


def case_usage():
    """Bad command lines end with status 2 and a message naming what is wrong; --help prints every option."""
    bad = [
        ([], "no command"),
        (["--np", "0", "--", "true"], "--np"),
        (["--np", "x", "--", "true"], "--np"),
        (["--np", "2", "--min-np", "3", "--", "true"], "--min-np 3 is more than --np 2"),
        (["--max-restarts", "-1", "--", "true"], "--max-restarts"),
        (["--backoff", "soon", "--", "true"], "--backoff"),
        (["--grace", "-2", "--", "true"], "--grace"),
        (["--frobnicate", "--", "true"], "unknown option --frobnicate"),
        (["--np"], "--np needs a value"),
        (["--mpirun-args", "'unbalanced", "--", "true"], "--mpirun-args"),
        (["--hostfile", os.path.join(TMP, "no-such-file"), "--", "true"], "--hostfile"),
        (["--simulate"], "needs --ckpt-stall-s"),
        (["--simulate", "--ckpt-stall-s", "1", "--restart-s", "1", "--step-s", "1"], "needs a failure rate"),
        (["--simulate", "--chips", "10", "--chip-failures-per-year", "0.1", "--mtbf-s", "5", "--ckpt-stall-s", "1", "--restart-s", "1", "--step-s",
          "1"], "not both"),
        (["--simulate", "--chips", "10", "--ckpt-stall-s", "1", "--restart-s", "1", "--step-s", "1"],
         "--chips and --chip-failures-per-year go together"),
        (["--simulate", "--mtbf-s", "0", "--ckpt-stall-s", "1", "--restart-s", "1", "--step-s", "1"], "--mtbf-s"),
        (["--simulate", "--mtbf-s", "9", "--ckpt-stall-s", "1", "--restart-s", "1", "--step-s", "1",
          "--ckpt-every", "2.5"], "--ckpt-every"),
        (["--simulate", "--from-report", os.path.join(TMP, "none.json")], "--from-report"),
    ]
    for args, needle in bad:
        rc, out = run([A.hcrt_run] + args)
        check(rc == 2, f"{args}: exit status {rc}, expected 2")
        check(needle in out, f"{args}: the message does not mention {needle!r}")
    rc, out = run([A.hcrt_run, "--help"], expect=0)
    for opt in ("--np", "--min-np", "--max-restarts", "--report", "--hostfile", "--mpirun-args", "--mpirun",
                "--run-dir", "--keep-run-dir", "--backoff", "--backoff-max", "--grace", "--quiet", "--simulate",
                "HCRT_RUN_DIR", "HCRT_RUN_ATTEMPT", "Exit status"):
        check(opt in out, f"--help does not mention {opt}")
    rc, out = run([A.hcrt_run, "--simulate", "--help"], expect=0)
    for opt in ("--chips", "--chip-failures-per-year", "--mtbf-s", "--from-report", "--ckpt-stall-s", "--restart-s",
                "--step-s", "--commit-s", "--ckpt-every", "--table", "--monte-carlo", "--json"):
        check(opt in out, f"--simulate --help does not mention {opt}")
    # The launcher missing: 127, said once.
    rc, out = run([A.hcrt_run, "--mpirun", os.path.join(TMP, "no-such-mpirun"), "--np", "1", "--", "true"],
                  expect=127)
    check("cannot run" in out, "no message for a launcher that cannot run")


def case_simulate():
    """--simulate: the closed form at the figures of a measured run, its JSON, and the table."""
    j = os.path.join(TMP, "sim.json")
    rc, out = run([A.hcrt_run, "--simulate", "--mtbf-s", "20", "--ckpt-stall-s", "0.05", "--restart-s", "1.5",
                   "--step-s", "0.1", "--commit-s", "0.05", "--monte-carlo", "200", "--seed", "7", "--json", j],
                  expect=0)
    with open(j) as f:
        s = json.load(f)
    check(abs(s["young_s"] - math.sqrt(2 * 0.05 * 20)) < 1e-6, "Young's interval")
    check(s["best_every"] >= 1 and 0 < s["best_goodput"] < 1, "best interval and goodput")
    check(abs(s["simulated_goodput"] - s["goodput"]) < 0.01,
          f"simulation {s['simulated_goodput']:.4f} far from the closed form {s['goodput']:.4f}")
    rc, out = run([A.hcrt_run, "--simulate", "--table", "--ckpt-stall-s", "0.05", "--restart-s", "1.5",
                   "--step-s", "0.1"], expect=0)
    check(out.count("\n| ") == 8, "the table has a header and 7 rows")
    g3h = float(out.strip().splitlines()[-1].split("|")[-2])
    check(g3h >= 0.99, f"goodput at one interruption per 3 h is {g3h}")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global A, TMP
    if len(sys.argv) == 3 and sys.argv[1] == "check-report":
        with open(sys.argv[2]) as f:
            check_report(json.load(f))
        print("PASS" if not FAILS else "FAILED")
        return 0 if not FAILS else 1
    ap = argparse.ArgumentParser()
    ap.add_argument("--hcrt-run", required=True)
    ap.add_argument("--job", required=True)
    ap.add_argument("--hcrt-ckpt", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--mpirun-args", default="")
    ap.add_argument("case", choices=sorted(CASES))
    A = ap.parse_args()
    TMP = tempfile.mkdtemp(prefix="hcrt-run-test-")
    try:
        CASES[A.case]()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print("PASS" if not FAILS else f"FAILED ({len(FAILS)} checks)")
    return 0 if not FAILS else 1


if __name__ == "__main__":
    sys.exit(main())
