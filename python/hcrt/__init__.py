"""hcrt: Python binding of the heterogeneous chip runtime (ctypes over libhcrt.so).

    import numpy as np, hcrt
    with hcrt.Context() as ctx:             # under `mpirun -np N python3 script.py`
        comm = ctx.comm_world()
        x = np.ones(1024, dtype=np.float32)
        comm.allreduce(x)                   # in place, like torch.distributed.all_reduce
        d = ctx.device.array(x)             # a copy on this rank's device (sim, cuda, ... or host)
        comm.allreduce(d, op="max")         # device arrays go straight into collectives
        print(ctx.rank, d.numpy()[:4])

Errors raise hcrt.Error carrying the status name and hcrt's message.
"""
import ctypes

from . import _lib
from ._lib import lib

__all__ = ["Error", "Context", "Device", "DeviceArray", "Comm", "version", "DTYPES", "OPS"]

DTYPES = {"i8": 0, "u8": 1, "i32": 2, "u32": 3, "i64": 4, "u64": 5, "f16": 6, "bf16": 7, "f32": 8, "f64": 9}
OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 4}
_NUMPY_TO_HCRT = {"int8": "i8", "uint8": "u8", "int32": "i32", "uint32": "u32", "int64": "i64", "uint64": "u64",
                  "float16": "f16", "float32": "f32", "float64": "f64"}
_SIZES = {"i8": 1, "u8": 1, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "f16": 2, "bf16": 2, "f32": 4, "f64": 8}
_BACKEND_STATUS = {0: "loaded", 1: "unavailable", 2: "broken", 3: "filtered"}
_IN_PLACE = ctypes.c_void_p(1)
INIT_NO_MPI = 1


class Error(Exception):
    """An hcrt call failed. `status` is the code, `name` its symbolic name, `message` hcrt's detail."""

    def __init__(self, status, message):
        self.status = status
        self.name = lib.hcrt_status_name(status).decode()
        self.message = message
        super().__init__(f"{self.name}: {message}")


def _check(status, ctx=None):
    if status != 0:
        raise Error(status, lib.hcrt_last_error(ctx).decode(errors="replace"))


def version():
    """The library's version as (major, minor, patch)."""
    v = [ctypes.c_int() for _ in range(3)]
    lib.hcrt_version(*[ctypes.byref(x) for x in v])
    return tuple(x.value for x in v)


def _dtype_name(dtype):
    if dtype is None:
        raise ValueError("dtype is required")
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    import numpy as np
    name = np.dtype(dtype).name
    if name not in _NUMPY_TO_HCRT:
        raise ValueError(f"dtype {name!r} is not supported by hcrt (supported: {sorted(_NUMPY_TO_HCRT)})")
    return _NUMPY_TO_HCRT[name]


def _op_code(op):
    if op not in OPS:
        raise ValueError(f"op {op!r} is not one of {sorted(OPS)}")
    return OPS[op]


