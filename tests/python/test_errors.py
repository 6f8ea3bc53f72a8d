"""tests/python/test_errors.py - bad input raises hcrt.Error naming the argument, under mpirun.

Every check here fails on the calling rank before any communication (so the ranks stay in step): wrong
and unknown dtypes, non-contiguous numpy and DLPack arrays, read-only outputs, receive arrays of the wrong
size, device pointers passed as host memory (caught by the library's allocation table), DLPack memory of
a device this context lacks, bad roots and ops, and every object of a closed communicator or context.
"""
import numpy as np
import pytest

import hcrt
from hcrt import _dlpack
from dlpack_producer import Producer


def bad(match, kind=hcrt.InvalidArgument):
    return pytest.raises(kind, match=match)


def test_error_classes():
    e = hcrt._errors.make_error(-1, "f: argument 'x' is bad")
    assert isinstance(e, hcrt.InvalidArgument) and isinstance(e, ValueError) and e.name == "ERR_INVALID_ARG"
    assert e.exit_status == 4 and not e.restartable  # HCRT_EXIT_APP
    t = hcrt._errors.make_error(-12, "deadline")  # HCRT_ERR_TIMEOUT
    assert isinstance(t, hcrt.RestartableError) and t.exit_status == 124 and t.restartable
    assert hcrt.exit_status(t) == 124 and hcrt.exit_status(-9) == 121  # DEVICE_LOST
    c = hcrt._errors.make_error(-17, "config")
    assert type(c) is hcrt.Error and c.exit_status == 3


def test_wrong_dtype(comm):
    with bad(r"Comm.allreduce: argument 'buf' has dtype complex64"):
        comm.allreduce(np.zeros(4, np.complex64))
    with bad(r"argument 'buf' has dtype bool"):
        comm.allreduce(np.zeros(4, bool))
    with bad(r"argument 'buf' has DLPack dtype \(code 5, 64 bits"):  # kDLComplex
        comm.allreduce(Producer.of(np.zeros(4, np.float64), code=5))
    with bad(r"argument 'buf' has DLPack dtype .*2 lanes"):
        comm.allreduce(Producer.of(np.zeros(4, np.float32), lanes=2))
    with bad(r"argument 'out' has dtype f64 but argument 'buf' has f32"):
        comm.allreduce(np.zeros(4, np.float32), out=np.zeros(4, np.float64))
    with bad(r"argument 'op' is 'median'"):
        comm.allreduce(np.zeros(4, np.float32), op="median")


def test_not_contiguous(comm):
    a = np.zeros((4, 6), np.float32)
    with bad(r"Comm.allreduce: argument 'buf' is not C-contiguous \(shape \(4, 3\)"):
        comm.allreduce(a[:, ::2])
    with bad(r"Comm.broadcast: argument 'buf' is not C-contiguous"):
        comm.broadcast(a.T)
    with bad(r"Comm.allgather: argument 'buf' is not contiguous \(DLPack shape \(4, 3\), strides \(6, 2\)"):
        comm.allgather(Producer(a, a.ctypes.data, (4, 3), 2, 32, strides=(6, 2)))
    p = Producer.of(a[:, :1].copy(), strides=(1, 99))  # a dimension of extent 1 may have any stride
    comm.allreduce(p)
    assert p.deleted == p.exported == 1


def test_read_only_outputs(comm):
    a = np.zeros(4, np.float32)
    a.flags.writeable = False
    with bad(r"argument 'buf' is read-only"):
        comm.allreduce(a)
    comm.allreduce(a, out=np.zeros(4, np.float32))  # read-only input of an out-of-place call is fine
    with bad(r"argument 'out' is read-only \(DLPack flag\)"):
        comm.allreduce(np.zeros(4, np.float32), out=Producer.of(np.zeros(4, np.float32), versioned=True,
                                                                 read_only=True))


