"""tests/python/test_mpi_allreduce.py - under mpirun: numpy and device arrays into collectives, ranks on
different backends in one communicator, results checked exactly."""
import sys

import numpy as np

import hcrt


def main():
    with hcrt.Context() as ctx:
        comm = ctx.comm_world()
        n, r = comm.size, comm.rank
        assert n >= 2, "run with at least 2 ranks"

        x = np.full(1000, r + 1, dtype=np.float32)
        comm.allreduce(x)
        assert np.all(x == n * (n + 1) / 2), x[:4]

        i = np.arange(777, dtype=np.int64) * (r + 1)
        comm.allreduce(i, op="max")
        assert np.array_equal(i, np.arange(777, dtype=np.int64) * n)

        # This rank's own device (sim on some ranks, host on others: HCRT_DEVICE per rank).
        d = ctx.device.array(np.full(4099, float(r), dtype=np.float64))
        comm.allreduce(d, op="sum")
        assert np.all(d.numpy() == sum(range(n))), (ctx.device, d.numpy()[:3])

        b = np.arange(64, dtype=np.int32) if r == 1 else np.zeros(64, dtype=np.int32)
        comm.broadcast(b, root=1)
        assert np.array_equal(b, np.arange(64, dtype=np.int32))

        g = comm.allgather(np.array([r, r * 10], dtype=np.int32))
        assert g.shape == (n, 2) and all(g[k, 1] == 10 * k for k in range(n)), g
        comm.barrier()
        try:
            comm.allreduce(x, op="median")
            raise AssertionError("op median accepted")
        except ValueError:
            pass
    print(f"rank {r}: python mpi allreduce ok on {ctx.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