class Device:
    """One device of a context (host, sim, cuda, ...). Lives as long as its context."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._h = ctypes.c_void_p(handle)
        p = _lib.DeviceProps(struct_size=ctypes.sizeof(_lib.DeviceProps))
        _check(lib.hcrt_device_get_props(self._h, ctypes.byref(p)), ctx._h)
        self.backend = p.backend.decode()
        self.index = p.index
        self.name = p.name.decode()
        self.vendor = p.vendor.decode()
        self.pci_bus_id = p.pci_bus_id.decode()
        self.total_memory = p.total_memory
        self.speed = p.speed
        self.numa_node = p.numa_node
        self.host_addressable = bool(p.host_addressable)

    def __repr__(self):
        return f"<hcrt.Device {self.backend}:{self.index} {self.name!r}>"

    def __eq__(self, other):
        return isinstance(other, Device) and self._h.value == other._h.value

    def __hash__(self):
        return hash(self._h.value)

    def empty(self, shape, dtype="f32"):
        """Allocates an uninitialised DeviceArray of `shape` and `dtype` on this device."""
        return DeviceArray(self, shape, _dtype_name(dtype))

    def array(self, host_array, dtype=None):
        """A DeviceArray on this device holding a copy of the numpy array `host_array`."""
        import numpy as np
        a = np.ascontiguousarray(host_array)
        out = DeviceArray(self, a.shape, dtype or _dtype_name(a.dtype))
        if out.nbytes != a.nbytes:
            raise ValueError(f"dtype {out.dtype} does not match the array's item size {a.itemsize}")
        out.copy_from(a)
        return out


class DeviceArray:
    """Memory on a device, with a shape and an hcrt dtype. hcrt never dereferences it from the host:
    numpy() and copy_from() copy through the device's backend. Freed by free() or when collected."""

    def __init__(self, device, shape, dtype):
        self.device = device
        self.shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        if any(s < 0 for s in self.shape):
            raise ValueError(f"shape {self.shape} has a negative extent")
        self.dtype = dtype
        self.size = 1
        for s in self.shape:
            self.size *= s
        self.nbytes = self.size * _SIZES[dtype]
        self.ptr = ctypes.c_void_p()
        if self.nbytes:
            _check(lib.hcrt_mem_alloc(device._h, self.nbytes, ctypes.byref(self.ptr)), device._ctx._h)

    def _host(self):
        return self.device._ctx.host

    def numpy(self):
        """A host copy as a numpy array (bf16 comes back as uint16 bit patterns)."""
        import numpy as np
        npdt = {v: k for k, v in _NUMPY_TO_HCRT.items()}.get(self.dtype, "uint16")
        out = np.empty(self.shape, dtype=npdt)
        if self.nbytes:
            _check(lib.hcrt_memcpy(self._host()._h, out.ctypes.data, self.device._h, self.ptr, self.nbytes),
                   self.device._ctx._h)
        return out

    def copy_from(self, host_array):
        """Copies a numpy array of the same byte size into this array."""
        import numpy as np
        a = np.ascontiguousarray(host_array)
        if a.nbytes != self.nbytes:
            raise ValueError(f"size mismatch: array has {a.nbytes} bytes, device array {self.nbytes}")
        if self.nbytes:
            _check(lib.hcrt_memcpy(self.device._h, self.ptr, self._host()._h, a.ctypes.data, self.nbytes),
                   self.device._ctx._h)

    def free(self):
        if self.ptr and self.ptr.value and self.device._ctx._h:
            lib.hcrt_mem_free(self.device._h, self.ptr)
        self.ptr = ctypes.c_void_p()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass

    def __repr__(self):
        return f"<hcrt.DeviceArray {self.shape} {self.dtype} on {self.device.backend}:{self.device.index}>"


def _buffer(ctx, buf, dtype=None):
    """(pointer, count, dtype name, device handle, keepalive) of a numpy array or DeviceArray."""
    if isinstance(buf, DeviceArray):
        if dtype is not None and _dtype_name(dtype) != buf.dtype:
            raise ValueError(f"dtype {dtype!r} does not match the device array's {buf.dtype}")
        return buf.ptr, buf.size, buf.dtype, buf.device._h, buf
    import numpy as np
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"expected a numpy array or hcrt.DeviceArray, got {type(buf).__name__}")
    if not buf.flags.c_contiguous:
        raise ValueError("numpy arrays passed to hcrt must be C-contiguous")
    if not buf.flags.writeable:
        raise ValueError("numpy arrays passed to hcrt collectives must be writeable")
    name = _dtype_name(dtype) if dtype is not None else _dtype_name(buf.dtype)
    count = buf.nbytes // _SIZES[name]
    return ctypes.c_void_p(buf.ctypes.data), count, name, None, buf


class Comm:
    """A communicator over MPI (hcrt_comm_t). Collectives take numpy arrays or DeviceArrays; the array
    of each rank may live on a different backend."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._h = ctypes.c_void_p(handle)
        r, s = ctypes.c_int(), ctypes.c_int()
        _check(lib.hcrt_comm_rank(self._h, ctypes.byref(r)), ctx._h)
        _check(lib.hcrt_comm_size(self._h, ctypes.byref(s)), ctx._h)
        self.rank, self.size = r.value, s.value

    def allreduce(self, buf, op="sum"):
        """In-place allreduce of `buf` over every rank."""
        ptr, count, dt, dev, _keep = _buffer(self._ctx, buf)
        _check(lib.hcrt_comm_allreduce(self._h, _IN_PLACE, ptr, count, DTYPES[dt], _op_code(op), dev),
               self._ctx._h)
        return buf

    def broadcast(self, buf, root=0):
        """Copies root's `buf` into `buf` on every rank."""
        ptr, count, dt, dev, _keep = _buffer(self._ctx, buf)
        _check(lib.hcrt_comm_broadcast(self._h, ptr, count, DTYPES[dt], int(root), dev), self._ctx._h)
        return buf

    def allgather(self, buf):
        """Returns a host numpy array of every rank's `buf` (numpy input) concatenated in rank order."""
        import numpy as np
        if isinstance(buf, DeviceArray):
            out = buf.device.empty((self.size,) + buf.shape, buf.dtype)
            _check(lib.hcrt_comm_allgather(self._h, buf.ptr, out.ptr, buf.size, DTYPES[buf.dtype], buf.device._h),
                   self._ctx._h)
            return out
        a = np.ascontiguousarray(buf)
        out = np.empty((self.size,) + a.shape, dtype=a.dtype)
        ptr, count, dt, _dev, _keep = _buffer(self._ctx, a)
        _check(lib.hcrt_comm_allgather(self._h, ptr, out.ctypes.data, count, DTYPES[dt], None), self._ctx._h)
        return out

    def barrier(self):
        _check(lib.hcrt_comm_barrier(self._h), self._ctx._h)

    def close(self):
        if self._h and self._h.value:
            lib.hcrt_comm_destroy(self._h)
        self._h = ctypes.c_void_p()


