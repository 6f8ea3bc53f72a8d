"""tests/python/test_checkpoint.py - hcrt.Checkpoint from Python, under mpirun (mixed sim and host ranks).

Replicated and sharded arrays from numpy, DLPack and DeviceArrays are saved, overwritten and restored bit
for bit, with dict and bytes metadata; latest(), list(), test() and keep; bad registrations name the
argument. (Saving, killing a rank and restoring is tests/python/ckpt_kill.py.)
"""
import os
import shutil
import tempfile

import numpy as np
import pytest

import hcrt
from dlpack_producer import Producer


@pytest.fixture
def shared_dir(comm):
    """A fresh directory every rank sees (rank 0 makes it and broadcasts its name)."""
    name = np.zeros(256, np.uint8)
    if comm.rank == 0:
        path = tempfile.mkdtemp(prefix="hcrt-pyckpt-").encode()
        name[:len(path)] = np.frombuffer(path, np.uint8)
    comm.broadcast(name, root=0)
    path = bytes(name).rstrip(b"\0").decode()
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)


def rows_of(rank, size, n):
    """This rank's rows [first, first + count) of n rows, uneven on purpose."""
    cuts = [0] + [(n * (r + 1) + r) // size for r in range(size)]
    cuts[-1] = n
    return cuts[rank], cuts[rank + 1] - cuts[rank]


def test_save_restore(ctx, comm, shared_dir):
    n, d = 101, 7
    first, count = rows_of(comm.rank, comm.size, n)
    full = np.arange(n * d, dtype=np.float32).reshape(n, d)
    shard = full[first:first + count].copy()
    weights = np.linspace(0, 1, 50)                         # replicated, numpy
    bias = np.arange(9, dtype=np.int64)                     # replicated, through DLPack
    dev = ctx.device.array(np.full(33, 3, np.int32))        # replicated, on this rank's device (sim or host)
    with hcrt.Checkpoint(ctx, shared_dir, keep=2, local_dir="") as ck:
        ck.register("emb", shard, global_shape=(n, d), shard=(first, count))
        ck.register("w", weights)
        ck.register("b", Producer.of(bias))
        ck.register("dev", dev)
        assert ck.latest() is None and ck.list() == []
        assert ck.restore() == (None, None)  # a fresh job: nothing to resume from
        ck.save(1, meta={"epoch": 1, "note": "first"})
        while not ck.test():
            pass
        ck.save(2, meta=b"\x00raw bytes")
        ck.wait()
        weights[:] = -1
        bias[:] = -1
        shard[:] = -1
        dev.copy_from(np.zeros(33, np.int32))
        ck.save(3, meta={"epoch": 3})
        ck.wait()
        # (rank 0 removes steps beyond keep=2 in the background after the commit: step 1 may linger)
        assert ck.latest() == 3 and ck.list()[:2] == [3, 2]
        shard[:] = 0
        step, meta = ck.restore(2)
        assert step == 2 and meta == b"\x00raw bytes"
        np.testing.assert_array_equal(shard, full[first:first + count])
        np.testing.assert_array_equal(weights, np.linspace(0, 1, 50))
        np.testing.assert_array_equal(bias, np.arange(9))
        np.testing.assert_array_equal(dev.numpy(), 3)
        step, meta = ck.restore()
        assert step == 3 and meta == {"epoch": 3}
        np.testing.assert_array_equal(weights, -1)
        with pytest.raises(hcrt.Error, match="step 7") as e:
            ck.restore(7)  # never saved
        assert e.value.name == "ERR_NOT_FOUND"


def test_reshard_on_restore(ctx, comm, shared_dir):
    # Saved with every rank holding its rows, restored into one replicated copy per rank.
    n = 40
    first, count = rows_of(comm.rank, comm.size, n)
    with hcrt.Checkpoint(ctx, shared_dir, local_dir="") as ck:
        part = (np.arange(first, first + count) * 2).astype(np.float64)
        ck.register("v", part, global_shape=(n,), shard=(first, count))
        ck.save(5)
    whole = np.zeros(n)
    with hcrt.Checkpoint(ctx, shared_dir, local_dir="") as ck:
        ck.register("v", whole)
        assert ck.restore()[0] == 5
    np.testing.assert_array_equal(whole, np.arange(n) * 2.0)


def test_bad_registrations(ctx, comm, shared_dir):
    with hcrt.Checkpoint(ctx, shared_dir, local_dir="") as ck:
        a = np.zeros(10, np.float32)
        with pytest.raises(hcrt.InvalidArgument, match=r"Checkpoint.register: argument 'global_shape' is needed"):
            ck.register("a", a, shard=(0, 10))
        with pytest.raises(hcrt.InvalidArgument, match=r"argument 'shard' is \(-1, 10\)"):
            ck.register("a", a, global_shape=(10,), shard=(-1, 10))
        with pytest.raises(hcrt.InvalidArgument, match=r"argument 'array' is not C-contiguous"):
            ck.register("a", np.zeros((4, 4))[:, 1])
        with pytest.raises(hcrt.InvalidArgument, match=r"hcrt_ckpt_register: argument 'name'"):
            ck.register("a/b", a)
        with pytest.raises(hcrt.InvalidArgument, match=r"argument 'global_shape' is \(\)"):
            ck.register("a", a, global_shape=())
        with pytest.raises(hcrt.InvalidArgument, match=r"argument 'meta' is a str"):
            ck.save(1, meta="text")
        ck.register("a", a)
        with pytest.raises(hcrt.InvalidArgument, match=r"'a' is already registered"):
            ck.register("a", a)
    with pytest.raises(hcrt.InvalidArgument, match=r"Checkpoint: argument 'busy'"):
        hcrt.Checkpoint(ctx, shared_dir, busy="sometimes")
    with pytest.raises(hcrt.Error, match=r"Checkpoint.save: the checkpoint is closed"):
        ck.save(2)
    assert os.path.isdir(shared_dir)
