"""Arrays from anywhere: numpy arrays, any ``__dlpack__`` producer and hcrt DeviceArrays, as the pointer,
element count, dtype and device a C call takes, without copying.

Every check names the function and the argument, the way the C library does: a non-contiguous array, a
dtype hcrt has no name for, a read-only array where hcrt writes, memory on a device this context does not
have.
"""
import sys

from . import _dlpack
from ._errors import invalid

DTYPES = {"i8": 0, "u8": 1, "i32": 2, "u32": 3, "i64": 4, "u64": 5, "f16": 6, "bf16": 7, "f32": 8, "f64": 9}
SIZES = {"i8": 1, "u8": 1, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "f16": 2, "bf16": 2, "f32": 4, "f64": 8}
NUMPY_TO_HCRT = {"int8": "i8", "uint8": "u8", "int32": "i32", "uint32": "u32", "int64": "i64", "uint64": "u64",
                 "float16": "f16", "float32": "f32", "float64": "f64"}
HCRT_TO_NUMPY = {v: k for k, v in NUMPY_TO_HCRT.items()}
# Other spellings accepted for a dtype argument.
ALIASES = {"float": "f32", "float32": "f32", "half": "f16", "float16": "f16", "double": "f64", "float64": "f64",
           "bfloat16": "bf16", "int8": "i8", "uint8": "u8", "int32": "i32", "uint32": "u32", "int64": "i64",
           "uint64": "u64"}


def dtype_name(dtype, func="hcrt", name="dtype"):
    """hcrt's name ("f32") of a dtype given as an hcrt name, an alias or anything numpy.dtype() takes."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    if isinstance(dtype, str) and dtype in ALIASES:
        return ALIASES[dtype]
    try:
        import numpy as np
        npname = np.dtype(dtype).name
    except Exception:
        npname = repr(dtype)
    if npname in ALIASES:  # "bfloat16" of ml_dtypes, for one
        return ALIASES[npname]
    if npname not in NUMPY_TO_HCRT:
        raise invalid(func, name, f"has dtype {npname}, which hcrt does not reduce or move "
                                  f"(supported: {', '.join(DTYPES)})")
    return NUMPY_TO_HCRT[npname]


class View:
    """What one C call needs of an array argument: address, element count and dtype, the device handle (None
    for host memory), the shape, and what must stay alive (and be released) while the call uses it."""

    def __init__(self, ptr, count, dtype, device, shape, keep, imported=None):
        self.ptr = ptr
        self.count = count
        self.dtype = dtype
        self.device = device  # an hcrt Device, or None for host memory
        self.shape = shape
        self.keep = keep
        self._imported = imported

    @property
    def nbytes(self):
        return self.count * SIZES[self.dtype]

    @property
    def dev_handle(self):
        return self.device._h if self.device is not None else None

    @property
    def code(self):
        return DTYPES[self.dtype]

    def release(self):
        """Gives DLPack memory back to its producer (the C call is done with it)."""
        imp, self._imported = self._imported, None
        if imp is not None:
            imp.release()
        self.keep = None


def _numpy_view(a, func, name, writable, dtype):
    if not a.flags.c_contiguous:
        raise invalid(func, name, f"is not C-contiguous (shape {a.shape}, strides {a.strides}); pass "
                                  "numpy.ascontiguousarray(x)")
    if writable and not a.flags.writeable:
        raise invalid(func, name, "is read-only but hcrt writes the result into it")
    if dtype is not None and a.dtype.kind in "iuf":
        # Reinterpreted (bf16 over uint16 bit patterns, which numpy has no type for): view() checks the
        # element size against the hcrt dtype.
        dt = {1: "u8", 2: "f16", 4: "f32", 8: "f64"}.get(a.dtype.itemsize) or dtype_name(a.dtype, func, name)
    else:
        dt = dtype_name(a.dtype, func, name)
    return View(a.ctypes.data if a.size else None, int(a.size), dt, None, tuple(a.shape), a)


def _dlpack_view(ctx, obj, func, name, writable):
    try:
        imp = _dlpack.take(obj)
    except BufferError as exc:
        raise invalid(func, name, f"could not be taken through DLPack: {exc}") from None
    try:
        if imp.lanes != 1 or (imp.code, imp.bits) not in _dlpack.DTYPE_FROM_DL:
            raise invalid(func, name, f"has DLPack dtype (code {imp.code}, {imp.bits} bits, {imp.lanes} lanes), "
                                      "which hcrt does not reduce or move")
        if not imp.contiguous():
            raise invalid(func, name, f"is not contiguous (DLPack shape {imp.shape}, strides {imp.strides} "
                                      "elements)")
        if writable and imp.read_only:
            raise invalid(func, name, "is read-only (DLPack flag) but hcrt writes the result into it")
        device = None
        if imp.device_type not in _dlpack.HOST_DEVICE_TYPES:
            backend = _dlpack.BACKEND_DEVICE_TYPES.get(imp.device_type)
            where = f"{_dlpack.DEVICE_TYPE_NAMES.get(imp.device_type, imp.device_type)}:{imp.device_id}"
            device = ctx._device_of(backend, imp.device_id) if backend else None
            if device is None:
                raise invalid(func, name, f"lives on DLPack device {where}, which this hcrt context does not "
                                          "have (host memory, or a device of a loaded backend, is needed)")
        count = 1
        for extent in imp.shape:
            count *= extent
        dt = _dlpack.DTYPE_FROM_DL[(imp.code, imp.bits)]
        return View(imp.data if count else None, count, dt, device, imp.shape, obj, imp)
    except BaseException:
        imp.release()
        raise


def _is_numpy(obj):
    np = sys.modules.get("numpy")  # an ndarray exists only once numpy was imported
    return np is not None and isinstance(obj, np.ndarray)


def view(ctx, obj, func, name, writable=False, dtype=None):
    """The View of array argument `name` of `func`: a DeviceArray, a numpy array or a __dlpack__ producer.
    `dtype` reinterprets the elements (same item size), e.g. "bf16" over a numpy uint16 array."""
    from ._core import DeviceArray
    if isinstance(obj, DeviceArray):
        if obj.freed:
            raise invalid(func, name, "is a DeviceArray that was freed")
        obj.device._ctx._alive(func)
        v = View(obj.ptr.value, obj.size, obj.dtype, obj.device, obj.shape, obj)
    elif _is_numpy(obj):
        v = _numpy_view(obj, func, name, writable, dtype)
    elif hasattr(obj, "__dlpack__"):
        v = _dlpack_view(ctx, obj, func, name, writable)
    else:
        raise invalid(func, name, f"is a {type(obj).__name__}, not a numpy array, an object with __dlpack__ "
                                  "or an hcrt.DeviceArray")
    if dtype is not None:
        want = dtype_name(dtype, func, "dtype")
        if SIZES[want] != SIZES[v.dtype]:
            v.release()
            raise invalid(func, "dtype", f"is {want} ({SIZES[want]} bytes) but argument '{name}' holds "
                                         f"{v.dtype} elements ({SIZES[v.dtype]} bytes)")
        v.dtype = want
    return v
