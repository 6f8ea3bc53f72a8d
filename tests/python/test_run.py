"""tests/python/test_run.py - the run API (heartbeats, failure records, the agreed stop) and the trace API
from Python, under mpirun (3 ranks, sim and cpu mixed).

meson runs this file with HCRT_RUN_DIR set, as hcrt-run would: heartbeats land in the rank's file with
the events in order, a failure record holds the status and text, should_stop() is the same on every rank
and turns true for hcrt-run's stop file and for a signal caught on one rank (last: a caught signal stays
caught). The trace calls check their arguments whether or not HCRT_TRACE is set (here it is not; the
example's test reads a real trace). Bad arguments name the argument.
"""
import os
import shutil
import signal
import time

import numpy as np
import pytest

import hcrt


def bad(match, kind=hcrt.InvalidArgument):
    return pytest.raises(kind, match=match)


@pytest.fixture(scope="module")
def run_dir(ctx, comm):
    """HCRT_RUN_DIR, emptied by rank 0 before this process writes to it (the directory outlives runs)."""
    d = ctx.run_dir
    if d is None:
        pytest.skip("HCRT_RUN_DIR is not set (meson's pytest_run_np3 sets it)")
    if comm.rank == 0:
        shutil.rmtree(os.path.join(d, f"attempt-{ctx.run_attempt}"), ignore_errors=True)
        for name in ("stop",):
            if os.path.exists(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
    comm.barrier()
    return os.path.join(d, f"attempt-{ctx.run_attempt}")


def test_heartbeats(ctx, comm, run_dir):
    assert ctx.run_attempt == 0
    t0 = time.time()
    ctx.heartbeat(0, "ready")
    for step in (1, 2):
        ctx.heartbeat(step, "step")
    ctx.heartbeat(2, "saved")
    ctx.heartbeat(np.int64(2), "committed")
    with open(os.path.join(run_dir, f"rank-{comm.rank}.hb")) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith(f"hcrt-heartbeat 1 rank={comm.rank} size={comm.size} pid={os.getpid()} ")
    events = [ln.split() for ln in lines[1:]]
    assert [(e, int(s)) for e, s, _ in events] == [("R", 0), ("S", 1), ("S", 2), ("V", 2), ("C", 2)]
    assert all(t0 - 1 <= float(t) <= time.time() + 1 for _, _, t in events)


def test_heartbeat_bad(ctx, run_dir):
    with bad(r"Context.heartbeat: argument 'event' is 'done', not one of step, ready, saved, committed"):
        ctx.heartbeat(1, "done")
    with bad(r"Context.heartbeat: argument 'step' is 1.5, not an int"):
        ctx.heartbeat(1.5)
    with bad(r"hcrt_run_heartbeat: argument 'step'"):  # the library checks the range
        ctx.heartbeat(-1)


def test_note_failure(ctx, comm, run_dir):
    ctx.note_failure(125, what="peer\nlost in the test")
    ctx.note_failure(3, what="a later record is ignored")
    with open(os.path.join(run_dir, f"fail-{comm.rank}")) as f:
        rec = dict(line.split("=", 1) for line in f.read().splitlines())
    assert rec["rank"] == str(comm.rank) and rec["status"] == "125" and rec["what"] == "peer lost in the test"
    assert rec["lost_node"] == ""
    with bad(r"hcrt_run_note_failure: argument 'exit_status' is outside 0..255"):
        ctx.note_failure(300)
    with bad(r"Context.note_failure: argument 'lost_node' is a int, not a str or None"):
        ctx.note_failure(125, lost_node=3)
    with bad(r"Context.note_failure: argument 'exit_status' is '1', not an int"):
        ctx.note_failure("1")


def test_trace_calls(ctx):
    assert not ctx.trace_enabled  # no HCRT_TRACE in this run: the calls check and record nothing
    t = hcrt.trace_clock()
    assert abs(t - time.time()) < 5  # wall-clock seconds
    ctx.trace_complete("forward", "compute", t, 0.001, {"micro_batch": 3})
    ctx.trace_instant("mark", "app", '{"note": "text"}')
    with ctx.trace_span("block", args={"k": 1}):
        pass
    with bad(r"hcrt_trace_complete: argument 'name' is"):
        ctx.trace_complete("", "compute", t, 0.0)
    with bad(r"Context.trace_complete: argument 'category' is a int, not a str"):
        ctx.trace_complete("x", 5, t, 0.0)
    with bad(r"hcrt_trace_complete: argument 'duration' is negative or not finite"):
        ctx.trace_complete("x", "c", t, -1.0)
    with bad(r"Context.trace_complete: argument 'start' is None, not a number"):
        ctx.trace_complete("x", "c", None, 0.0)
    with bad(r"hcrt_trace_instant: argument 'args_json' is not a JSON object"):
        ctx.trace_instant("x", "c", "[1, 2]")
    with bad(r"Context.trace_instant: argument 'args' cannot be written as JSON"):
        ctx.trace_instant("x", "c", {"f": object()})
    with bad(r"Context.trace_instant: argument 'args' is a list"):
        ctx.trace_instant("x", "c", [1])


def test_should_stop(ctx, comm, run_dir):
    assert comm.should_stop() is False
    if comm.rank == 0:  # what hcrt-run does when it is told to stop
        open(os.path.join(ctx.run_dir, "stop"), "w").close()
    comm.barrier()
    assert comm.should_stop() is True  # every rank, although only rank 0 looks for the file
    comm.barrier()
    if comm.rank == 0:
        os.remove(os.path.join(ctx.run_dir, "stop"))
    comm.barrier()
    assert comm.should_stop() is False


def test_caught_signal_stops_every_rank(ctx, comm, run_dir):
    """Last of the file: a caught signal keeps asking for a stop."""
    ctx.catch_signals()
    ctx.catch_signals()  # again: nothing changes
    if comm.rank == comm.size - 1:
        os.kill(os.getpid(), signal.SIGTERM)  # would end the process without catch_signals()
    comm.barrier()
    assert comm.should_stop() is True
    assert comm.should_stop() is True
    assert hcrt.EXIT_PREEMPTED == 120 and hcrt.exit_name(120) == "PREEMPTED"
