"""tests/python/test_exact.py - hcrt.ExactAccumulator from Python, under mpirun (3 ranks, sim and cpu mixed).

The same micro-batch contributions, split over the ranks in two different ways, give the same bits, and
those bits are the correctly rounded exact sum (math.fsum, exact for these values); mean=True divides by
the global count; a value outside the window fails on every rank naming the rank and the array; reset;
bad arguments name the argument, and arrays of different sizes on different ranks fail on every rank.
"""
import math

import numpy as np
import pytest

import hcrt


def bad(match, kind=hcrt.InvalidArgument):
    return pytest.raises(kind, match=match)


def contributions(rng, k, n):
    """k micro-batch gradients of n elements, the same on every rank (the rng fixture is seeded alike)."""
    return [(rng.standard_normal(n) * 2.0 ** rng.integers(-8, 8, n)).astype(np.float32) for _ in range(k)]


def exact_sum(parts):
    """The correctly rounded f32 sum of f32 parts: fsum is exact here (a few dozen f32 values of
    exponents within 2^-40..2^12 fit 53 bits), and a double that is exact rounds once to f32."""
    return np.array([np.float32(math.fsum(float(p[i]) for p in parts)) for i in range(len(parts[0]))], np.float32)


def test_split_independent(ctx, comm, rng):
    k, n = 11, 300
    parts = contributions(rng, k, n)
    host = np.zeros(n, np.float32)
    dev = ctx.device.zeros(n)
    with hcrt.ExactAccumulator(comm, [host, dev], names=["host", "device"]) as acc:
        assert acc.words == 2 and acc.max_adds == 32766
        results = []
        # Split 1: round robin. Split 2: contiguous blocks, uneven. Split 3: everything on the last rank.
        owners = [[i % comm.size for i in range(k)],
                  [min(i * comm.size // k, comm.size - 1) for i in range(k)],
                  [comm.size - 1] * k]
        for owner in owners:
            mine = [i for i in range(k) if owner[i] == comm.rank]
            for i in mine:
                host[:] = parts[i]
                dev.copy_from(parts[i])
                acc.add()
            assert acc.allreduce(len(mine)) == k
            results.append((host.copy(), dev.numpy()))
        ref = exact_sum(parts)
        for h, d in results:
            np.testing.assert_array_equal(h.view(np.uint32), ref.view(np.uint32))
            np.testing.assert_array_equal(d.view(np.uint32), ref.view(np.uint32))
        # mean=True: the exact sum divided by the global sample count (3 samples per micro-batch here).
        for i in range(comm.rank, k, comm.size):
            host[:] = parts[i]
            dev.copy_from(parts[i])
            acc.add()
        mine = len(range(comm.rank, k, comm.size))
        assert acc.allreduce(3 * mine, mean=True) == 3 * k
        np.testing.assert_allclose(host, ref.astype(np.float64) / (3 * k), rtol=2.0 ** -23)
        np.testing.assert_array_equal(dev.numpy(), host)
        # reset() discards what was added since the last reduction.
        host[:] = 1000
        dev.copy_from(np.full(n, 1000, np.float32))
        acc.add()
        acc.reset()
        host[:] = 1
        dev.copy_from(np.ones(n, np.float32))
        acc.add()
        acc.allreduce(1)
        np.testing.assert_array_equal(host, comm.size)
    assert acc.closed


def test_window(comm):
    x = np.zeros(8, np.float32)
    with hcrt.ExactAccumulator(comm, x, names="grads", lsb_exponent=-40, top_exponent=20) as acc:
        assert acc.words == 2
        x[:] = 0.5
        x[3] = 2.0 ** 21 if comm.rank == comm.size - 1 else 0.5  # outside [2^-40, 2^20) on the last rank
        acc.add()
        with bad(rf"rank {comm.size - 1}.*grads.*element 3|grads.*element 3.*rank {comm.size - 1}"):
            acc.allreduce(1)  # fails on every rank, naming where
        x[:] = 2.0 ** -44  # below the grid: counts as 0
        acc.add()
        acc.allreduce(1)
        np.testing.assert_array_equal(x, 0)
    with hcrt.ExactAccumulator(comm, np.zeros(2, np.float32), lsb_exponent=-64, top_exponent=100) as wide:
        assert wide.words == 4


def test_bad_arguments(ctx, comm):
    f = np.zeros(4, np.float32)
    with bad(r"ExactAccumulator: argument 'comm' is a Context, not an hcrt.Comm"):
        hcrt.ExactAccumulator(ctx, [f])
    with bad(r"ExactAccumulator: argument 'arrays' is empty"):
        hcrt.ExactAccumulator(comm, [])
    with bad(r"ExactAccumulator: argument 'arrays\[1\]' has dtype f64; exact mode sums f32"):
        hcrt.ExactAccumulator(comm, [f, np.zeros(4)])
    with bad(r"ExactAccumulator: argument 'names' is \['a'\]: it needs one str per array \(2\)"):
        hcrt.ExactAccumulator(comm, [f, f.copy()], names=["a"])
    with bad(r"ExactAccumulator: argument 'lsb_exponent' is -1.5, not an int"):
        hcrt.ExactAccumulator(comm, f, lsb_exponent=-1.5)
    with bad(r"hcrt_exact_create: argument 'params' gives the window \[2\^-64, 2\^200\); .*top_exponent <= 100"):
        hcrt.ExactAccumulator(comm, f, top_exponent=200)
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    with bad(r"ExactAccumulator: argument 'arrays' is read-only"):
        hcrt.ExactAccumulator(comm, ro)
    if comm.size > 1:  # every rank must register the same element counts
        with pytest.raises(hcrt.Error) as e:
            hcrt.ExactAccumulator(comm, np.zeros(4 + comm.rank, np.float32))
        assert e.value.name == "ERR_MISMATCH"
    acc = hcrt.ExactAccumulator(comm, f)
    with bad(r"ExactAccumulator.allreduce: argument 'local_samples' is -1, below 0"):
        acc.allreduce(-1)
    acc.close()
    acc.close()  # idempotent
    with pytest.raises(hcrt.Error, match=r"ExactAccumulator.add: the exact accumulator is closed"):
        acc.add()
