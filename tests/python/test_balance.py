"""tests/python/test_balance.py - hcrt.Balancer and Comm.allreduce_grads from Python, under mpirun (3 ranks,
sim and cpu mixed).

The balancer's plan: whole micro-batches, at least one per rank, summing to the global batch, the same on
every rank, with each rank's assignment the contiguous range after the lower ranks'; re-planned in
proportion to the throughputs the ranks record (the test records exact figures, so the plan is known);
static and off modes; a plan restored with set_shares and checked across ranks; caps. Summed gradients
with uneven sample counts equal the one-rank sum over the same samples. Bad arguments name the argument,
and collective misuse (different plans or params on different ranks) fails on every rank.
"""
import numpy as np
import pytest

import hcrt


def bad(match, kind=hcrt.InvalidArgument):
    return pytest.raises(kind, match=match)


def gathered(comm, values):
    """Every rank's list of ints, allgathered: (size, len(values))."""
    return comm.allgather(np.asarray(values, np.int64))


def check_plan(comm, bal, total):
    shares = bal.shares
    assert len(shares) == comm.size and sum(shares) == total and min(shares) >= 1
    got = gathered(comm, shares)
    assert all(list(got[r]) == shares for r in range(comm.size)), got  # every rank holds the same plan
    first, count = bal.assignment
    assert first == sum(shares[:comm.rank]) and count == shares[comm.rank]
    return shares


def proportional(speeds, total):
    return [total * s / sum(speeds) for s in speeds]


def test_initial_plan(comm):
    with hcrt.Balancer(comm, micro_batches=28, micro_batch_size=4, use_device_speed=False) as bal:
        shares = check_plan(comm, bal, 28)
        assert max(shares) - min(shares) <= 1  # even without measurements
        d = bal.last_decision
        assert isinstance(d, hcrt.Decision) and d.reason == "initial" and d.step == 0 and "step 0" in d.text
        assert bal.rates == [0.0] * comm.size and bal.size == comm.size
        assert "online" in repr(bal)
    assert bal.closed and repr(bal) == "<hcrt.Balancer (closed)>"
    with bad(r"Balancer.shares: the balancer is closed", hcrt.Error):
        bal.shares


def record_speed(bal, speed, micro_batch_size):
    """Records this rank's share of a step at `speed` samples per second (an exact figure)."""
    _, count = bal.assignment
    for _ in range(count):
        bal.record(micro_batch_size, micro_batch_size / speed)


def test_online_replan(comm):
    speeds = [4000.0, 2000.0, 1000.0, 3000.0, 500.0][:comm.size]
    total = 7 * comm.size + 7
    with hcrt.Balancer(comm, total, 8, mode="online", interval=2, warmup_steps=0, smoothing=1.0,
                       use_device_speed=False) as bal:
        changes = 0
        for _ in range(6):
            record_speed(bal, speeds[comm.rank], 8)
            changes += bal.step()
        shares = check_plan(comm, bal, total)
        assert changes >= 1
        want = proportional(speeds, total)
        assert all(abs(s - w) < 1 for s, w in zip(shares, want)), (shares, want)
        assert bal.rates == pytest.approx(speeds)
        d = bal.last_decision
        assert d.reason in ("improve", "same") and d.step == 6, d
        if comm.size == 3:
            assert shares == [16, 8, 4]


def test_static_and_off(comm):
    speeds = [1000.0 * (r + 1) for r in range(comm.size)]
    for mode, replans in (("off", 0), ("static", 1)):
        with hcrt.Balancer(comm, 6 * comm.size, 2, mode=mode, interval=2, warmup_steps=1, smoothing=1.0,
                           use_device_speed=False) as bal:
            before = bal.shares
            changes = 0
            for _ in range(10):
                record_speed(bal, speeds[comm.rank], 2)
                changes += bal.step()
            check_plan(comm, bal, 6 * comm.size)
            if comm.size > 1:
                assert changes == replans, (mode, changes)
                assert (bal.shares == before) == (mode == "off")


