#!/usr/bin/env python3
"""hcrt-bench gemm: runs on small shapes, writes the JSON it promises, times sim at several speeds, refuses
bad arguments. Figures are not checked (benchmarks measure; tests do not time).

Usage: test_bench_gemm.py PATH/TO/hcrt-bench   (run by meson with test_env: HCRT_BACKEND_PATH for sim)
"""
import json
import os
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(exe, *args):
    return subprocess.run([exe, "gemm", *args], capture_output=True, text=True, timeout=120)


def main():
    exe = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "gemm.json")
        for dtype in ("f32", "bf16"):
            p = run(exe, "--shape", "17x33x9", "--shape", "8x40x64t", "--shape", "5x6x7nt", "--dtype", dtype,
                    "--repeat", "1", "--min-time", "0.001", "--json", out)
            check(p.returncode == 0, f"gemm {dtype}: exit {p.returncode}: {p.stderr}")
            if p.returncode != 0:
                continue
            r = json.load(open(out))
            check(r["backend"] == "cpu" and r["dtype"] == dtype, f"header {r}")
            check([(s["m"], s["n"], s["k"], s["trans_a"], s["trans_b"]) for s in r["shapes"]] ==
                  [(17, 33, 9, False, False), (8, 40, 64, True, False), (5, 6, 7, False, True)], f"shapes {r['shapes']}")
            for s in r["shapes"]:
                check(s["hcrt_gflops"] > 0 and s["hcrt_ms"] > 0, f"no hcrt figure: {s}")
                if "ratio" in s:  # OpenBLAS installed: the comparison is in the same row
                    check(s["openblas_gflops"] > 0 and abs(s["ratio"] - s["hcrt_gflops"] / s["openblas_gflops"]) < 1e-6,
                          f"ratio row {s}")
            check("hcrt / OpenBLAS" in p.stdout or "not compared" in p.stdout, "no summary or OpenBLAS note")

        p = run(exe, "--shape", "16x16x16", "--repeat", "1", "--min-time", "0.001", "--cpu-time", "--json", out)
        check(p.returncode == 0 and json.load(open(out))["clock"] == "thread_cpu", f"--cpu-time: {p.stderr}")
        p = run(exe, "--backend", "sim", "--shape", "16x16x16", "--repeat", "1", "--min-time", "0.001",
                "--openblas", "none")
        check(p.returncode == 0 and "not compared" in p.stdout, f"sim without OpenBLAS: {p.returncode} {p.stderr}")

        p = run(exe, "--sim-speeds", "1,0.5", "--shape", "16x32x32", "--repeat", "1", "--min-time", "0.001",
                "--json", out)
        check(p.returncode == 0, f"--sim-speeds: exit {p.returncode}: {p.stderr}")
        if p.returncode == 0:
            rows = json.load(open(out))["sim_speeds"]
            check([x["speed"] for x in rows] == [1, 0.5] and all(x["ms"] > 0 for x in rows), f"sim_speeds {rows}")

    p = run(exe, "--help")
    check(p.returncode == 0 and "--sim-speeds" in p.stdout, "--help")
    for bad in (["--shape", "0x4x4"], ["--shape", "4x4"], ["--shape", "4x4x4q"], ["--dtype", "f64"],
                ["--repeat", "0"], ["--sim-speeds", "1,-2"], ["--bogus", "1"], ["--json"],
                ["--cpu-time", "--backend", "sim"]):
        p = run(exe, *bad)
        check(p.returncode == 2 and "usage" in p.stderr, f"{bad}: exit {p.returncode}, stderr {p.stderr!r}")
    p = run(exe, "--backend", "nosuch", "--shape", "4x4x4", "--openblas", "none")
    check(p.returncode == 1 and "nosuch" in p.stderr, f"unknown backend: exit {p.returncode}: {p.stderr}")

    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("hcrt-bench gemm: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
