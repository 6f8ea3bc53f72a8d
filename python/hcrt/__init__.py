"""hcrt: Python binding of the heterogeneous chip runtime (ctypes over libhcrt.so, pure Python).

    import numpy as np, hcrt
    with hcrt.Context() as ctx:             # under `mpirun -np N python3 script.py`
        comm = ctx.comm_world()
        x = np.ones(1024, dtype=np.float32)
        comm.allreduce(x)                   # in place, like torch.distributed.all_reduce
        d = ctx.device.array(x)             # a copy on this rank's device (sim, cuda, ... or host)
        comm.allreduce(d, op="max")         # device arrays go straight into collectives
        print(ctx.rank, d.numpy()[:4])

Arrays are numpy arrays, any object with ``__dlpack__`` on host memory (torch, cupy's pinned arrays, jax,
numpy), or hcrt DeviceArrays; none is copied on the way in. Errors raise hcrt.Error with the status name
and hcrt's message (InvalidArgument names the argument; RestartableError carries the exit status a job
under hcrt-run should end with, and an uncaught hcrt.Error ends the process with it). libhcrt is found as
hcrt._lib describes; library_path() says which file was loaded.

Training across chips of different speeds: Balancer (each rank's share of the global batch, from measured
throughput), Comm.allreduce_grads (gradients summed with the sample counts) or ExactAccumulator (summed
exactly: the same bits for any world size and split), hcrt.compute (the MLP's operations on DeviceArrays
of the rank's device), and the run calls (Context.heartbeat, catch_signals, Comm.should_stop) that let a
script run under hcrt-run. examples/python/train_mlp.py uses all of them.
"""
import ctypes

from . import compute
from ._arrays import DTYPES
from ._balance import Balancer, Decision
from ._ckpt import LATEST, Checkpoint
from ._comm import OPS, Comm, Request
from ._core import Context, Device, DeviceArray
from ._errors import Error, InvalidArgument, RestartableError
from ._exact import ExactAccumulator
from ._lib import lib, library_path
from ._stream import Event, Stream
from ._trace import trace_clock

__all__ = ["Error", "InvalidArgument", "RestartableError", "Context", "Device", "DeviceArray", "Comm", "Request",
           "Checkpoint", "LATEST", "Balancer", "Decision", "ExactAccumulator", "Stream", "Event", "compute",
           "trace_clock", "version", "library_path", "exit_status", "exit_name", "EXIT_PREEMPTED", "DTYPES", "OPS"]

EXIT_PREEMPTED = 120  # HCRT_EXIT_PREEMPTED: a job that saved and stopped on request ends with it

__version__ = "1.0.0"


def version():
    """The library's version as (major, minor, patch)."""
    v = [ctypes.c_int() for _ in range(3)]
    lib.hcrt_version(*[ctypes.byref(x) for x in v])
    return tuple(x.value for x in v)


def exit_status(error):
    """The exit status a process should end with after `error` (an hcrt.Error, or a status code), by the
    exit policy of hcrt/exit.h: 0 for success, 121..125 for failures a restart may cure, others not."""
    status = error.status if isinstance(error, Error) else int(error)
    return lib.hcrt_exit_status(status)


def exit_name(exit_status):
    """The exit policy's name of an exit status ("TIMEOUT", "PREEMPTED", "SIGNAL" for 129..159, ...)."""
    return lib.hcrt_exit_name(int(exit_status)).decode()
