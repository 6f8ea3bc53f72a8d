"""Context, Device and DeviceArray: the process's hcrt context, its devices, and memory on them."""
import ctypes
import weakref

from . import _arrays, _dlpack, _errors, _lib
from ._errors import Error, check, invalid, whole
from ._lib import lib
from ._run import RunMixin
from ._trace import TraceMixin

_BACKEND_STATUS = {0: "loaded", 1: "unavailable", 2: "broken", 3: "filtered"}
INIT_NO_MPI = 1
ERR_STATE = -16


class Context(RunMixin, TraceMixin):
    """The process's hcrt context: configuration, MPI (unless ``mpi=False``: rank 0 of 1), the backend
    plugins, their devices and this rank's device. ``backends`` filters plugins like HCRT_BACKENDS.

    Use it as a context manager, or call close(); communicators, checkpoints and device arrays of a closed
    context raise hcrt.Error (ERR_STATE) when used.
    """

    def __init__(self, backends=None, mpi=True):
        p = _lib.ContextParams()
        lib.hcrt_context_params_init(ctypes.byref(p))
        if not mpi:
            p.flags = INIT_NO_MPI
        if backends is not None:
            p.backends = str(backends).encode()
        h = ctypes.c_void_p()
        check(lib.hcrt_init(ctypes.byref(p), ctypes.byref(h)), None)
        self._h = h
        self._owned = weakref.WeakSet()  # communicators, checkpoints, device arrays: closed with the context
        _errors.install_excepthook()
        _errors.live_contexts.add(self)
        r, s, lr, ls = (ctypes.c_int() for _ in range(4))
        check(lib.hcrt_context_rank(h, ctypes.byref(r), ctypes.byref(s)), h)
        check(lib.hcrt_context_local_rank(h, ctypes.byref(lr), ctypes.byref(ls)), h)
        self.rank, self.size, self.local_rank, self.local_size = r.value, s.value, lr.value, ls.value
        d = ctypes.c_void_p()
        check(lib.hcrt_context_device(h, ctypes.byref(d)), h)
        self.device = Device(self, d.value)
        check(lib.hcrt_device_host(h, ctypes.byref(d)), h)
        self.host = Device(self, d.value)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if value is not None and not isinstance(value, (SystemExit, GeneratorExit)) and self.size > 1:
            self._abandon(value)
        else:
            self.close()

    def _abandon(self, exc):
        """An exception leaves the context on this rank, perhaps on this rank alone: finalizing (collective)
        would wait for peers that may be waiting for this rank in a collective until their deadline, and
        end the job with TIMEOUT instead of the real cause. So the failure is recorded for hcrt-run and the
        context is left as it is; the process ends next (an uncaught hcrt.Error with its exit status), and
        mpirun ends the other ranks."""
        _errors.note_failure(self._h, exc)
        _errors.live_contexts.discard(self)
        self._h = ctypes.c_void_p()

    def __repr__(self):
        state = "closed" if self.closed else f"rank {self.rank} of {self.size} on {self.device}"
        return f"<hcrt.Context {state}>"

    @property
    def closed(self):
        return not (self._h and self._h.value)

    def _alive(self, func):
        if self.closed:
            raise Error(ERR_STATE, f"{func}: the hcrt context is closed")

    def _own(self, obj):
        self._owned.add(obj)

    def close(self):
        """Closes this context's checkpoints and communicators (collective, like their close()), frees its
        device arrays, and finalises the context (and MPI, if hcrt started it). Idempotent."""
        if self.closed:
            return
        owned = list(self._owned)
        # Checkpoints first (they may use communicators), then communicators, then memory.
        for rank_of_kind in (0, 1, 2):
            for obj in owned:
                if getattr(obj, "_close_order", 2) == rank_of_kind:
                    obj._context_closing()
        _errors.live_contexts.discard(self)
        lib.hcrt_finalize(self._h)
        self._h = ctypes.c_void_p()

    # ---- backends, devices, configuration ----

    def devices(self):
        """Every usable device of every loaded backend."""
        self._alive("Context.devices")
        n = ctypes.c_int()
        check(lib.hcrt_device_count(self._h, ctypes.byref(n)), self._h)
        out = []
        for i in range(n.value):
            d = ctypes.c_void_p()
            check(lib.hcrt_device_get(self._h, i, ctypes.byref(d)), self._h)
            out.append(Device(self, d.value))
        return out

    def find_device(self, backend, index=0):
        """Device `index` of backend `backend` ("sim", 1); hcrt.Error ERR_NOT_FOUND when absent."""
        self._alive("Context.find_device")
        d = ctypes.c_void_p()
        check(lib.hcrt_device_find(self._h, str(backend).encode(), int(index), ctypes.byref(d)), self._h)
        return Device(self, d.value)

    def _device_of(self, backend, index):
        d = ctypes.c_void_p()
        if lib.hcrt_device_find(self._h, backend.encode(), int(index), ctypes.byref(d)) != 0:
            return None
        return Device(self, d.value)

    def backends(self):
        """Every backend the loader considered: dicts with name, status, reason, path, device_count."""
        self._alive("Context.backends")
        n = ctypes.c_int()
        check(lib.hcrt_backend_count(self._h, ctypes.byref(n)), self._h)
        out = []
        for i in range(n.value):
            info = _lib.BackendInfo(struct_size=ctypes.sizeof(_lib.BackendInfo))
            check(lib.hcrt_backend_get_info(self._h, i, ctypes.byref(info)), self._h)
            out.append({"name": info.name.decode(), "status": _BACKEND_STATUS.get(info.status, "?"),
                        "reason": info.reason.decode(), "path": info.path.decode(),
                        "device_count": info.device_count})
        return out

    def config(self):
        """Every HCRT_* variable: {name: {"value", "default", "help", "type", "is_set"}}."""
        self._alive("Context.config")
        out = {}
        for i in range(lib.hcrt_config_count()):
            e = _lib.ConfigEntry(struct_size=ctypes.sizeof(_lib.ConfigEntry))
            check(lib.hcrt_config_get_entry(self._h, i, ctypes.byref(e)), self._h)
            out[e.name.decode()] = {"value": e.value.decode(), "default": e.default.decode(),
                                    "help": e.help.decode(), "type": e.type.decode(), "is_set": bool(e.is_set)}
        return out

    # ---- communicators ----

    def comm_world(self):
        """A communicator over every rank (a duplicate of MPI_COMM_WORLD). Collective."""
        from ._comm import Comm
        self._alive("Context.comm_world")
        h = ctypes.c_void_p()
        check(lib.hcrt_comm_world(self._h, ctypes.byref(h)), self._h)
        return Comm(self, h.value)

    def comm_from_mpi(self, comm):
        """A communicator over the ranks of an mpi4py communicator (or of a Fortran handle, an int, as
        MPI_Comm_c2f gives). hcrt duplicates it. Collective over that communicator."""
        from ._comm import Comm
        self._alive("Context.comm_from_mpi")
        if hasattr(comm, "py2f"):
            handle = comm.py2f()
        elif isinstance(comm, int):
            handle = comm
        else:
            raise invalid("Context.comm_from_mpi", "comm",
                          f"is a {type(comm).__name__}, not an mpi4py communicator or a Fortran handle")
        h = ctypes.c_void_p()
        check(lib.hcrt_comm_from_mpi(self._h, int(handle), ctypes.byref(h)), self._h)
        return Comm(self, h.value)


