#!/usr/bin/env python3
"""Regenerates the goodput table of docs/goodput.md from hcrt-run's model, or checks that it is up to date.

    goodput-doc.py --hcrt-run PATH FILE            rewrite the table in FILE
    goodput-doc.py --hcrt-run PATH --check FILE    exit 1 (with a diff) when the table in FILE differs

The table sits between the lines `<!-- BEGIN goodput-table: ARGS -->` and `<!-- END goodput-table -->`;
ARGS are the measured figures (`--ckpt-stall-s S --restart-s R --step-s T --commit-s L`), and the table is
the output of `hcrt-run --simulate --table ARGS`, so the document can never drift from the model.
"""
import argparse
import difflib
import re
import subprocess
import sys

BLOCK = re.compile(r"(<!-- BEGIN goodput-table: (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- END goodput-table -->)",
                   re.S)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hcrt-run", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("file")
    a = ap.parse_args()
    with open(a.file) as f:
        text = f.read()
    m = BLOCK.search(text)
    if m is None:
        print(f"goodput-doc: no goodput-table block in {a.file}")
        return 1
    p = subprocess.run([a.hcrt_run, "--simulate", "--table"] + m.group("args").split(), stdout=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        print(f"goodput-doc: hcrt-run --simulate --table {m.group('args')} failed")
        return 1
    new = text[:m.start("body")] + p.stdout + text[m.end("body"):]
    if a.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), a.file,
                                                       "hcrt-run --simulate --table"))
            print(f"goodput-doc: the table of {a.file} is stale: run tools/scripts/goodput-doc.py")
            return 1
        print(f"ok: the table of {a.file} is what the model gives")
        return 0
    with open(a.file, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
