#!/usr/bin/env python3
"""tests/fault/coll_fault.py - runs an mpirun job with an injected collective fault and checks the outcome.

usage: coll_fault.py --status N[,N...] --expect REGEX [--expect REGEX...] [--deadline S --slack S]
                     [--hang REGEX] [--named REGEX] -- CMD...

Every line of the job's output is timestamped as it arrives. The test passes when the exit status is one
of --status, every --expect regex matches some line, and, with --deadline, the first line naming the
culprit (--named; default: the ranks that had not arrived) comes at most deadline + slack seconds after
the injected hang was announced (--hang; default "hcrt fault: rank R hangs at ...").
"""
import argparse
import re
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", required=True)
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--deadline", type=float)
    ap.add_argument("--slack", type=float, default=2.0)
    ap.add_argument("--hang", default=r"hcrt fault: rank \d+ hangs at")
    ap.add_argument("--named", default="had not arrived")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    statuses = {int(s) for s in a.status.split(",")}
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in p.stdout:
        lines.append((time.monotonic() - start, line.rstrip("\n")))
    rc = p.wait()
    for t, line in lines:
        print(f"[{t:7.3f}] {line}")
    ok = True
    if rc not in statuses:
        print(f"FAIL: exit status {rc}, expected one of {sorted(statuses)}")
        ok = False
    for rx in a.expect:
        if not any(re.search(rx, line) for _, line in lines):
            print(f"FAIL: no line matches {rx!r}")
            ok = False
    if a.deadline is not None:
        hang = [t for t, line in lines if re.search(a.hang, line)]
        named = [t for t, line in lines if re.search(a.named, line)]
        if not hang or not named:
            print("FAIL: the hang or the report is missing")
            ok = False
        else:
            delay = named[0] - hang[0]
            print(f"hang reported {delay:.2f} s after it began (deadline {a.deadline} s + {a.slack} s slack)")
            if delay > a.deadline + a.slack:
                print("FAIL: reported too late")
                ok = False
    print("PASS" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
