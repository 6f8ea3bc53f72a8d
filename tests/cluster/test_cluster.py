#!/usr/bin/env python3
"""tests/cluster/test_cluster.py - the multi-node cases for real, on fake nodes of this machine (suite
`cluster`; the fixture is tests/cluster/cluster.py: network namespaces, and a Slurm cluster on them).

usage: test_cluster.py --hcrt-run X --hcrt-train X --test-coll X --mpirun X CASE

Cases (each brings its cluster up and always tears it down):
  ns_collectives   3 nodes x 2 ranks under mpirun: the communicator sees 3 nodes, and every collective x
                   dtype x op x size, host and sim buffers (hierarchical across nodes) gives the reference
  ns_node_kill     hcrt-train under hcrt-run on 3 nodes x 2 ranks; every process of node 2 killed mid-job:
  ns_link_cut      (or its link cut: hcrt's deadline fires before Open MPI's keepalive, set to 60 s) the loss
                   is seen within HCRT_TIMEOUT + 2 s, the failure record names the node (cut) or mpirun does
                   (kill), hcrt-run ends mpirun (cut: it would wait for the node for minutes), relaunches on
                   the 2 nodes left with 4 ranks, node 2's shards come back from the partner copies on
                   another node, and the weights equal a failure-free run's (exact mode)
  slurm_batch      (a) examples/slurm/train.sbatch trains to completion: srun on 2 nodes, one attempt
  slurm_rank_kill  (b) a rank killed mid-job is relaunched inside the allocation; same weights
  slurm_preempt    (c) SIGTERM to the batch step (what --signal=B:TERM@60 sends): a checkpoint in the grace
                   period, scontrol requeue, the requeued job resumes from it and completes; same weights;
                   the report covers both allocations
  slurm_node_loss  a node of the allocation dies; hcrt-run leaves it out and relaunches on the spare node
                   with the same rank count; same weights
  slurm_python     examples/slurm/train_python.sbatch (examples/python/train_mlp.py --exact): preempted,
                   requeued, resumed, completed, with the weights of an uninterrupted run
Every case prints a FIGURES line (JSON) with what it measured. Deadlines only bound hangs.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

SRC = os.environ.get("HCRT_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests", "fault"))
from cluster import Cluster, log  # noqa: E402
# The fault suite's failure list and checks, and its checker of every report field and their consistency.
from test_hcrt_run import FAILS, check, check_report  # noqa: E402

A = None
# hcrt-train small enough that a scenario takes seconds; --exact: the weights of any world size, split
# and restart are the same bits.
TRAIN = ["--layers", "64,128,10", "--global-batch", "256", "--micro-batch", "16", "--exact", "--log-every", "0",
         "--measure-steps", "0"]
STEPS, EVERY = 700, 50


def figures(**kw):
    print("FIGURES " + json.dumps(kw, sort_keys=True), flush=True)


def job_env(extra=None, base=None):
    """The jobs' environment: the test's (HCRT_BACKEND_PATH, HCRT_LIBRARY, ...), one sim device per rank."""
    env = dict(base if base is not None else os.environ, HCRT_SIM_DEVICES="1", HCRT_LOG_LEVEL="warn")
    env.update(extra or {})
    return env


def reference(steps, tmp):
    """weights_xxh64 of a failure-free run on this machine (2 ranks, no cluster)."""
    out = os.path.join(tmp, f"ref-{steps}.json")
    cmd = [A.mpirun, "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader,tcp", "-x",
           "HCRT_SIM_DEVICES=1", "-np", "2", A.hcrt_train] + TRAIN + ["--steps", str(steps), "--json", out]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if p.returncode != 0:
        print(p.stdout)
        raise RuntimeError("the failure-free reference run failed")
    with open(out) as f:
        return json.load(f)["weights_xxh64"]


def heartbeats(path):
    """The events of one heartbeat file: (kind, step, time) for each complete line, and the header."""
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return None, []
    head = lines[0] if lines and lines[0].endswith("\n") else None
    ev = []
    for line in lines[1:]:
        parts = line.split()
        if line.endswith("\n") and len(parts) == 3:
            ev.append((parts[0], int(parts[1]), float(parts[2])))
    return head, ev


def wait_progress(attempt_dir, step, committed, timeout=300, log=None):
    """Waits until rank 0 of an attempt has computed `step` and some rank reported `committed` committed;
    returns the headers of every rank (rank -> (pid, node)). Fails at once when a later attempt started
    (this one failed before the test's own failure); `log` (a file) is then printed."""
    deadline = time.monotonic() + timeout
    later = re.sub(r"attempt-(\d+)$", lambda m: f"attempt-{int(m.group(1)) + 1}", attempt_dir)
    while time.monotonic() < deadline:
        if os.path.isdir(later):
            if log is not None:
                log.seek(0)
                print(log.read()[-8000:], flush=True)
            raise RuntimeError(f"{attempt_dir} failed before the test's failure: {later} started")
        ranks, done, comm = {}, False, False
        for name in os.listdir(attempt_dir) if os.path.isdir(attempt_dir) else []:
            m = re.fullmatch(r"rank-(\d+)\.hb", name)
            if not m:
                continue
            head, ev = heartbeats(os.path.join(attempt_dir, name))
            if head:
                h = re.search(r"pid=(\d+) node=(\S+)", head)
                ranks[int(m.group(1))] = (int(h.group(1)), h.group(2))
            done = done or (m.group(1) == "0" and any(k == "S" and s >= step for k, s, _ in ev))
            comm = comm or any(k == "C" and s >= committed for k, s, _ in ev)
        if done and comm:
            return ranks
        time.sleep(0.05)
    raise RuntimeError(f"{attempt_dir}: step {step} (with step {committed} committed) never came")


def load_report(path):
    check(os.path.exists(path), f"no report {path}")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        r = json.load(f)
    check_report(r)
    return r


# ---- namespace nodes under mpirun ------------------------------------------------------------------------

def case_ns_collectives():
    with Cluster(nodes=3, slots=2) as c:
        base = [A.mpirun] + c.mpirun_args() + ["--hostfile", c.hostfile, "-x", "HCRT_SIM_DEVICES=1", "-x",
                                               "HCRT_TIMEOUT=120", "-x", "HCRT_BACKEND_PATH"]
        for name, args in (("comms", ["-x", "TEST_COLL_NODES=3", "-np", "6", A.test_coll, "comms"]),
                           ("sweep", ["-np", "6", A.test_coll, "sweep", "both"]),
                           ("determinism", ["-np", "5", A.test_coll, "determinism"])):
            t0 = time.monotonic()
            p = c.head(base + args, check=False, timeout=600, env=job_env())
            print(p.stdout[-3000:], flush=True)
            check(p.returncode == 0, f"test_coll {name} across 3 nodes failed ({p.returncode})")
            log(f"test_coll {name}: {time.monotonic() - t0:.1f} s")
        check("comms: ok" in c.head(base + ["-x", "TEST_COLL_NODES=3", "-np", "3", A.test_coll, "comms"],
                                    check=False, env=job_env()).stdout, "comms with one rank per node")


def node_loss(how):
    # A cut link is seen by whichever comes first: hcrt's deadline in the survivors (a failure record that
    # names the silent node; mpirun then cannot reach that node to end the job, and hcrt-run ends it after
    # --teardown) or Open MPI's TCP keepalive (hcrt-run's 3 s + 3 x 1 s: status 205). For the cut, a 60 s
    # keepalive makes the deadline always the first, so that path is the one tested (the keepalive's is
    # the kill's: 205); a shorter deadline would also fire on a loaded machine's slow first steps.
    timeout = 5.0
    keepalive = ["--mca", "oob_tcp_keepalive_time", "60", "--mca", "oob_tcp_keepalive_intvl", "1", "--mca",
                 "oob_tcp_keepalive_probes", "3"] if how == "cut" else []
    tmp = A.tmp
    ref = reference(STEPS, tmp)
    with Cluster(nodes=3, slots=2) as c:
        run_dir, ckpt, rep = c.shared("run"), c.shared("ckpt"), c.shared("report.json")
        out = c.shared("train.json")
        margs = " ".join(c.mpirun_args() + keepalive + ["-x", "HCRT_SIM_DEVICES=1", "-x",
                                                        f"HCRT_TIMEOUT={timeout:g}", "-x", "HCRT_BACKEND_PATH", "-x",
                                                        "HCRT_LOG_LEVEL"])
        cmd = [A.hcrt_run, "--hostfile", c.hostfile, "--np", "6", "--min-np", "4", "--mpirun", A.mpirun,
               "--mpirun-args", margs, "--run-dir", run_dir, "--report", rep, "--"] + \
              [A.hcrt_train] + TRAIN + ["--steps", str(STEPS), "--ckpt-dir", ckpt, "--ckpt-every", str(EVERY),
                                        "--json", out]
        print("$ " + " ".join(cmd), flush=True)
        logf = open(c.shared("hcrt-run.log"), "w+")
        p = c.head_popen(cmd, env=job_env(), stdout=logf, stderr=subprocess.STDOUT, text=True)
        try:
            ranks = wait_progress(os.path.join(run_dir, "attempt-0"), 3 * EVERY + 10, 3 * EVERY, log=logf)
            lost = c.nodes[1]
            # Before the loss: each node keeps the partner copies of another node's ranks.
            check_partner_placement(c, ranks)
            t_loss = time.time()
            if how == "kill":
                c.kill_node(lost)
            else:
                c.cut_link(lost)
            log(f"node {lost} {'killed' if how == 'kill' else 'cut off'} at {t_loss:.3f}")
            p.wait(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        logf.seek(0)
        text = logf.read()
        print(text[-8000:], flush=True)
        check(p.returncode == 0, f"hcrt-run exited {p.returncode}")
        r = load_report(rep)
        if r is None:
            return
        att = r["attempts"]
        if not check(len(att) == 2, f"{len(att)} attempts, expected 2"):
            return
        a0, a1 = att
        check(a0["lost_node"] == lost, f"attempt 0 lost node {a0['lost_node']!r}, expected {lost}")
        check(a0["restartable"] and a0["exit_status"] in (124, 125, 205), f"attempt 0 status {a0['exit_status']}")
        if how == "cut":
            check(a0["exit_status"] == 124 and "ending it (--teardown)" in text,
                  f"attempt 0: {a0['exit_status']} {a0['cause']!r}: not hcrt's deadline, then hcrt-run's teardown")
        detect = r["start_time"] + a0["failure_s"] - t_loss
        check(0 <= detect <= timeout + 2, f"the loss was seen {detect:.2f} s after it, more than HCRT_TIMEOUT + 2 s")
        check(a1["np"] == 4 and sorted(a1["ranks_per_node"]) == sorted([c.nodes[0], c.nodes[2]]),
              f"attempt 1: np {a1['np']} on {a1['ranks_per_node']}, expected 4 on the nodes left")
        check(a1["restored_step"] is not None and a1["restored_step"] >= 3 * EVERY,
              f"attempt 1 restored step {a1['restored_step']}")
        lost_ranks = sorted(r_ for r_, (pid, node) in ranks.items() if node == lost)
        for rk in lost_ranks:
            check(re.search(rf"rank-{rk:05d}\.bin restored from the partner copy", text) is not None,
                  f"rank {rk}'s shard (node {lost}) did not come from a partner copy")
        with open(out) as f:
            got = json.load(f)["weights_xxh64"]
        check(got == ref, f"weights {got} after the node loss, {ref} without failures")
        figures(case=f"ns_node_{how}", detection_s=round(detect, 3), recovery_s=r["recovery_s"][0],
                goodput=round(r["goodput"], 4), wall_s=r["wall_s"], exit_status_0=a0["exit_status"], **phases(a0, a1))


def check_partner_placement(c, ranks):
    """Every rank's shard of the newest committed step has a partner copy in another node's /dev/shm."""
    holder = {}
    for node in c.nodes:
        base = os.path.join(c.node_dir(node, "shm"), "hcrt-ckpt")
        for root, dirs, files in os.walk(base):
            if os.path.basename(root) == "partner":
                for f in files:
                    m = re.fullmatch(r"rank-(\d+)\.bin", f)
                    if m:
                        holder.setdefault(int(m.group(1)), set()).add(node)
    for rk, (pid, node) in sorted(ranks.items()):
        where = holder.get(rk, set())
        check(where and node not in where, f"rank {rk} on {node}: partner copies on {sorted(where) or 'no node'}")


def phases(a0, a1):
    """Where a recovery went: the failed attempt's teardown (failure to its end), the pause before the
    relaunch, the relaunch to its READY (launch, init, restore) and READY to the first step."""
    return {"teardown_s": round(a0["end_s"] - a0["failure_s"], 3), "pause_s": round(a1["start_s"] - a0["end_s"], 3),
            "launch_to_ready_s": round(a1["ready_s"] - a1["start_s"], 3),
            "first_step_s": round(a1["first_step_s"] - a1["ready_s"], 3)}


def case_ns_node_kill():
    node_loss("kill")


def case_ns_link_cut():
    node_loss("cut")


# ---- Slurm ----------------------------------------------------------------------------------------------

def slurm_job(c, script, nodes, env_extra, opts=()):
    sub = c.shared("submit")  # SLURM_SUBMIT_DIR: where the scripts put their run and checkpoint directories
    os.makedirs(sub, exist_ok=True)
    job = c.sbatch(script, [f"--nodes={nodes}"] + list(opts), env=job_env(env_extra, base=c.env), cwd=sub)
    log(f"Slurm job {job}: {os.path.basename(script)} on {nodes} nodes")
    return job, sub


def job_output(sub, pattern):
    text = ""
    for f in sorted(os.listdir(sub)):
        if re.fullmatch(pattern, f):
            with open(os.path.join(sub, f), errors="replace") as fh:
                text += fh.read()
    return text


def finish(c, job, sub, pattern, timeout=400, lost_node=False):
    """Waits for the job to end; returns its output and scontrol's view of it. After a node loss the job
    stays COMPLETING until slurmctld declares the node down (SlurmdTimeout): its batch script's exit code
    is known by then."""
    states = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL") + (("COMPLETING",) if lost_node else ())
    st = c.wait_job(job, timeout=timeout, states=states)
    info = c.job(job)
    text = job_output(sub, pattern)
    print(text[-10000:], flush=True)
    ok = st == "COMPLETED" or (st == "COMPLETING" and info.get("ExitCode") == "0:0")
    if not ok:
        print(c.slurm_logs(), flush=True)
    check(ok, f"job {job} ended {st} (exit code {info.get('ExitCode')})")
    return text, info


def train_env(c, steps=STEPS, extra=""):
    return {"HCRT_RUN_EXE": A.hcrt_run, "HCRT_TRAIN_EXE": A.hcrt_train, "HCRT_TIMEOUT": "10",
            "TRAIN_ARGS": " ".join(TRAIN + ["--steps", str(steps), "--ckpt-every", str(EVERY),
                                            "--json", c.shared("train.json")]) + extra}


def weights(c):
    with open(c.shared("train.json")) as f:
        return json.load(f)["weights_xxh64"]


SBATCH = os.path.join(SRC, "examples", "slurm", "train.sbatch")


def case_slurm_batch():
    ref = reference(STEPS, A.tmp)
    with Cluster(nodes=2, slots=2, slurm=True) as c:
        job, sub = slurm_job(c, SBATCH, 2, train_env(c))
        text, info = finish(c, job, sub, rf"hcrt-train-{job}\.out")
        r = load_report(os.path.join(sub, f"hcrt-run-{job}", "report.json"))
        check(weights(c) == ref, f"weights {weights(c)}, {ref} without Slurm")
        check(info.get("Restarts") == "0", f"the job was restarted {info.get('Restarts')} times")
        if r is None:
            return
        a = r["attempts"]
        check(r["launcher"] == "srun" and len(a) == 1 and a[0]["exit_status"] == 0, "one srun attempt that finished")
        check(a[0]["ranks_per_node"] == {c.nodes[0]: 2, c.nodes[1]: 2}, f"ranks per node {a[0]['ranks_per_node']}")
        check(a[0]["allocation"] == {"job_id": job, "restart_count": 0}, f"allocation {a[0]['allocation']}")
        check(not r["requeued"] and r["allocations"] == 1, "not requeued")
        figures(case="slurm_batch", goodput=round(r["goodput"], 4), wall_s=r["wall_s"],
                startup_s=r["measured"]["startup_s"])


def case_slurm_rank_kill():
    ref = reference(STEPS, A.tmp)
    with Cluster(nodes=2, slots=2, slurm=True) as c:
        job, sub = slurm_job(c, SBATCH, 2, train_env(c))
        run_dir = os.path.join(sub, f"hcrt-run-{job}")
        ranks = wait_progress(os.path.join(run_dir, "attempt-0"), 3 * EVERY + 10, 3 * EVERY)
        victim = max(ranks)  # on the second node: srun's report, not hcrt-run's pidfd, tells its death
        pid, node = ranks[victim]
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        log(f"killed rank {victim} (pid {pid}) on {node} at {t_kill:.3f}")
        text, info = finish(c, job, sub, rf"hcrt-train-{job}\.out")
        r = load_report(os.path.join(run_dir, "report.json"))
        check(weights(c) == ref, f"weights {weights(c)} after the restart, {ref} without failures")
        check(info.get("Restarts") == "0", "the job was restarted by Slurm instead of inside its allocation")
        if r is None:
            return
        a = r["attempts"]
        if not check(len(a) == 2, f"{len(a)} attempts, expected 2"):
            return
        check(a[0]["exit_status"] == 137 and f"rank {victim} on {node}" in a[0]["cause"],
              f"attempt 0: {a[0]['exit_status']} {a[0]['cause']!r}")
        check(a[1]["allocation"] == a[0]["allocation"] and a[1]["nodes"] == a[0]["nodes"],
              "the relaunch left the allocation or its nodes")
        check(a[1]["restored_step"] is not None and a[1]["restored_step"] >= 3 * EVERY,
              f"restored step {a[1]['restored_step']}")
        seen = r["start_time"] + a[0]["failure_s"] - t_kill
        check(0 <= seen <= 5, f"the death was placed {seen:.2f} s after the kill")
        restart = r["start_time"] + a[1]["first_step_s"] - t_kill
        figures(case="slurm_rank_kill", restart_s=round(restart, 3), recovery_s=r["recovery_s"][0],
                seen_s=round(seen, 3), goodput=round(r["goodput"], 4), wall_s=r["wall_s"], **phases(a[0], a[1]))


def preempt(c, script, env, out_pattern, run_dir_of, stop_after):
    """Submits, sends SIGTERM to the batch step once step `stop_after` is committed, waits for the requeued
    job to finish. Returns (job, text, report, time of the signal)."""
    job, sub = slurm_job(c, script, 2, env)
    run_dir = run_dir_of(sub, job)
    wait_progress(os.path.join(run_dir, "attempt-0"), stop_after + 10, stop_after)
    t_term = time.time()
    c.head(["scancel", "--signal=TERM", "--batch", job])
    log(f"SIGTERM to the batch step of job {job} at {t_term:.3f}")
    text, info = finish(c, job, sub, out_pattern)
    check(info.get("Restarts") == "1", f"the job ran {info.get('Restarts')} + 1 times, expected one requeue")
    r = load_report(os.path.join(run_dir, "report.json"))
    if r is not None:
        a = r["attempts"]
        if check(len(a) == 2, f"{len(a)} attempts, expected 2"):
            a0, a1 = a
            check(a0["stop_requested"] and a0["exit_status"] == 120 and a0["cause"].startswith("PREEMPTED"),
                  f"attempt 0: {a0['exit_status']} {a0['cause']!r}")
            check(a0["last_committed_step"] == a0["last_step"], "the last step was not saved before the exit")
            stop_to_end = a0["end_s"] - a0["stop_s"]
            check(0 <= stop_to_end < 60, f"saving took {stop_to_end:.1f} s, more than the 60 s grace")
            check(a1["allocation"] == {"job_id": job, "restart_count": 1}, f"attempt 1 ran in {a1['allocation']}")
            check(a0["allocation"] == {"job_id": job, "restart_count": 0}, f"attempt 0 ran in {a0['allocation']}")
            check(a1["restored_step"] == a0["last_step"], f"resumed from {a1['restored_step']}, saved {a0['last_step']}")
            check(r["allocations"] == 2 and r["failures"] == 0 and not r["requeued"], "allocations, failures")
    check(text.count("requeued Slurm job") == 1, "hcrt-run did not say it requeued the job (once)")
    return job, text, r, t_term


def case_slurm_preempt():
    ref = reference(STEPS, A.tmp)
    with Cluster(nodes=2, slots=2, slurm=True) as c:
        job, text, r, t_term = preempt(c, SBATCH, train_env(c), r"hcrt-train-\d+\.out",
                                       lambda sub, job: os.path.join(sub, f"hcrt-run-{job}"), 3 * EVERY)
        check(weights(c) == ref, f"weights {weights(c)} after the requeue, {ref} without it")
        if r is not None and len(r["attempts"]) == 2:
            a0, a1 = r["attempts"]
            figures(case="slurm_preempt", requeue_round_trip_s=round(r["start_time"] + a1["first_step_s"] - t_term, 3),
                    save_s=round(a0["end_s"] - a0["stop_s"], 3), goodput=round(r["goodput"], 4), wall_s=r["wall_s"],
                    between_allocations_s=r["between_allocations_s"],
                    launch_to_ready_s=round(a1["ready_s"] - a1["start_s"], 3))


def case_slurm_node_loss():
    ref = reference(STEPS, A.tmp)
    with Cluster(nodes=3, slots=2, slurm=True) as c:
        env = train_env(c)
        env.update({"NP": "4", "HCRT_TIMEOUT": "5"})
        job, sub = slurm_job(c, SBATCH, 3, env)
        run_dir = os.path.join(sub, f"hcrt-run-{job}")
        ranks = wait_progress(os.path.join(run_dir, "attempt-0"), 3 * EVERY + 10, 3 * EVERY)
        used = sorted({node for pid, node in ranks.values()})
        check(used == c.nodes[:2], f"the first attempt ran on {used}, expected the first 2 nodes")
        lost = c.nodes[1]
        t_loss = time.time()
        c.kill_node(lost)
        log(f"node {lost} killed at {t_loss:.3f}")
        text, info = finish(c, job, sub, rf"hcrt-train-{job}\.out", lost_node=True)
        check(weights(c) == ref, f"weights {weights(c)} after the node loss, {ref} without it")
        r = load_report(os.path.join(run_dir, "report.json"))
        if r is None:
            return
        a = r["attempts"]
        if not check(len(a) == 2, f"{len(a)} attempts, expected 2"):
            return
        check(a[0]["left_out"] == [lost] and a[0]["lost_node"] == lost, f"left out {a[0]['left_out']}")
        check(a[1]["np"] == 4 and a[1]["nodes"] == [c.nodes[0], c.nodes[2]],
              f"attempt 1: {a[1]['np']} ranks on {a[1]['nodes']}, expected 4 on the spare")
        check(a[1]["restored_step"] is not None and a[1]["restored_step"] >= 3 * EVERY, "restored step")
        detect = r["start_time"] + a[0]["failure_s"] - t_loss
        check(0 <= detect <= 5 + 2, f"the loss was seen {detect:.2f} s after it")
        figures(case="slurm_node_loss", detection_s=round(detect, 3), recovery_s=r["recovery_s"][0],
                restart_s=round(r["start_time"] + a[1]["first_step_s"] - t_loss, 3),
                goodput=round(r["goodput"], 4), wall_s=r["wall_s"], **phases(a[0], a[1]))


def case_slurm_python():
    py_steps = 300
    py_args = ["--exact", "--balance", "off", "--log-every", "50"]
    with Cluster(nodes=2, slots=2, slurm=True) as c:
        train_py = os.path.join(SRC, "examples", "python", "train_mlp.py")
        result = c.shared("py.json")
        # The uninterrupted run, for its weights (exact sums: the same bits on any rank count and restart).
        p = subprocess.run([A.mpirun, "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader,tcp",
                            "-np", "2", sys.executable, train_py, "--steps", str(py_steps), "--json", result] + py_args,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600, env=job_env())
        print(p.stdout[-2000:])
        with open(result) as f:
            ref = json.load(f)["weights_sha256"]
        os.unlink(result)
        env = {"HCRT_RUN_EXE": A.hcrt_run, "PYTHON": sys.executable, "TRAIN_PY": train_py, "HCRT_TIMEOUT": "30",
               "TRAIN_ARGS": " ".join(["--steps", str(py_steps), "--ckpt-every", "20", "--json", result] + py_args)}
        job, text, r, t_term = preempt(c, os.path.join(SRC, "examples", "slurm", "train_python.sbatch"), env,
                                       r"hcrt-train-py-\d+\.out",
                                       lambda sub, job: os.path.join(sub, f"hcrt-run-{job}"), 60)
        check("resumed from step" in text, "the requeued Python job did not restore")
        if check(os.path.exists(result), "the Python job wrote no result"):
            with open(result) as f:
                got = json.load(f)
            check(got["weights_sha256"] == ref, f"weights {got['weights_sha256']}, uninterrupted {ref}")
            check(got["restored_from"] is not None and got["weights_agree"], "restored_from, weights_agree")
        if r is not None and len(r["attempts"]) == 2:
            figures(case="slurm_python", requeue_round_trip_s=round(r["start_time"] + r["attempts"][1]["first_step_s"]
                                                                    - t_term, 3), goodput=round(r["goodput"], 4))


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--hcrt-run", required=True)
    ap.add_argument("--hcrt-train", required=True)
    ap.add_argument("--test-coll", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("case", choices=sorted(CASES))
    A = ap.parse_args()
    # Batch jobs run in their own directory: every tool by its absolute path.
    for k in ("hcrt_run", "hcrt_train", "test_coll", "mpirun"):
        setattr(A, k, os.path.abspath(getattr(A, k)))
    import tempfile
    A.tmp = tempfile.mkdtemp(prefix="hcrt-cluster-test-")
    t0 = time.monotonic()
    try:
        CASES[A.case]()
    finally:
        shutil.rmtree(A.tmp, ignore_errors=True)
    print(f"{A.case}: {time.monotonic() - t0:.1f} s; " + ("PASS" if not FAILS else f"FAILED ({len(FAILS)} checks)"))
    return 0 if not FAILS else 1


if __name__ == "__main__":
    sys.exit(main())