class ContextObject:
    """Something a context owns and closes with itself (a communicator, a checkpoint): closed once its own
    handle is released or its context is closed; using it then raises hcrt.Error ERR_STATE."""

    _what = "object"

    @property
    def closed(self):
        return not (self._h and self._h.value) or self._ctx.closed

    def _alive(self, func):
        self._ctx._alive(func)
        if self.closed:
            raise Error(ERR_STATE, f"{func}: the {self._what} is closed")


class LocalObject(ContextObject):
    """A ContextObject whose close() is local (no communication: a balancer, an exact accumulator, a stream,
    an event): a context manager, closed with its context, and freed when dropped."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _context_closing(self):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Device:
    """One device of a context (host, sim, cuda, ...). Valid as long as its context."""

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._h = ctypes.c_void_p(handle)
        p = _lib.DeviceProps(struct_size=ctypes.sizeof(_lib.DeviceProps))
        check(lib.hcrt_device_get_props(self._h, ctypes.byref(p)), ctx._h)
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

    def __str__(self):
        return f"{self.backend}:{self.index}"

    def __eq__(self, other):
        return isinstance(other, Device) and self._h.value == other._h.value

    def __hash__(self):
        return hash(self._h.value)

    def empty(self, shape, dtype="f32"):
        """An uninitialised DeviceArray of `shape` and `dtype` on this device."""
        return DeviceArray(self, shape, _arrays.dtype_name(dtype, "Device.empty"))

    def zeros(self, shape, dtype="f32"):
        """A DeviceArray of zeros."""
        a = self.empty(shape, dtype)
        if a.nbytes:
            check(lib.hcrt_memset(self._h, a.ptr, 0, a.nbytes), self._ctx._h)
        return a

    def array(self, data, dtype=None):
        """A DeviceArray on this device holding a copy of `data` (a numpy array, a __dlpack__ producer on host
        memory, a DeviceArray of any device). `dtype` reinterprets elements of the same size ("bf16")."""
        return DeviceArray.from_numpy(data, self, dtype)

    @property
    def has_compute(self):
        """Whether this device's backend offers the compute extension (hcrt.compute)."""
        return bool(lib.hcrt_device_has_compute(self._h))

    def stream(self):
        """A new Stream (an in-order queue of work) on this device."""
        from ._stream import Stream
        return Stream(self)

    def event(self):
        """A new Event of this device, to record on its streams and time the work between two."""
        from ._stream import Event
        return Event(self)


