"""tests/python/test_collectives.py - every collective of hcrt/comm.h from Python, under mpirun.

Run by meson on 3 ranks, two on sim devices and one on the host (tests/python/meson.build), so that every
call mixes backends. Each collective takes numpy arrays, DLPack producers (numpy's own __dlpack__ and a
hand-made producer) and DeviceArrays on the rank's own device; results are checked exactly against numpy
on inputs that are small integers (exact in every dtype).
"""
import numpy as np
import pytest

import hcrt
from dlpack_producer import Producer

KINDS = ["numpy", "numpy_dlpack", "dlpack", "device"]
DTYPES = ["int8", "uint8", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"]
OPS = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max}


class NumpyDLPack:
    """numpy's own __dlpack__ behind an object that is not an ndarray (so hcrt takes the DLPack path)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kw):
        return self.a.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def wrap(ctx, kind, a):
    """(argument for hcrt, function giving its current contents as numpy)."""
    if kind == "numpy":
        return a, a.copy
    if kind == "numpy_dlpack":
        return NumpyDLPack(a), a.copy
    if kind == "dlpack":
        return Producer.of(a), a.copy
    d = ctx.device.array(a)
    return d, d.numpy


def inputs(rank, n, dtype, op="sum"):
    i = np.arange(n)
    if op == "prod":
        return np.where((i + rank) % 3 == 0, 2, 1).astype(dtype)
    return ((rank * 7 + i * 3) % 5).astype(dtype)


def all_inputs(size, n, dtype, op="sum"):
    return np.stack([inputs(r, n, dtype, op) for r in range(size)])


# ---- reductions ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_allreduce(ctx, comm, kind, dtype, op):
    n = 1000
    x = inputs(comm.rank, n, dtype, op)
    arg, get = wrap(ctx, kind, x)
    assert comm.allreduce(arg, op=op) is arg
    expect = OPS[op](all_inputs(comm.size, n, dtype, op), axis=0).astype(dtype)
    np.testing.assert_array_equal(get(), expect)


@pytest.mark.parametrize("kind", KINDS)
def test_allreduce_avg_out_of_place(ctx, comm, kind):
    x = inputs(comm.rank, 4099, "float64")
    out = np.zeros_like(x)
    arg, _ = wrap(ctx, kind, x)
    oarg, oget = wrap(ctx, kind, out)
    assert comm.allreduce(arg, op="avg", out=oarg) is oarg
    np.testing.assert_allclose(oget(), all_inputs(comm.size, 4099, "float64").mean(axis=0), rtol=1e-15)
    np.testing.assert_array_equal(x, inputs(comm.rank, 4099, "float64"))  # the input is left alone


def test_allreduce_bf16_through_dlpack(ctx, comm):
    # bf16 has no numpy dtype: the bits live in a uint16 array, described to hcrt as DLPack bfloat16.
    vals = inputs(comm.rank, 333, "float32")
    bits = (vals.view(np.uint32) >> 16).astype(np.uint16)
    comm.allreduce(Producer.of(bits, code=4, bits=16))
    got = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(got, all_inputs(comm.size, 333, "float32").sum(axis=0))


@pytest.mark.parametrize("kind", KINDS)
def test_reduce(ctx, comm, kind):
    root = 1 % comm.size
    x = inputs(comm.rank, 777, "int32")
    arg, get = wrap(ctx, kind, x)
    res = comm.reduce(arg, op="max", root=root)
    if comm.rank == root:
        assert res is arg
        np.testing.assert_array_equal(get(), all_inputs(comm.size, 777, "int32").max(axis=0))
    else:
        assert res is None
        np.testing.assert_array_equal(get(), x)  # only the root receives
    y = inputs(comm.rank, 777, "int32")
    out = np.zeros(777, np.int32)
    yarg, _ = wrap(ctx, kind, y)
    oarg, oget = wrap(ctx, kind, out)
    res = comm.reduce(yarg, op="sum", root=root, out=oarg if comm.rank == root else None)
    if comm.rank == root:
        assert res is oarg
        np.testing.assert_array_equal(oget(), all_inputs(comm.size, 777, "int32").sum(axis=0))


@pytest.mark.parametrize("kind", KINDS)
def test_reduce_scatter(ctx, comm, kind):
    k = 37
    x = inputs(comm.rank, k * comm.size, "float32")
    arg, _ = wrap(ctx, kind, x)
    out = comm.reduce_scatter(arg)
    got = out.numpy() if isinstance(out, hcrt.DeviceArray) else out
    assert isinstance(out, hcrt.DeviceArray) == (kind == "device")
    full = all_inputs(comm.size, k * comm.size, "float32").sum(axis=0)
    np.testing.assert_array_equal(got, full[comm.rank * k:(comm.rank + 1) * k])
    dest = np.zeros(k, np.float32)
    if kind != "device":
        comm.reduce_scatter(arg, op="min", out=dest)
        mins = all_inputs(comm.size, k * comm.size, "float32").min(axis=0)
        np.testing.assert_array_equal(dest, mins[comm.rank * k:(comm.rank + 1) * k])


# ---- data movement -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_broadcast(ctx, comm, kind):
    root = comm.size - 1
    x = inputs(comm.rank, 5000, "uint8") if comm.rank == root else np.zeros(5000, np.uint8)
    arg, get = wrap(ctx, kind, x)
    assert comm.broadcast(arg, root=root) is arg
    np.testing.assert_array_equal(get(), inputs(root, 5000, "uint8"))


@pytest.mark.parametrize("kind", KINDS)
def test_allgather(ctx, comm, kind):
    x = inputs(comm.rank, 64, "int64").reshape(8, 8)
    arg, _ = wrap(ctx, kind, x)
    out = comm.allgather(arg)
    got = out.numpy() if isinstance(out, hcrt.DeviceArray) else out
    assert got.shape == (comm.size, 8, 8)
    np.testing.assert_array_equal(got.reshape(comm.size, 64), all_inputs(comm.size, 64, "int64"))
    dest = np.full((comm.size, 8, 8), -1, np.int64)
    if kind != "device":
        assert comm.allgather(arg, out=dest) is dest
        np.testing.assert_array_equal(dest, got)


def test_allgatherv(ctx, comm):
    counts = [r + 2 for r in range(comm.size)]
    displs = [sum(counts[:r]) + r for r in range(comm.size)]  # a gap of one element after each block
    x = np.full(counts[comm.rank], comm.rank + 1, np.float32)
    out = np.zeros(displs[-1] + counts[-1] + 1, np.float32)
    comm.allgatherv(Producer.of(x), out, counts, displs)
    for r in range(comm.size):
        np.testing.assert_array_equal(out[displs[r]:displs[r] + counts[r]], r + 1)
        assert out[displs[r] + counts[r]] == 0
    compact = np.zeros(sum(counts), np.float32)
    comm.allgatherv(x, compact, counts)
    np.testing.assert_array_equal(compact, np.repeat(np.arange(1, comm.size + 1), counts))


@pytest.mark.parametrize("kind", KINDS)
def test_alltoall(ctx, comm, kind):
    k = 5
    x = (np.arange(k * comm.size) + 100 * comm.rank).astype(np.int32)
    arg, _ = wrap(ctx, kind, x)
    out = comm.alltoall(arg)
    got = out.numpy() if isinstance(out, hcrt.DeviceArray) else out
    expect = np.concatenate([np.arange(comm.rank * k, (comm.rank + 1) * k) + 100 * r for r in range(comm.size)])
    np.testing.assert_array_equal(got, expect)


def test_alltoallv(ctx, comm):
    # Rank r sends j + 1 elements of value 10 r + j to rank j.
    sc = [j + 1 for j in range(comm.size)]
    x = np.concatenate([np.full(j + 1, 10 * comm.rank + j, np.int64) for j in range(comm.size)])
    rc = [comm.rank + 1] * comm.size
    out = np.zeros(sum(rc), np.int64)
    comm.alltoallv(x, sc, out, rc)
    np.testing.assert_array_equal(out, np.repeat([10 * r + comm.rank for r in range(comm.size)], comm.rank + 1))


@pytest.mark.parametrize("kind", KINDS)
def test_gather_scatter(ctx, comm, kind):
    root = 0
    x = inputs(comm.rank, 10, "float64")
    arg, _ = wrap(ctx, kind, x)
    out = comm.gather(arg, root=root)
    if comm.rank == root:
        got = out.numpy() if isinstance(out, hcrt.DeviceArray) else out
        np.testing.assert_array_equal(got, all_inputs(comm.size, 10, "float64"))
    else:
        assert out is None
    root = 1 % comm.size
    send = np.arange(comm.size * 6, dtype=np.float64) if comm.rank == root else None
    recv = np.zeros(6)
    rarg, rget = wrap(ctx, kind, recv)
    sarg = wrap(ctx, kind, send)[0] if send is not None else None
    assert comm.scatter(sarg, rarg, root=root) is rarg
    np.testing.assert_array_equal(rget(), np.arange(comm.rank * 6, (comm.rank + 1) * 6))


@pytest.mark.parametrize("kind", KINDS)
def test_send_recv_ring(ctx, comm, kind):
    right, left = (comm.rank + 1) % comm.size, (comm.rank - 1) % comm.size
    x = np.full(1000, comm.rank, np.int32)
    y = np.zeros(1000, np.int32)
    xa, _ = wrap(ctx, kind, x)
    ya, yget = wrap(ctx, kind, y)
    # Rank 0 sends first, every other rank receives first: a ring of blocking calls for any size.
    if comm.rank == 0:
        comm.send(xa, right, tag=7)
        comm.recv(ya, left, tag=7)
    else:
        comm.recv(ya, left, tag=7)
        comm.send(xa, right, tag=7)
    np.testing.assert_array_equal(yget(), np.full(1000, left, np.int32))


def test_split_dup_and_rank_info(ctx, comm):
    sub = comm.split(comm.rank % 2, key=-comm.rank)
    members = [r for r in range(comm.size) if r % 2 == comm.rank % 2]
    assert sub.size == len(members) and sub.rank == len(members) - 1 - members.index(comm.rank)
    x = np.array([comm.rank], np.int64)
    sub.allreduce(x)
    assert x[0] == sum(members)
    none = comm.split(None if comm.rank == 0 else 1)
    assert (none is None) == (comm.rank == 0)
    d = comm.dup()
    assert (d.rank, d.size) == (comm.rank, comm.size)
    info = [comm.rank_info(r) for r in range(comm.size)]
    assert info[comm.rank]["backend"] == ctx.device.backend
    assert info[comm.rank]["device_index"] == ctx.device.index
    assert comm.node_count >= 1
    for c in (sub, none, d):
        if c is not None:
            c.close()


def test_barrier(comm):
    comm.barrier()
    comm.ibarrier().wait()


# ---- nonblocking -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_nonblocking(ctx, comm, kind):
    a = inputs(comm.rank, 3000, "float32")
    b = inputs(comm.rank, 3000 * comm.size, "float32")
    c = inputs(comm.rank, 100, "int32") if comm.rank == 0 else np.zeros(100, np.int32)
    d = inputs(comm.rank, 100, "int32")
    aa, aget = wrap(ctx, kind, a)
    ba, _ = wrap(ctx, kind, b)
    ca, cget = wrap(ctx, kind, c)
    da, _ = wrap(ctx, kind, d)
    # Several requests outstanding at once, on distinct arrays (an array in flight is not touched).
    reqs = [comm.iallreduce(aa, op="sum"), comm.ireduce_scatter(ba, op="max"), comm.ibroadcast(ca, root=0),
            comm.iallgather(da), comm.ibarrier()]
    if isinstance(aa, Producer):
        assert aa.deleted == 0  # the memory is in use until the request completes
    while not reqs[1].test():
        pass
    assert reqs[1].done and reqs[1].test()
    results = [r.wait() for r in reversed(reqs)][::-1]
    if isinstance(aa, Producer):
        assert aa.deleted == aa.exported == 1
    np.testing.assert_array_equal(aget(), all_inputs(comm.size, 3000, "float32").sum(axis=0))
    rs = results[1].numpy() if isinstance(results[1], hcrt.DeviceArray) else results[1]
    full = all_inputs(comm.size, 3000 * comm.size, "float32").max(axis=0)
    np.testing.assert_array_equal(rs, full[comm.rank * 3000:(comm.rank + 1) * 3000])
    np.testing.assert_array_equal(cget(), inputs(0, 100, "int32"))
    ag = results[3].numpy() if isinstance(results[3], hcrt.DeviceArray) else results[3]
    np.testing.assert_array_equal(ag, all_inputs(comm.size, 100, "int32"))
    assert results[4] is None


def test_dlpack_memory_given_back(ctx, comm):
    x = np.ones(10, np.float32)
    p = Producer.of(x)
    comm.allreduce(p)
    comm.allreduce(p, out=Producer.of(np.empty(10, np.float32)))
    assert p.exported == p.deleted == 2
    v = Producer.of(x, versioned=True)
    comm.allreduce(v)
    assert v.exported == v.deleted == 1
    np.testing.assert_array_equal(x, comm.size * comm.size)


# ---- mpi4py ------------------------------------------------------------------------------------------------

def test_comm_from_mpi4py(ctx, comm):
    MPI = pytest.importorskip("mpi4py.MPI", reason="mpi4py is not installed (tools/scripts/install-deps.sh "
                                                   "installs it)")
    half = MPI.COMM_WORLD.Split(comm.rank % 2, comm.rank)
    c = ctx.comm_from_mpi(half)
    assert (c.rank, c.size) == (half.Get_rank(), half.Get_size())
    x = np.array([comm.rank + 1.0])
    c.allreduce(x)
    assert x[0] == sum(r + 1 for r in range(comm.size) if r % 2 == comm.rank % 2)
    c.close()
    half.Free()
    with pytest.raises(hcrt.InvalidArgument, match="'comm'"):
        ctx.comm_from_mpi("world")


# ---- device arrays ----------------------------------------------------------------------------------------

def test_device_array_dlpack_export(ctx, comm):
    h = ctx.host.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    view = np.from_dlpack(h)
    assert view.shape == (3, 4) and view.flags.writeable
    view[1, 1] = -5
    assert h.numpy()[1, 1] == -5  # a view, not a copy
    comm.allreduce(h)
    assert view[2, 3] == 11 * comm.size
    sim = ctx.find_device("sim", 0)
    s = sim.array(np.arange(4, dtype=np.int64))
    with pytest.raises(BufferError, match="not host-addressable"):
        np.from_dlpack(s)
    np.testing.assert_array_equal(hcrt.DeviceArray.from_numpy(Producer.of(np.arange(4)), sim).numpy(), np.arange(4))
    np.testing.assert_array_equal(s.copy_from(np.full(4, 9)).numpy(), 9)