def test_sizes(ctx, comm):
    with bad(r"Comm.allreduce: argument 'out' has 3 elements but argument 'buf' has 4"):
        comm.allreduce(np.zeros(4, np.float32), out=np.zeros(3, np.float32))
    with bad(rf"Comm.allgather: argument 'out' has 7 elements; {comm.size} blocks of argument 'buf' need "
             rf"{2 * comm.size}"):
        comm.allgather(np.zeros(2, np.int32), out=np.zeros(7, np.int32))
    with bad(rf"argument 'buf' has {comm.size * 2 + 1} elements, not a multiple of the {comm.size} ranks"):
        comm.reduce_scatter(np.zeros(comm.size * 2 + 1, np.float32))
    with bad(r"argument 'out' has 5 elements; this rank's block of argument 'buf' has 2"):
        comm.reduce_scatter(np.zeros(comm.size * 2, np.float32), out=np.zeros(5, np.float32))
    with bad(r"Comm.allgatherv: argument 'counts' is \[1\]"):
        comm.allgatherv(np.zeros(1), np.zeros(10), [1])
    with bad(r"Comm.alltoall: argument 'out' is argument 'buf' itself"):
        x = np.zeros(comm.size, np.int32)
        comm.alltoall(x, out=x)
    with bad(r"Comm.reduce: argument 'root' is 99"):
        comm.reduce(np.zeros(1), root=99)
    with bad(r"Comm.allreduce: argument 'buf' is a list"):
        comm.allreduce([1.0, 2.0])
    with bad(r"argument 'out' lives on sim:0 but argument 'buf' on the host"):
        comm.allreduce(np.zeros(4, np.float32), out=ctx.find_device("sim", 0).empty(4, "f32"))
    with bad(r"DeviceArray.copy_from: argument 'data' has 32 bytes \(8 f32\), the DeviceArray 16"):
        ctx.device.empty(4, "f32").copy_from(np.zeros(8, np.float32))


def test_device_memory_passed_as_host(ctx, comm):
    # A producer that claims a sim pointer is host memory: libhcrt knows the allocation and refuses it
    # instead of letting the host dereference it (which used to end in SIGSEGV).
    sim = ctx.find_device("sim", 0).empty(16, "f32")
    with bad(r"hcrt_comm_allreduce: argument 'recv' is memory of sim device 0 \(hcrt_mem_alloc, 64 bytes\) but "
             r"argument 'device' is NULL \(host memory\)"):
        comm.allreduce(Producer(sim, sim.ptr.value, (16,), 2, 32))
    small = ctx.host.empty(4, "f32")
    with bad(r"argument 'recv' needs 64 bytes from offset 0 of its allocation, which has 16 bytes"):
        comm.allreduce(Producer(small, small.ptr.value, (16,), 2, 32))
    with bad(r"argument 'buf' lives on DLPack device cuda:3, which this hcrt context does not have"):
        comm.allreduce(Producer.of(np.zeros(4, np.float32), device_type=_dlpack.KDL_CUDA, device_id=3))
    with bad(r"DLPack device opencl:0"):
        comm.allreduce(Producer.of(np.zeros(4, np.float32), device_type=4))


def test_closed_communicator_and_context(comm):
    ctx2 = hcrt.Context()
    c2 = ctx2.comm_world()
    d2 = ctx2.device.array(np.arange(4, dtype=np.float32))
    sub = c2.dup()
    sub.close()
    with bad(r"Comm.allreduce: the communicator is closed", hcrt.Error):
        sub.allreduce(np.zeros(1))
    ctx2.close()
    assert ctx2.closed and c2.closed and d2.freed
    for call, what in [(lambda: c2.allreduce(np.zeros(1)), "Comm.allreduce"), (lambda: c2.barrier(), "Comm.barrier"),
                       (lambda: c2.iallreduce(np.zeros(1)), "Comm.iallreduce"),
                       (lambda: ctx2.device.array(np.zeros(1)), "DeviceArray"),
                       (lambda: ctx2.comm_world(), "Context.comm_world"),
                       (lambda: ctx2.devices(), "Context.devices"),
                       (lambda: d2.numpy(), "DeviceArray.numpy"),
                       (lambda: hcrt.Checkpoint(ctx2, "/tmp/never"), "Checkpoint")]:
        with pytest.raises(hcrt.Error, match=rf"{what}: the hcrt context is closed") as e:
            call()
        assert e.value.name == "ERR_STATE"
    with bad(r"Comm.allreduce: argument 'buf' is a DeviceArray that was freed"):
        comm.allreduce(d2)
    ctx2.close()  # idempotent