def _shape(func, shape):
    """A shape argument as a tuple of non-negative ints (an int is a 1-D shape)."""
    try:
        dims = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
        if any(isinstance(d, bool) or int(d) != d for d in dims):
            raise TypeError
        dims = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        raise invalid(func, "shape", f"is {shape!r}, not an int or a sequence of ints") from None
    if any(d < 0 for d in dims):
        raise invalid(func, "shape", f"is {dims}, which has a negative extent")
    return dims


class DeviceArray:
    """Memory on a device, with a shape and an hcrt dtype. hcrt never dereferences device memory from the
    host: numpy() and copy_from() copy through the device's backend. On a host-addressable device (cpu)
    it exports __dlpack__, so numpy.from_dlpack(a) (or torch.from_dlpack) views it without a copy.
    Freed by free(), when collected, or when its context closes."""

    _close_order = 2

    def __init__(self, device, shape, dtype, _base=None, _offset=0):
        func = "DeviceArray" if _base is None else "DeviceArray.view"
        device._ctx._alive(func)
        self.device = device
        self.shape = _shape(func, shape)
        self.dtype = dtype
        self.size = 1
        for s in self.shape:
            self.size *= s
        self.nbytes = self.size * _arrays.SIZES[dtype]
        self._base = _base  # the DeviceArray that owns the memory of a view (None: this one owns it)
        if _base is not None:
            self.ptr = ctypes.c_void_p((_base.ptr.value + _offset * _arrays.SIZES[dtype]) if self.nbytes else None)
            return
        self.ptr = ctypes.c_void_p()
        if self.nbytes:
            check(lib.hcrt_mem_alloc(device._h, self.nbytes, ctypes.byref(self.ptr)), device._ctx._h)
        device._ctx._own(self)

    @classmethod
    def from_numpy(cls, data, device, dtype=None):
        """A copy of `data` (numpy, a host __dlpack__ producer, or a DeviceArray) on `device`."""
        v = _arrays.view(device._ctx, data, "DeviceArray.from_numpy", "data", dtype=dtype)
        try:
            out = cls(device, v.shape, v.dtype)
            if out.nbytes:
                check(lib.hcrt_memcpy(device._h, out.ptr, v.dev_handle, v.ptr, out.nbytes), device._ctx._h)
            return out
        finally:
            v.release()

    @property
    def freed(self):
        """Whether the memory is gone: freed, its context closed, or (for a view) its base freed."""
        if self._base is not None and self._base.freed:
            return True
        return self.nbytes > 0 and not self.ptr.value

    @property
    def is_view(self):
        """Whether this array views memory another DeviceArray owns (view(), reshape())."""
        return self._base is not None

    def view(self, offset=0, shape=None):
        """A DeviceArray over elements [offset, offset + size of `shape`) of this one, sharing its memory
        (no copy): e.g. the weight and bias tensors inside one flat parameter buffer, so that one
        collective or checkpoint covers them all. `shape` defaults to the rest of the array, flat. The view
        keeps this array alive; freeing the view frees nothing, freeing this array invalidates the view."""
        func = "DeviceArray.view"
        self._ctx_h(func)
        offset = whole(func, "offset", offset, 0)
        if offset > self.size:
            raise invalid(func, "offset", f"is {offset}, past the array's {self.size} elements")
        shape = (self.size - offset,) if shape is None else _shape(func, shape)
        count = 1
        for s in shape:
            count *= s
        if offset + count > self.size:
            raise invalid(func, "shape", f"is {shape}: {count} elements from offset {offset} pass the end of the "
                                         f"array's {self.size}")
        base = self._base if self._base is not None else self
        return DeviceArray(self.device, shape, self.dtype, _base=base,
                           _offset=offset + (self.ptr.value - base.ptr.value) // _arrays.SIZES[self.dtype]
                           if self.nbytes else offset)

    def reshape(self, shape):
        """A view of the same elements with another shape of the same size."""
        shape = _shape("DeviceArray.reshape", shape)
        count = 1
        for s in shape:
            count *= s
        if count != self.size:
            raise invalid("DeviceArray.reshape", "shape", f"is {shape} ({count} elements), not {self.size} "
                                                          "elements")
        return self.view(0, shape)

    def zero(self):
        """Sets every byte to 0 (on the device, synchronously). Returns self."""
        h = self._ctx_h("DeviceArray.zero")
        if self.nbytes:
            check(lib.hcrt_memset(self.device._h, self.ptr, 0, self.nbytes), h)
        return self

    def _ctx_h(self, func):
        self.device._ctx._alive(func)
        if self.freed:
            raise Error(ERR_STATE, f"{func}: the DeviceArray was freed")
        return self.device._ctx._h

    def numpy(self):
        """A host copy as a numpy array (bf16 comes back as uint16 bit patterns)."""
        import numpy as np
        h = self._ctx_h("DeviceArray.numpy")
        out = np.empty(self.shape, dtype=_arrays.HCRT_TO_NUMPY.get(self.dtype, "uint16"))
        if self.nbytes:
            check(lib.hcrt_memcpy(None, out.ctypes.data, self.device._h, self.ptr, self.nbytes), h)
        return out

    def copy_from(self, data):
        """Copies `data` (numpy, a __dlpack__ producer, a DeviceArray) of the same size in bytes into this
        array."""
        h = self._ctx_h("DeviceArray.copy_from")
        v = _arrays.view(self.device._ctx, data, "DeviceArray.copy_from", "data")
        try:
            if v.nbytes != self.nbytes:
                raise invalid("DeviceArray.copy_from", "data", f"has {v.nbytes} bytes ({v.count} {v.dtype}), the "
                                                               f"DeviceArray {self.nbytes}")
            if self.nbytes:
                check(lib.hcrt_memcpy(self.device._h, self.ptr, v.dev_handle, v.ptr, self.nbytes), h)
        finally:
            v.release()
        return self

    def __dlpack_device__(self):
        if self.device.host_addressable:
            return (_dlpack.KDL_CPU, 0)
        return (_dlpack.KDL_EXT_DEV, self.device.index)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule viewing this array, for memory the host can address; BufferError otherwise (use
        numpy(), which copies). The array stays allocated while the consumer holds the view."""
        self._ctx_h("DeviceArray.__dlpack__")
        if copy:
            raise BufferError("DeviceArray.__dlpack__: copy=True is not offered; use numpy()")
        if not self.device.host_addressable:
            raise BufferError(f"DeviceArray.__dlpack__: memory of {self.device} is not host-addressable; "
                              "numpy() copies it to the host")
        versioned = max_version is not None and tuple(max_version)[0] >= 1
        return _dlpack.export(self, self.ptr.value, self.dtype, self.shape, versioned)

    def free(self):
        """Frees the memory now (a view exported through __dlpack__ keeps it until released). On a view()
        this only lets go of the base array's memory."""
        if self._base is None and self.ptr.value and not self.device._ctx.closed:
            check(lib.hcrt_mem_free(self.device._h, self.ptr), self.device._ctx._h)
        self.ptr = ctypes.c_void_p()

    def _context_closing(self):
        self.free()

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass

    def __repr__(self):
        return f"<hcrt.DeviceArray {self.shape} {self.dtype} on {self.device}>"
