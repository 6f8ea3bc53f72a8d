#!/usr/bin/env python3
"""tests/python/train_example.py CASE EXAMPLE HCRT_RUN HCRT_CKPT MPIRUN [MPIRUN ARGS...] - examples/python/
train_mlp.py run as users run it: under mpirun on 3 ranks (two sim, one cpu), and under hcrt-run.

Cases (one meson test each):
  mixed      3 ranks mixed, sims at half speed: the loss falls, every rank ends with the same weights, the
             shares are a plan of the global batch, HCRT_TRACE holds each rank's micro-batches and the
             balancer's decisions; the same with --compute numpy
  exact      --exact gives the same weights hash on 1 cpu rank and on 3 mixed ranks (as the balancer splits), with
             device compute and with numpy compute
  resume     3 ranks save at step 20; 2 ranks of another mix resume there and finish with the hash of an
             uninterrupted run; a checkpoint of another job is refused (exit 2)
  kill       under hcrt-run a rank is killed at step 13 (--die-at, first attempt only); hcrt-run relaunches,
             the job resumes from its checkpoint and ends with the uninterrupted run's hash
  sigterm    hcrt-run is sent SIGTERM mid-run: the job saves, exits 120 (hcrt-run too, no relaunch), the
             checkpoint of the stop step is committed, and a rerun resumes from it
  error      a checkpoint write fails (HCRT_FAULT): the uncaught hcrt.RestartableError ends the job with
             122, and under hcrt-run its failure record names it; a device lost on one rank alone ends the
             job with 121 at once (not with the others' deadline); a bad command line exits 2
Nothing depends on timing: every wait is bounded only to catch a hang.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from report import finish

FAILS = []
A = None  # command line: case, example, hcrt-run, hcrt-ckpt, launcher


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def example(*args):
    return [sys.executable, A["example"]] + [str(a) for a in args]


def mpirun(contexts, env=None, timeout=300):
    """Runs mpirun with app contexts [(nranks, {VAR: value}, argv)], joined by ':'. Returns the process."""
    cmd = list(A["launcher"])
    for i, (n, variables, argv) in enumerate(contexts):
        cmd += ([":"] if i else []) + ["-np", str(n)]
        for k, v in variables.items():
            cmd += ["-x", f"{k}={v}"]
        cmd += argv
    return run(cmd, env, timeout)


def run(cmd, env=None, timeout=300):
    print("$", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    print(f"-> exit {p.returncode}\n{p.stdout}{p.stderr}", flush=True)
    return p


def mixed(argv, sim_speed="1.0"):
    """Two ranks on sim devices at sim_speed, one on the host: MPMD contexts."""
    return [(2, {"HCRT_DEVICE": "sim", "HCRT_SIM_SPEED": sim_speed}, argv), (1, {"HCRT_DEVICE": "cpu"}, argv)]


def trained(p, path, ranks, what):
    """The results rank 0 wrote to `path` (--json) when the job p succeeded on `ranks` ranks that all hold
    the same weights (the example compares them itself), else None. (Not read from stdout: mpirun may run
    the ranks' lines together.)"""
    r = results(path) if p.returncode == 0 and os.path.exists(path) else None
    if os.path.exists(path):
        os.remove(path)  # consumed: the next run must write its own
    ok = r is not None and r["world_size"] == ranks and r["weights_agree"] is True
    check(ok, f"{what}: exit {p.returncode}, results {r and {k: r[k] for k in ('world_size', 'weights_agree')}}")
    return r if ok else None


def weights(p, path, ranks, what):
    r = trained(p, path, ranks, what)
    return r["weights_sha256"] if r else None


def results(path):
    with open(path) as f:
        return json.load(f)


def case_mixed(d):
    trace = os.path.join(d, "trace.json")
    for compute in ("device", "numpy"):
        out = os.path.join(d, f"{compute}.json")
        p = mpirun(mixed(example("--compute", compute, "--steps", 60, "--json", out), sim_speed="0.5"),
                   env={"HCRT_TRACE": trace} if compute == "device" else None)
        r = trained(p, out, 3, f"mixed, {compute} compute")
        if r is None:
            continue
        curve = r["loss_curve"]
        check(len(curve) == 60 and curve[-1] < 0.7 * curve[0],
              f"{compute}: the loss did not fall by 30% ({curve[0]:.3f} -> {curve[-1]:.3f})")
        # (Which rank gets more depends on measured speeds, so on the machine's load: tests/python/
        # test_balance.py checks the plan against exact recorded figures instead.)
        check(sum(r["shares"]) == 12 and min(r["shares"]) >= 1, f"{compute}: shares {r['shares']}")
    t = results(trace)
    events = t["traceEvents"] if isinstance(t, dict) else t
    per_rank = {r: sum(1 for e in events if e.get("name") == "forward+backward" and e.get("pid") == r)
                for r in range(3)}
    check(sum(per_rank.values()) == 60 * 12 and all(per_rank.values()),
          f"the trace holds {per_rank} micro-batches per rank, not 720 in all")
    check(any(e.get("cat") == "balance" for e in events), "the trace holds no balancer decision")


def case_exact(d):
    out = os.path.join(d, "r.json")
    for compute in ("device", "numpy"):
        args = ["--exact", "--compute", compute, "--steps", 30, "--json", out]
        one = weights(mpirun([(1, {"HCRT_DEVICE": "cpu"}, example(*args))]), out, 1, f"exact {compute}, 1 rank")
        three = weights(mpirun(mixed(example(*args), sim_speed="0.25")), out, 3, f"exact {compute}, 3 ranks")
        check(one is not None and one == three, f"exact {compute}: 1 rank gave {one}, 3 ranks {three}")


def case_resume(d):
    ck, out = os.path.join(d, "ck"), os.path.join(d, "r.json")
    args = ["--exact", "--steps", 40, "--json", out]
    whole = weights(mpirun(mixed(example(*args))), out, 3, "uninterrupted")
    p = mpirun(mixed(example("--exact", "--steps", 20, "--ckpt-dir", ck, "--ckpt-every", 10)))
    check(p.returncode == 0, "the first half failed")
    p = mpirun([(1, {"HCRT_DEVICE": "cpu"}, example(*args, "--ckpt-dir", ck)),
                (1, {"HCRT_DEVICE": "sim:1"}, example(*args, "--ckpt-dir", ck))])
    r = trained(p, out, 2, "resumed on 2 ranks")
    if r:
        check(r["restored_from"] == 20 and len(r["loss_curve"]) == 20, f"resumed from {r['restored_from']}, "
                                                                       "not from step 20")
        check(whole is not None and r["weights_sha256"] == whole,
              f"resumed run ends with {r['weights_sha256']}, uninterrupted {whole}")
    p = mpirun([(2, {}, example("--seed", 7, "--ckpt-dir", ck))])
    check(p.returncode == 2 and "holds a checkpoint of another job" in p.stderr,
          f"a checkpoint of another seed was not refused with exit 2 (exit {p.returncode})")


def hcrt_run(args, job, run_dir=None):
    cmd = [A["hcrt_run"], "--np", "3", "--mpirun-args", " ".join(A["launcher"][1:])] + args
    if run_dir:
        cmd += ["--run-dir", run_dir]
    return cmd + ["--"] + job


def case_kill(d):
    ck, report, out = os.path.join(d, "ck"), os.path.join(d, "run.json"), os.path.join(d, "r.json")
    job = ["--devices", "sim,sim,cpu", "--exact", "--steps", 40, "--json", out]
    whole = weights(mpirun([(3, {}, example(*job))]), out, 3, "uninterrupted")
    p = run(hcrt_run(["--report", report, "--max-restarts", "2"],
                     example(*job, "--ckpt-dir", ck, "--ckpt-every", 5, "--die-at", 13, "--die-rank", 1)))
    check("rank 1: dying at step 13" in p.stdout, "rank 1 did not die at step 13")
    after = weights(p, out, 3, "under hcrt-run, after the kill")
    check(whole is not None and after == whole, f"the relaunched job ends with {after}, uninterrupted {whole}")
    if os.path.exists(report):
        r = results(report)
        att = r["attempts"]
        check(r["restarts"] == 1 and att[0]["exit_status"] == 137 and att[1]["exit_status"] == 0,
              f"report: {r['restarts']} restarts, statuses {[a['exit_status'] for a in att]}")
        # Which save had committed when the rank died depends on the background writer's progress.
        check(att[1]["restored_step"] in (0, 5, 10), f"the relaunch restored step {att[1]['restored_step']}, "
                                                     "not a checkpoint saved before the kill")
    else:
        fail("hcrt-run wrote no report")


def last_step(run_dir):
    """The newest step rank 0 heartbeat in attempt 0 (0 if none yet)."""
    try:
        with open(os.path.join(run_dir, "attempt-0", "rank-0.hb")) as f:
            steps = [int(ln.split()[1]) for ln in f.read().splitlines()[1:] if ln.startswith("S ")]
        return max(steps, default=0)
    except (OSError, ValueError, IndexError):
        return 0


def case_sigterm(d):
    ck, rd = os.path.join(d, "ck"), os.path.join(d, "rd")
    job = example("--devices", "sim,sim,cpu", "--steps", 1000000, "--ckpt-dir", ck, "--ckpt-every", 1000000)
    cmd = hcrt_run([], job, rd)
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while last_step(rd) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # as Slurm or a user would
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        fail("the job did not stop after SIGTERM")
    print(out, flush=True)
    check(proc.returncode == 120, f"hcrt-run ended with {proc.returncode}, not 120 (PREEMPTED)")
    check("relaunching" not in out, "hcrt-run relaunched a job that stopped on request")
    stopped = [ln for ln in out.splitlines() if "stopped on request after step" in ln]
    if not check(len(stopped) == 1, "the job did not report its stop"):
        return
    step = int(stopped[0].split("after step ")[1].split(",")[0])
    p = run([A["hcrt_ckpt"], "list", ck])
    check(any(ln.split()[:2] == [str(step), "committed"] for ln in p.stdout.splitlines()),
          f"step {step} is not committed in {ck}")
    p = mpirun([(3, {}, example("--devices", "sim,sim,cpu", "--steps", step + 2, "--ckpt-dir", ck))])
    check(p.returncode == 0 and f"resumed from step {step}" in p.stdout, "the rerun did not resume from the stop")


def case_error(d):
    # A checkpoint write fails on rank 1, so every rank's save fails. With HCRT_ON_FAILURE=return (where
    # the library has that policy; elsewhere the variable is ignored) the error reaches Python.
    fault = {"HCRT_FAULT": "error:rank=1:step=10:phase=write", "HCRT_ON_FAILURE": "return"}
    p = mpirun(mixed(example("--ckpt-dir", os.path.join(d, "ck"), "--ckpt-every", 5)), env=fault)
    check(p.returncode == 122 and "hcrt.RestartableError: ERR_IO" in p.stderr,
          f"an uncaught checkpoint I/O error ended the job with {p.returncode}, not 122 with hcrt.RestartableError")
    # Under hcrt-run, with the default policy: 122 (CKPT_IO), and the failure record names the error.
    report = os.path.join(d, "run.json")
    job = example("--devices", "sim,sim,cpu", "--ckpt-dir", os.path.join(d, "ck2"), "--ckpt-every", 5)
    p = run(hcrt_run(["--max-restarts", "0", "--report", report], job), env={"HCRT_FAULT": fault["HCRT_FAULT"]})
    check(p.returncode == 122, f"hcrt-run ended with {p.returncode}, not the job's 122")
    if os.path.exists(report):
        cause = results(report)["attempts"][0]["cause"]
        check("ERR_IO" in cause and "injected by HCRT_FAULT" in cause,
              f"the failure record does not name the error: cause {cause!r}")
    else:
        fail("hcrt-run wrote no report")
    # rank 1 alone loses its device in the middle of a step while the others wait for it in the gradient
    # reduction: its hcrt.RestartableError must end the job with 121 (DEVICE) at once, not leave the others
    # to their deadline (124, TIMEOUT) while it finalizes.
    job = example()
    p = mpirun([(1, {"HCRT_DEVICE": "sim:0"}, job), (1, {"HCRT_DEVICE": "sim:1", "HCRT_SIM_FAULT": "lost_after=300"},
                                                     job), (1, {"HCRT_DEVICE": "cpu"}, job)],
               env={"HCRT_ON_FAILURE": "return"})
    check(p.returncode == 121 and "hcrt.RestartableError: ERR_DEVICE_LOST" in p.stderr,
          f"a device lost on one rank ended the job with {p.returncode}, not 121 with hcrt.RestartableError")
    p = mpirun([(1, {}, example("--layers", "32,x"))])
    check(p.returncode == 2 and "--layers" in p.stderr, f"a bad --layers exited {p.returncode}, not 2")


def main():
    global A
    if len(sys.argv) < 6:
        print(__doc__)
        return 2
    A = {"case": sys.argv[1], "example": sys.argv[2], "hcrt_run": sys.argv[3], "hcrt_ckpt": sys.argv[4],
         "launcher": sys.argv[5:]}
    os.environ["HCRT_CKPT_LOCAL_DIR"] = ""  # the shared level only: nothing left behind on the node
    os.environ.setdefault("HCRT_TIMEOUT", "60")
    d = tempfile.mkdtemp(prefix=f"hcrt-pyexample-{A['case']}-")
    try:
        globals()["case_" + A["case"]](d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return finish(FAILS)


if __name__ == "__main__":
    sys.exit(main())