class Context:
    """The process's hcrt context. Initialises MPI unless mpi=False (then rank 0 of 1)."""

    def __init__(self, backends=None, mpi=True):
        p = _lib.ContextParams()
        lib.hcrt_context_params_init(ctypes.byref(p))
        if not mpi:
            p.flags = INIT_NO_MPI
        if backends is not None:
            p.backends = backends.encode()
        h = ctypes.c_void_p()
        _check(lib.hcrt_init(ctypes.byref(p), ctypes.byref(h)), None)
        self._h = h
        self._comms = []
        r, s, lr, ls = (ctypes.c_int() for _ in range(4))
        _check(lib.hcrt_context_rank(h, ctypes.byref(r), ctypes.byref(s)), h)
        _check(lib.hcrt_context_local_rank(h, ctypes.byref(lr), ctypes.byref(ls)), h)
        self.rank, self.size, self.local_rank, self.local_size = r.value, s.value, lr.value, ls.value
        d = ctypes.c_void_p()
        _check(lib.hcrt_context_device(h, ctypes.byref(d)), h)
        self.device = Device(self, d.value)
        _check(lib.hcrt_device_host(h, ctypes.byref(d)), h)
        self.host = Device(self, d.value)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Finalises the context (and MPI, if hcrt started it). Arrays of this context become invalid."""
        for c in self._comms:
            c.close()
        self._comms = []
        if self._h and self._h.value:
            lib.hcrt_finalize(self._h)
        self._h = ctypes.c_void_p()

    def devices(self):
        """Every usable device of every loaded backend."""
        n = ctypes.c_int()
        _check(lib.hcrt_device_count(self._h, ctypes.byref(n)), self._h)
        out = []
        for i in range(n.value):
            d = ctypes.c_void_p()
            _check(lib.hcrt_device_get(self._h, i, ctypes.byref(d)), self._h)
            out.append(Device(self, d.value))
        return out

    def find_device(self, backend, index=0):
        d = ctypes.c_void_p()
        _check(lib.hcrt_device_find(self._h, backend.encode(), int(index), ctypes.byref(d)), self._h)
        return Device(self, d.value)

    def backends(self):
        """Every backend the loader considered: dicts with name, status, reason, path, device_count."""
        n = ctypes.c_int()
        _check(lib.hcrt_backend_count(self._h, ctypes.byref(n)), self._h)
        out = []
        for i in range(n.value):
            info = _lib.BackendInfo(struct_size=ctypes.sizeof(_lib.BackendInfo))
            _check(lib.hcrt_backend_get_info(self._h, i, ctypes.byref(info)), self._h)
            out.append({"name": info.name.decode(), "status": _BACKEND_STATUS.get(info.status, "?"),
                        "reason": info.reason.decode(), "path": info.path.decode(),
                        "device_count": info.device_count})
        return out

    def config(self):
        """Every HCRT_* variable: {name: {"value", "default", "help", "type", "is_set"}}."""
        out = {}
        for i in range(lib.hcrt_config_count()):
            e = _lib.ConfigEntry(struct_size=ctypes.sizeof(_lib.ConfigEntry))
            _check(lib.hcrt_config_get_entry(self._h, i, ctypes.byref(e)), self._h)
            out[e.name.decode()] = {"value": e.value.decode(), "default": e.default.decode(),
                                    "help": e.help.decode(), "type": e.type.decode(), "is_set": bool(e.is_set)}
        return out

    def comm_world(self):
        """A communicator over every rank (a duplicate of MPI_COMM_WORLD)."""
        h = ctypes.c_void_p()
        _check(lib.hcrt_comm_world(self._h, ctypes.byref(h)), self._h)
        c = Comm(self, h.value)
        self._comms.append(c)
        return c
