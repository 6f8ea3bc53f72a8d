#!/usr/bin/env python3
"""HCRT_TRACE end to end (tests/mpi/meson.build: trace_np3).

    test_trace.py MPIRUN TEST_BALANCE TRACE_MERGE MPIRUN_ARGS...

1. A 3-rank job (`test_balance tracejob`) with HCRT_TRACE=FILE: at hcrt_finalize FILE must be one JSON
   document (python's json parses it) holding, for every rank, its process name (rank, host, device),
   every collective it ran (name, bytes, algorithm, sequence number), the checkpoint phases (snapshot,
   persist, agree+commit, restore), the balancer's decisions with the shares, the exact reduction and the
   application's own events; the per-rank parts are gone.
2. The same job with rank 1 killed at its third collective: each rank's part FILE.rank-N stays behind and
   tools/scripts/trace-merge.py joins them into a document that holds rank 1's events up to the kill.
"""
import json
import os
import subprocess
import sys
import tempfile

mpirun, prog, merge = sys.argv[1:4]
mpirun_args = sys.argv[4:]
failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


def run(env_extra, tmp, expect_ok):
    env = dict(os.environ)
    cmd = [mpirun] + mpirun_args + ["-x", "HCRT_SIM_DEVICES=1", "-x", "HCRT_TIMEOUT=60"]
    for k, v in env_extra.items():
        cmd += ["-x", f"{k}={v}"]
    cmd += ["-np", "3", prog, "tracejob", os.path.join(tmp, "ckpt")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    if (p.returncode == 0) != expect_ok:
        print(p.stdout, p.stderr)
    check((p.returncode == 0) == expect_ok, f"exit status {p.returncode} (expected {'0' if expect_ok else 'failure'})")
    return p


with tempfile.TemporaryDirectory() as tmp:
    trace = os.path.join(tmp, "trace.json")
    run({"HCRT_TRACE": trace}, tmp, True)
    check(os.path.exists(trace), "the merged trace was not written")
    check(not any(f.startswith("trace.json.rank-") for f in os.listdir(tmp)), "parts left behind after the merge")
    with open(trace) as f:
        doc = json.load(f)
    ev = doc["traceEvents"]
    check(doc.get("otherData", {}).get("world_size") == 3, "otherData.world_size is not 3")
    for r in range(3):
        mine = [e for e in ev if e.get("pid") == r]
        names = [e for e in mine if e.get("ph") == "M" and e.get("name") == "process_name"]
        check(len(names) == 1 and names[0]["args"]["name"].startswith(f"rank {r} ("),
              f"rank {r}: process name {names}")
        for e in mine:
            if e.get("ph") == "X":
                check(e["ts"] >= 0 and e["dur"] >= 0, f"rank {r}: negative time in {e}")
        coll = [e for e in mine if e.get("cat") == "coll"]
        ar = [e for e in coll if e["name"] == "allreduce" and e["args"]["bytes"] == 70000 * 4]
        check(len(ar) == 2, f"rank {r}: {len(ar)} allreduces of 280000 bytes (want 2: host and device)")
        for e in coll:
            a = e["args"]
            check(a["algorithm"] in ("ring", "rd", "shm", "shm-mapped", "shm-device", "hier", "mpi", "tree",
                                     "dissemination", "local", "vendor"), f"rank {r}: algorithm {a['algorithm']}")
            check(isinstance(a["seq"], int) and a["seq"] >= 1 and a["status"] == "OK", f"rank {r}: {e}")
        seqs = [e["args"]["seq"] for e in coll]
        check(len(seqs) == len(set(seqs)), f"rank {r}: repeated sequence numbers {seqs}")
        check(any(e["name"] == "broadcast" for e in coll), f"rank {r}: no broadcast")
        check(any(e["name"] == "barrier" for e in coll), f"rank {r}: no barrier")
        check(any(e["name"] == "allreduce" and not e["args"]["blocking"] and e["args"]["op"] == "max" for e in coll),
              f"rank {r}: no nonblocking allreduce")
        ck = {e["name"] for e in mine if e.get("cat") == "ckpt"}
        for phase in ("ckpt snapshot", "ckpt persist", "ckpt agree+commit", "ckpt restore"):
            check(phase in ck, f"rank {r}: no '{phase}' event (has {sorted(ck)})")
        rest = [e for e in mine if e.get("name") == "ckpt restore"]
        check(rest and rest[0]["args"]["restored"] == 1, f"rank {r}: restore event {rest}")
        comp = [e for e in mine if e.get("cat") == "compute"]
        check(len(comp) == 3 and sorted(e["args"]["micro_batch"] for e in comp) == [0, 1, 2]
              and all(e["dur"] >= 1000 for e in comp), f"rank {r}: compute events {comp}")
        check(any(e.get("name") == "step done" and e.get("ph") == "i" for e in mine), f"rank {r}: no instant event")
        bal = [e for e in mine if e.get("cat") == "balance"]
        check(len(bal) == 4, f"rank {r}: {len(bal)} balancer decisions (want the initial one and 3 re-plans)")
        for e in bal:
            check(len(e["args"]["shares"]) == 3 and sum(e["args"]["shares"]) == 12, f"rank {r}: {e}")
        check(any(e["args"]["changed"] for e in bal[1:]), f"rank {r}: no re-plan moved the shares (ranks run at "
              "different speeds)")
        check(any(e.get("name") == "exact allreduce" for e in mine), f"rank {r}: no exact allreduce")

    # Killed at rank 1's third collective: the parts stay, and merge.
    trace2 = os.path.join(tmp, "killed.json")
    run({"HCRT_TRACE": trace2, "HCRT_FAULT": "kill:rank=1:site=coll:seq=3"}, tmp, False)
    check(not os.path.exists(trace2), "a merged trace of a killed job")
    part1 = trace2 + ".rank-1"
    check(os.path.exists(part1), "rank 1 left no part")
    if os.path.exists(part1):
        with open(part1) as f:
            text = f.read().rstrip()
        # The viewers read it as it is; python's json needs the closing bracket.
        events1 = json.loads(text.rstrip(",") + "]")
        check([e["args"]["seq"] for e in events1 if e.get("cat") == "coll"] == [1, 2],
              f"rank 1's part holds collectives {[e.get('args') for e in events1 if e.get('cat') == 'coll']}")
    p = subprocess.run([sys.executable, merge, trace2], capture_output=True, text=True)
    check(p.returncode == 0, f"trace-merge.py failed: {p.stdout} {p.stderr}")
    if p.returncode == 0:
        with open(trace2) as f:
            merged = json.load(f)["traceEvents"]
        check(any(e.get("pid") == 1 and e.get("name") == "process_name" for e in merged),
              "the merged trace lacks rank 1")
        check(sum(1 for e in merged if e.get("pid") == 1 and e.get("cat") == "coll") == 2,
              "the merged trace lacks rank 1's collectives")

print("FAILED" if failures else "ok: trace checks passed")
sys.exit(1 if failures else 0)
