#!/usr/bin/env python3
"""tests/python/ckpt_kill.py MPIRUN [MPIRUN ARGS...] - save, kill a rank, restore, from Python (2 ranks: one
on a sim device, one on the host), and the exit status of an uncaught hcrt error.

1. ckpt_job.py saves steps 1..4 with HCRT_FAULT killing rank 1 while it writes step 3: the job dies, and
   steps 1 and 2 are committed.
2. A new job restores: it must load step 2, bit for bit (step 3 was never committed).
3. A job whose checkpoint write fails (HCRT_FAULT=error, an I/O error) under HCRT_ON_FAILURE=return raises
   hcrt.RestartableError, uncaught: mpirun must end with 122 (HCRT_EXIT_CKPT_IO), which hcrt-run would
   relaunch. (Under the default policy the library ends the job itself with the same status.)
"""
import os
import shutil
import subprocess
import sys
import tempfile

from report import finish

HERE = os.path.dirname(os.path.abspath(__file__))


def job(launcher, mode, path, steps, fault=None, policy=None):
    env_args = ["-x", f"HCRT_FAULT={fault}"] if fault else []
    env_args += ["-x", f"HCRT_ON_FAILURE={policy}"] if policy else []
    app = [sys.executable, os.path.join(HERE, "ckpt_job.py"), mode, path, str(steps)]
    cmd = launcher + ["-np", "1", "-x", "HCRT_DEVICE=sim:0"] + env_args + app + \
        [":", "-np", "1", "-x", "HCRT_DEVICE=cpu"] + env_args + app
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    print(f"$ {' '.join(cmd)}\n-> exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p


def main():
    launcher = sys.argv[1:]
    failures = []
    d = tempfile.mkdtemp(prefix="hcrt-pykill-")
    try:
        p = job(launcher, "save", os.path.join(d, "a"), 4, "kill:rank=1:step=3:phase=write")
        if p.returncode == 0 or "step 2 committed" not in p.stdout or "step 3 committed" in p.stdout:
            failures.append("the save job was not killed at step 3 after committing step 2")
        p = job(launcher, "restore", os.path.join(d, "a"), 2)
        if p.returncode != 0 or p.stdout.count("restored step 2, every value checked") != 2:
            failures.append("the restore did not load step 2 on both ranks")
        p = job(launcher, "save", os.path.join(d, "b"), 3, "error:rank=1:step=2:phase=write", "return")
        if p.returncode != 122 or "RestartableError" not in p.stderr or "ERR_IO" not in p.stderr:
            failures.append(f"an uncaught checkpoint I/O error ended the job with {p.returncode}, not 122 "
                            "(HCRT_EXIT_CKPT_IO) with hcrt.RestartableError")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return finish(failures)


if __name__ == "__main__":
    sys.exit(main())
