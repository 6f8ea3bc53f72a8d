#!/usr/bin/env python3
"""tools/scripts/goodput-validate.py - measured goodput against hcrt-run --simulate (docs/goodput.md).

Runs a job under hcrt-run for --duration seconds while killing one of its ranks (SIGKILL) every
--kill-every seconds (or at exponentially distributed times of that mean: --dist exp), stops it with
SIGTERM at the end (the job saves and exits 120), then asks `hcrt-run --simulate --from-report` what the
model predicts for the figures that run measured (checkpoint stall, commit delay, restart time, step
time, the observed interval between failures, the run's length and first launch) and compares.

    goodput-validate.py [--build DIR] [--np 4] [--duration 300] [--kill-every 20] [--dist fixed|exp]
                        [--seed N] [--out DIR] [--mpirun-args "..."] [-- JOB ARGS...]

Without a job it runs the test job tests/fault/run_job (64 MiB of sharded state, --step-ms 100) and
first calibrates it: a 15-second run with one kill measures its stall, commit and restart times, and the
model's best interval for --kill-every becomes its --ckpt-every (unless --job-args give one). With a job (e.g. `-- hcrt-train --steps 100000000
--ckpt-dir D --ckpt-every K`) it runs that command as given: the job must restore on start and heartbeat
(hcrt/run.h). It also reports the recovery time of every restart (SIGKILL to the first step after the
restore). Exit status 0 when the goodput reaches --min-goodput (0.85) and lies within --tolerance (0.03)
of the prediction, 1 otherwise, 2 on bad usage. A benchmark, not a test: run it on a quiet machine.
"""
import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def rank_pids(run_dir):
    """(attempt, [pid...]) of the newest attempt whose ranks have written heartbeat headers."""
    attempts = sorted(glob.glob(os.path.join(run_dir, "attempt-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    for adir in reversed(attempts):
        pids = []
        for hb in glob.glob(os.path.join(adir, "rank-*.hb")):
            try:
                with open(hb) as f:
                    head = f.readline()
            except OSError:
                continue
            fields = dict(kv.split("=", 1) for kv in head.split()[2:] if "=" in kv)
            if "pid" in fields:
                pids.append(int(fields["pid"]))
        if pids:
            return int(adir.rsplit("-", 1)[1]), pids
    return -1, []


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


class Killer(threading.Thread):
    """Kills one live rank of the current attempt at each scheduled time (later if none is alive)."""

    def __init__(self, run_dir, every, dist, seed, start, end):
        super().__init__(daemon=True)
        self.run_dir, self.every, self.dist, self.start_t, self.end_t = run_dir, every, dist, start, end
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.kills = []  # (scheduled, done, attempt, pid)

    def run(self):
        due = self.start_t
        last_attempt = -1
        while not self.stop.is_set():
            due += self.every if self.dist == "fixed" else self.rng.expovariate(1.0 / self.every)
            if due > self.end_t - 2.0:
                return  # a kill racing the final stop would only muddle the end of the run
            while not self.stop.is_set() and time.time() < due:
                time.sleep(min(0.05, max(0.0, due - time.time())))
            # A rank of an attempt that has not been killed yet (a relaunch that is still starting
            # waits: killing the old attempt's dying ranks would not be a new failure).
            while not self.stop.is_set():
                attempt, pids = rank_pids(self.run_dir)
                pids = [p for p in pids if alive(p)]
                if attempt > last_attempt and pids:
                    break
                time.sleep(0.01)
            if self.stop.is_set():
                return
            pid = self.rng.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            self.kills.append((due, time.time(), attempt, pid))
            last_attempt = attempt


def run_killed(hcrt_run, a, env, run_dir, report, job, duration, log_path, every, dist):
    """Runs job under hcrt-run for `duration` seconds, killing a rank every `every` s; then stops it."""
    cmd = [hcrt_run, "--np", str(a.np), "--max-restarts", "100000", "--run-dir", run_dir, "--report", report,
           "--mpirun-args", a.mpirun_args, "--"] + job
    print("$ " + " ".join(cmd), flush=True)
    with open(log_path, "w") as log:
        start = time.time()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        killer = Killer(run_dir, every, dist, a.seed, start, start + duration)
        killer.start()
        try:
            p.wait(timeout=duration)
        except subprocess.TimeoutExpired:
            killer.stop.set()
            p.send_signal(signal.SIGTERM)
            p.wait()
        killer.stop.set()
    return killer, p.returncode


def predict(hcrt_run, report, mtbf):
    """The model's best interval (steps) at one failure every mtbf seconds, with a report's figures."""
    j = report + ".best.json"
    if subprocess.run([hcrt_run, "--simulate", "--from-report", report, "--mtbf-s", str(mtbf), "--json", j],
                      stdout=subprocess.DEVNULL).returncode != 0:
        print(f"goodput-validate: no prediction from {report}")
        return None
    with open(j) as f:
        return json.load(f)["best_every"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--np", type=int, default=4)
    ap.add_argument("--duration", type=float, default=300)
    ap.add_argument("--kill-every", type=float, default=20)
    ap.add_argument("--dist", choices=["fixed", "exp"], default="fixed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="keep the report and logs here (default: a temporary dir)")
    ap.add_argument("--mpirun-args", default="--oversubscribe --bind-to none --mca btl self,vader,tcp "
                                             "--mca btl_vader_single_copy_mechanism none")
    ap.add_argument("--job-args", default="--state-mib 64 --step-ms 100",
                    help="options of the test job (without a job command)")
    ap.add_argument("--min-goodput", type=float, default=0.85)
    ap.add_argument("--tolerance", type=float, default=0.03)
    ap.add_argument("job", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    job = a.job[1:] if a.job[:1] == ["--"] else a.job
    hcrt_run = os.path.join(a.build, "tools/hcrt-run/hcrt-run")
    if not os.access(hcrt_run, os.X_OK):
        print(f"goodput-validate: no {hcrt_run} (--build?)", file=sys.stderr)
        return 2
    out = a.out or tempfile.mkdtemp(prefix="hcrt-goodput-")
    os.makedirs(out, exist_ok=True)
    local = tempfile.mkdtemp(prefix="hcrt-goodput-", dir="/dev/shm") if os.path.isdir("/dev/shm") else None
    run_dir = os.path.join(out, "run")
    env = dict(os.environ)
    env.setdefault("HCRT_BACKEND_PATH", os.path.join(a.build, "backends/sim"))
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    report = os.path.join(out, "report.json")
    if not job:
        def test_job(tag, extra):
            return [os.path.join(a.build, "tests/fault/run_job"), "--steps", "1000000000", "--ckpt-dir",
                    os.path.join(out, tag + "-ckpt")] + (["--local-dir", os.path.join(local, tag)] if local else []) + \
                a.job_args.split() + extra
        extra = []
        if "--ckpt-every" not in a.job_args:
            calib = os.path.join(out, "calibration.json")
            run_killed(hcrt_run, a, env, os.path.join(out, "calib-run"), calib, test_job("calib", ["--ckpt-every", "5"]),
                       15, os.path.join(out, "calibration.log"), a.kill_every / 2.5, "fixed")
            every = predict(hcrt_run, calib, a.kill_every)
            if every is None:
                return 1
            print(f"calibration: the model's best interval at one kill every {a.kill_every} s is {every} steps")
            extra = ["--ckpt-every", str(every)]
        job = test_job("main", extra)
    killer, rc = run_killed(hcrt_run, a, env, run_dir, report, job, a.duration, os.path.join(out, "hcrt-run.log"),
                            a.kill_every, a.dist)
    if local:
        shutil.rmtree(local, ignore_errors=True)
    if not os.path.exists(report):
        print(f"goodput-validate: hcrt-run wrote no report (exit {rc}); see {out}/hcrt-run.log")
        return 1
    with open(report) as f:
        r = json.load(f)
    pred_file = os.path.join(out, "prediction.json")
    every = r["measured"]["ckpt_every"]
    sim = [hcrt_run, "--simulate", "--from-report", report, "--json", pred_file] + \
          (["--ckpt-every", str(every)] if every > 0 else [])
    print("$ " + " ".join(sim), flush=True)
    if subprocess.run(sim).returncode != 0 or r["failures"] == 0:
        print("goodput-validate: no prediction (a run without failures?)")
        return 1
    with open(pred_file) as f:
        pred = json.load(f)
    m = r["measured"]
    rec = [x for x in r["recovery_s"] if x is not None]
    delays = [done - due for due, done, _, _ in killer.kills]
    print()
    print(f"run: {r['wall_s']:.1f} s wall, {a.np} ranks, {r['failures']} failures ({len(killer.kills)} kills, "
          f"one every {m['mtbf_s']:.1f} s measured; kill delay after schedule max {max(delays or [0]):.2f} s), "
          f"exit {r['exit_status']} ({r['stop_reason']})")
    print(f"figures: step {m['step_s']:.4f} s, checkpoint every {m['ckpt_every']} steps, stall {m['ckpt_stall_s']:.4f} s,"
          f" commit {m['commit_s']:.3f} s later, restart {m['restart_s']:.3f} s, first launch {m['startup_s']:.3f} s")
    if rec:
        print(f"recovery (kill to first step after the restore): mean {sum(rec) / len(rec):.3f} s, "
              f"min {min(rec):.3f} s, max {max(rec):.3f} s over {len(rec)} restarts")
    print(f"time: useful {r['useful_s']:.1f} s, lost {r['lost_s']:.1f} s, checkpoint stalls {r['ckpt_s']:.1f} s, "
          f"restarts and other {r['other_s']:.1f} s")
    diff = r["goodput"] - pred["run_goodput"]
    print(f"goodput: measured {r['goodput']:.4f}, predicted {pred['run_goodput']:.4f} for this run "
          f"({pred['goodput']:.4f} in steady state; best interval {pred['best_every']} steps: "
          f"{pred['best_goodput']:.4f}); difference {diff:+.4f}")
    summary = {"np": a.np, "kill_every_s": a.kill_every, "dist": a.dist, "kills": len(killer.kills),
               "report": r, "prediction": pred, "difference": diff,
               "recovery_mean_s": sum(rec) / len(rec) if rec else None, "recovery_max_s": max(rec) if rec else None}
    with open(os.path.join(out, "validate.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"kept in {out}")
    ok = r["goodput"] >= a.min_goodput and abs(diff) <= a.tolerance
    print("PASS" if ok else f"FAIL: goodput must reach {a.min_goodput} and lie within {a.tolerance} of the prediction")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
