"""tests/python/ckpt_job.py - a small training-like job for tests/python/ckpt_kill.py, run under mpirun.

    ckpt_job.py save DIR STEPS      saves steps 1..STEPS, each committed before the next
    ckpt_job.py restore DIR STEP    restores the newest step, which must be STEP, and checks every value

The state is a replicated vector on this rank's device and a sharded matrix in numpy, both functions of
the step, so a restore proves which step it loaded bit for bit. hcrt errors are left uncaught on purpose:
the process must then end with the exit status of the exit policy (hcrt.Error.exit_status).
"""
import sys

import numpy as np

import hcrt

ROWS, COLS = 300, 64


def state(step, first, count):
    w = np.arange(1000, dtype=np.float32) * step
    m = (np.arange(first * COLS, (first + count) * COLS, dtype=np.float64) + step).reshape(count, COLS)
    return w, m


def main():
    mode, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with hcrt.Context() as ctx:
        first = ROWS * ctx.rank // ctx.size
        count = ROWS * (ctx.rank + 1) // ctx.size - first
        w_host, m = state(0, first, count)
        w = ctx.device.array(w_host)
        with hcrt.Checkpoint(ctx, path, local_dir="", keep=5) as ck:
            ck.register("w", w)
            ck.register("m", m, global_shape=(ROWS, COLS), shard=(first, count))
            if mode == "save":
                for step in range(1, steps + 1):
                    w_host, m[:] = state(step, first, count)
                    w.copy_from(w_host)
                    ck.save(step, meta={"step": step})
                    ck.wait()
                    print(f"rank {ctx.rank}: step {step} committed", flush=True)
            else:
                got, meta = ck.restore()
                w_want, m_want = state(steps, first, count)
                assert got == steps and meta == {"step": steps}, (got, meta)
                assert np.array_equal(w.numpy(), w_want) and np.array_equal(m, m_want)
                print(f"rank {ctx.rank} on {ctx.device}: restored step {got}, every value checked", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
