#!/usr/bin/env python3
"""tests/mpi/test_hcrt_bench.py - hcrt-bench's output contract (not its speed): the table, the final
average line, --check finding no wrong element, and the --json document of issue 3.

usage: test_hcrt_bench.py MPIRUN HCRT_BENCH [mpirun args...]
"""
import json
import os
import subprocess
import sys
import tempfile


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    return p.stdout


def main():
    mpirun, bench, margs = sys.argv[1], sys.argv[2], sys.argv[3:]
    failures = 0
    with tempfile.TemporaryDirectory() as d:
        for coll, backend, np_ in [("allreduce", "cpu", "2"), ("allreduce", "sim", "3"), ("allgather", "cpu", "2"),
                                   ("reduce_scatter", "sim", "2"), ("broadcast", "cpu", "3"),
                                   ("alltoall", "cpu", "2"), ("reduce", "sim", "2")]:
            out = os.path.join(d, f"{coll}-{backend}.json")
            text = run([mpirun] + margs + ["-x", "HCRT_SIM_DEVICES=1", "-np", np_, bench, "-c", coll, "-b", "8",
                                           "-e", "1M", "-f", "16", "-n", "2", "-w", "1", "--check",
                                           "--compare-mpi", "--backend", backend, "--json", out])
            rows = [l.split() for l in text.splitlines() if l and not l.startswith("#")]
            if len(rows) != 5 or any(len(r) != 11 for r in rows):
                print(text)
                print(f"FAIL {coll}/{backend}: expected 5 rows (8 B to 512 KiB) of 11 columns")
                failures += 1
            if any(r[7] != "0" for r in rows):
                print(text)
                print(f"FAIL {coll}/{backend}: wrong elements reported")
                failures += 1
            if "# Avg bus bandwidth" not in text:
                print(f"FAIL {coll}/{backend}: no average line")
                failures += 1
            doc = json.load(open(out))
            keys = {"coll", "nranks", "backend", "dtype", "op", "results"}
            rkeys = {"bytes", "count", "time_us", "algbw_gbs", "busbw_gbs", "wrong", "mpi_time_us", "mpi_busbw_gbs",
                     "ratio"}
            if set(doc) != keys or doc["coll"] != coll or doc["nranks"] != int(np_) or doc["backend"] != backend:
                print(f"FAIL {coll}/{backend}: JSON header {doc}")
                failures += 1
            if len(doc["results"]) != 5 or any(set(r) != rkeys or r["wrong"] != 0 for r in doc["results"]):
                print(f"FAIL {coll}/{backend}: JSON results {doc['results']}")
                failures += 1
    # f16 has no MPI counterpart: the table says so and the JSON has nulls
    text = run([mpirun] + margs + ["-np", "2", bench, "-d", "f16", "-b", "64", "-e", "64", "--compare-mpi",
                                   "--check", "-n", "1"])
    if "no f16 sum reduction" not in text:
        print(text)
        print("FAIL: f16 comparison note missing")
        failures += 1
    # without --check nothing was checked: '-' in #wrong and null in the JSON, never a reassuring 0
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "nocheck.json")
        text = run([mpirun] + margs + ["-np", "2", bench, "-b", "8", "-e", "64", "-f", "8", "-n", "2", "--json", out])
        rows = [l.split() for l in text.splitlines() if l and not l.startswith("#")]
        if len(rows) != 2 or any(r[7] != "-" for r in rows):
            print(text)
            print("FAIL: #wrong without --check is not '-'")
            failures += 1
        if any(r["wrong"] is not None for r in json.load(open(out))["results"]):
            print("FAIL: JSON wrong without --check is not null")
            failures += 1
    # a bad flag is a usage error
    p = subprocess.run([bench, "-c", "nosuch"], capture_output=True, text=True)
    if p.returncode != 2 or "unknown collective" not in p.stderr:
        print("FAIL: bad -c not rejected")
        failures += 1
    print("ok" if failures == 0 else f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
