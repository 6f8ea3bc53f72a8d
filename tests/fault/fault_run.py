#!/usr/bin/env python3
"""tests/fault/fault_run.py - runs a job with an injected fault and checks the outcome.

usage: fault_run.py --status N[,N...] [--expect REGEX]... [--reject REGEX]... [--deadline S [--slack S]
                    [--hang REGEX] [--report|--named REGEX]] [--min-seconds S] [--max-seconds S] [--twice REGEX]
                    [--record REGEX]... -- CMD...

Every line of the job's output is timestamped as it arrives. The test passes when the exit status is one
of --status, every --expect regex matches some line, no --reject regex matches any line, the job took at
least --min-seconds and at most --max-seconds, and, with --deadline, the first line matching --report
(default: the collectives' "had not arrived") comes at most deadline + slack seconds after the injected
hang was announced ("hcrt fault: rank R hangs at ..."). With --twice the job runs a second time and the
lines matching REGEX (without their [host:pid:rank] tags) must be the same, and some, in both runs: a
fault drawn with prob and seed fires at the same places. "@TMP@" in CMD is replaced by a fresh temporary
directory (one per run), removed afterwards.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time


def run(cmd):
    tmp = tempfile.mkdtemp(prefix="hcrt-fault-")
    cmd = [c.replace("@TMP@", tmp) for c in cmd]
    start = time.monotonic()
    lines, records = [], []
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in p.stdout:
            lines.append((time.monotonic() - start, line.rstrip("\n")))
        rc = p.wait()
        for path in sorted(glob.glob(os.path.join(tmp, "run", "attempt-*", "fail-*"))):
            with open(path) as f:
                records += [f"{os.path.basename(path)}: {line.rstrip()}" for line in f]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rc, lines, time.monotonic() - start, records


def picked(lines, rx):
    return sorted(re.sub(r"^\[[^]]*\] ", "", line) for _, line in lines if re.search(rx, line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", required=True)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--deadline", type=float)
    ap.add_argument("--slack", type=float, default=2.0)
    ap.add_argument("--hang", default=r"hcrt fault: rank \d+ hangs at")
    ap.add_argument("--report", "--named", default="had not arrived")
    ap.add_argument("--min-seconds", type=float)
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("--twice")
    ap.add_argument("--record", action="append", default=[])
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    statuses = {int(s) for s in a.status.split(",")}
    rc, lines, wall, records = run(cmd)
    for t, line in lines:
        print(f"[{t:7.3f}] {line}")
    for line in records:
        print(f"record {line}")
    ok = True
    for rx in a.record:
        if not any(re.search(rx, line) for line in records):
            print(f"FAIL: no line of the failure records (@TMP@/run/attempt-*/fail-*) matches {rx!r}")
            ok = False
    if a.twice:
        rc2, lines2, _, _ = run(cmd)
        first, second = picked(lines, a.twice), picked(lines2, a.twice)
        print(f"second run: exit status {rc2}; lines matching {a.twice!r}: {second}")
        if not first or first != second or rc2 != rc:
            print(f"FAIL: the runs differ: {first} (status {rc}) and {second} (status {rc2})")
            ok = False
    if rc not in statuses:
        print(f"FAIL: exit status {rc}, expected one of {sorted(statuses)}")
        ok = False
    for rx in a.expect:
        if not any(re.search(rx, line) for _, line in lines):
            print(f"FAIL: no line matches {rx!r}")
            ok = False
    for rx in a.reject:
        bad = [line for _, line in lines if re.search(rx, line)]
        if bad:
            print(f"FAIL: {len(bad)} line(s) match {rx!r}, e.g. {bad[0]!r}")
            ok = False
    if a.min_seconds is not None and wall < a.min_seconds:
        print(f"FAIL: the job took {wall:.2f} s, expected at least {a.min_seconds} s")
        ok = False
    if a.max_seconds is not None and wall > a.max_seconds:
        print(f"FAIL: the job took {wall:.2f} s, expected at most {a.max_seconds} s")
        ok = False
    if a.deadline is not None:
        hang = [t for t, line in lines if re.search(a.hang, line)]
        named = [t for t, line in lines if re.search(a.report, line)]
        if not hang or not named:
            print("FAIL: the hang or the report is missing")
            ok = False
        else:
            delay = named[0] - hang[0]
            print(f"hang reported {delay:.2f} s after it began (deadline {a.deadline} s + {a.slack} s slack)")
            if delay > a.deadline + a.slack:
                print("FAIL: reported too late")
                ok = False
    print(f"{'PASS' if ok else 'FAILED'} (exit status {rc}, {wall:.2f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
