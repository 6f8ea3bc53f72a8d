#!/usr/bin/env python3
"""Merges the per-rank parts of an HCRT_TRACE file into one Chrome trace document.

    trace-merge.py FILE [-o OUT]

hcrt_finalize merges a job's trace by itself. A job that ended before it (killed, crashed, aborted by a
deadline) leaves FILE.rank-0, FILE.rank-1, ...: each is already readable by chrome://tracing and Perfetto
on its own (an unterminated JSON array of events), and this script joins them into FILE (or OUT) as one
JSON document, dropping a torn last line of a part if its rank died while writing it.
"""
import argparse
import glob
import json
import os
import re
import sys


def read_part(path):
    """The events of one part, skipping a line that does not parse (a write cut short)."""
    events = []
    dropped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line in ("", "[", "]"):
                continue
            if line.endswith(","):
                line = line[:-1]
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                dropped += 1
    return events, dropped


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="the HCRT_TRACE value of the job (its parts are FILE.rank-N)")
    ap.add_argument("-o", "--output", help="where to write the merged trace (default: FILE)")
    args = ap.parse_args()
    parts = glob.glob(glob.escape(args.file) + ".rank-*")
    rank_of = {}
    for p in parts:
        m = re.search(r"\.rank-(\d+)$", p)
        if m:
            rank_of[p] = int(m.group(1))
    if not rank_of:
        print(f"trace-merge: no parts {args.file}.rank-N found", file=sys.stderr)
        return 1
    events = []
    for p in sorted(rank_of, key=rank_of.get):
        ev, dropped = read_part(p)
        if dropped:
            print(f"trace-merge: {p}: dropped {dropped} torn line(s)", file=sys.stderr)
        events.extend(ev)
    out = args.output or args.file
    doc = {
        "displayTimeUnit": "ms",
        "otherData": {"merged_by": "tools/scripts/trace-merge.py", "ranks": sorted(rank_of.values())},
        "traceEvents": events,
    }
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.write("\n")
    os.replace(tmp, out)
    print(f"trace-merge: {len(events)} events of {len(rank_of)} rank(s) written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