def test_set_shares(comm):
    n = comm.size
    with hcrt.Balancer(comm, 4 * n, 1) as bal:
        plan = [1] * (n - 1) + [3 * n + 1]
        bal.set_shares(plan)
        assert check_plan(comm, bal, 4 * n) == plan and bal.last_decision.reason == "restore"
        bal.set_shares(np.array(plan[::-1]))  # any sequence of ints
        assert bal.shares == plan[::-1]
        with bad(r"Balancer.set_shares: argument 'shares' has 1 entries, not one per rank"):
            bal.set_shares([4 * n])
        with bad(r"argument 'shares' sums to"):
            bal.set_shares([1] * n)
        with bad(r"argument 'shares\[0\]' is 0, outside"):
            bal.set_shares([0] + [4] * (n - 1) + ([4] if n == 1 else []))
        with bad(r"Balancer.set_shares: argument 'shares' is 1.5, not an int"):
            bal.set_shares([1.5] * n)
        with bad(r"Balancer.set_shares: argument 'shares' is 3, not a sequence of ints"):
            bal.set_shares(3)
        if n > 1:  # a different plan on each rank: refused on every rank
            mine = [1] * n
            mine[comm.rank] += 3 * n
            with bad(r"the ranks passed different plans", hcrt.Error) as e:
                bal.set_shares(mine)
            assert e.value.name == "ERR_MISMATCH"
            assert bal.shares == plan[::-1]


def test_caps(comm):
    with hcrt.Balancer(comm, 4 * comm.size, 1, max_micro_batches=1 if comm.rank == 0 else 0) as bal:
        assert check_plan(comm, bal, 4 * comm.size)[0] == 1  # rank 0 may hold one micro-batch at most
    if comm.size > 1:
        with bad(r"memory holds at most \d+ of the \d+ micro-batches .*caps per rank: 2,2", hcrt.Error) as e:
            hcrt.Balancer(comm, 4 * comm.size, 1, max_micro_batches=2)
        assert e.value.name == "ERR_DEVICE_OOM"
    # A memory cap: sim devices hold HCRT_SIM_MEMORY (1 GiB by default); 64 MiB a sample, 4 a micro-batch.
    with hcrt.Balancer(comm, 3 * comm.size, 4, bytes_per_sample=64 << 20, device=comm._ctx.device) as bal:
        check_plan(comm, bal, 3 * comm.size)


def test_bad_arguments(ctx, comm):
    with bad(r"Balancer: argument 'comm' is a Context, not an hcrt.Comm"):
        hcrt.Balancer(ctx, 4, 1)
    with bad(r"Balancer: argument 'micro_batches' is 4.0, not an int"):
        hcrt.Balancer(comm, 4.0, 1)
    with bad(r"Balancer: argument 'mode' is 'fast', not one of off, static, online"):
        hcrt.Balancer(comm, 4, 1, mode="fast")
    with bad(r"Balancer: argument 'device' is a str, not an hcrt.Device"):
        hcrt.Balancer(comm, 4, 1, device="sim")
    with bad(r"Balancer: argument 'bytes_per_sample' is -1, below 0"):
        hcrt.Balancer(comm, 4, 1, bytes_per_sample=-1)
    with bad(r"Balancer: argument 'smoothing' is 'x', not a number"):
        hcrt.Balancer(comm, 4, 1, smoothing="x")
    # Ranges are the library's to check, naming the field, on every rank before any communication.
    with bad(r"hcrt_balancer_create: argument 'params->micro_batches' is \d+, fewer than the"):
        hcrt.Balancer(comm, comm.size - 1 if comm.size > 1 else 0, 1)
    with bad(r"argument 'params->micro_batch_size' is below 1"):
        hcrt.Balancer(comm, 4 * comm.size, 0)
    with bad(r"argument 'params->interval' is below 1"):
        hcrt.Balancer(comm, 4 * comm.size, 1, interval=0)
    with bad(r"argument 'params->smoothing' is not in \(0, 1\]"):
        hcrt.Balancer(comm, 4 * comm.size, 1, smoothing=1.5)
    with bad(r"argument 'params->hysteresis' is not in \[0, 1\)"):
        hcrt.Balancer(comm, 4 * comm.size, 1, hysteresis=1.0)
    if comm.size > 1:  # the ranks must agree on the global batch
        with bad(r"rank 1 passed params->micro_batch_size different from rank 0's", hcrt.Error) as e:
            hcrt.Balancer(comm, 4 * comm.size, 1 + comm.rank)
        assert e.value.name == "ERR_MISMATCH"
    with hcrt.Balancer(comm, 4 * comm.size, 2) as bal:
        with bad(r"hcrt_balancer_record: argument 'samples' is not positive"):
            bal.record(0, 1.0)
        with bad(r"hcrt_balancer_record: argument 'seconds'"):
            bal.record(2, -1.0)
        with bad(r"hcrt_balancer_record: argument 'seconds'"):
            bal.record(2, float("nan"))
        with bad(r"Balancer.record: argument 'samples' is '2', not an int"):
            bal.record("2", 1.0)
        with bad(r"Balancer.record: argument 'seconds' is None, not a number"):
            bal.record(2, None)


def test_allreduce_grads(ctx, comm, rng):
    """Rank r holds (r + 1) * 3 samples; each sample's gradient is a row of a table every rank can make.
    Summed with the counts, the result is the sum over all samples, as one rank would compute it."""
    n, dim = comm.size, 257
    counts = [(r + 1) * 3 for r in range(n)]
    table = rng.standard_normal((sum(counts), dim))
    first = sum(counts[:comm.rank])
    mine = table[first:first + counts[comm.rank]]
    g32 = mine.sum(axis=0).astype(np.float32)
    g64 = mine.sum(axis=0)
    dev = ctx.device.array(g32)
    total = comm.allreduce_grads([g32, g64, dev], counts[comm.rank])
    assert total == sum(counts)
    ref = table.sum(axis=0)
    bound = 2 * sum(counts) * 2.0 ** -24 * np.abs(table).sum(axis=0)
    assert np.all(np.abs(g32 - ref) <= bound) and np.all(np.abs(g64 - ref) <= bound * 2.0 ** -29)
    np.testing.assert_array_equal(dev.numpy(), g32)  # the same reduction on a device array
    # mean=True divides by the global count on the arrays' devices; a single array needs no list.
    h = mine.sum(axis=0).astype(np.float32)
    assert comm.allreduce_grads(h, counts[comm.rank], mean=True) == sum(counts)
    assert np.all(np.abs(h - ref / sum(counts)) <= bound / sum(counts) + 2.0 ** -23 * np.abs(ref) / sum(counts))
    # A rank without samples contributes zeros.
    z = np.zeros(4, np.float32) if comm.rank else np.ones(4, np.float32)
    assert comm.allreduce_grads(z, 0 if comm.rank else 1) == 1 and np.all(z == 1)


def test_allreduce_grads_bad(comm):
    with bad(r"Comm.allreduce_grads: argument 'grads\[1\]' has dtype i32; gradients are floating point"):
        comm.allreduce_grads([np.zeros(2, np.float32), np.zeros(2, np.int32)], 1)
    with bad(r"Comm.allreduce_grads: argument 'local_samples' is -1, below 0"):
        comm.allreduce_grads(np.zeros(2, np.float32), -1)
    with bad(r"Comm.allreduce_grads: argument 'local_samples' is 2.5, not an int"):
        comm.allreduce_grads(np.zeros(2, np.float32), 2.5)
    ro = np.zeros(2, np.float32)
    ro.flags.writeable = False
    with bad(r"Comm.allreduce_grads: argument 'grads' is read-only"):
        comm.allreduce_grads(ro, 1)
    with bad(r"Comm.allreduce_grads: argument 'grads' is a str"):
        comm.allreduce_grads("g", 1)
