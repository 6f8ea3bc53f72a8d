"""DLPack in ctypes: taking any ``__dlpack__`` producer's memory without a copy, and exporting host memory.

The structures are those of dlpack.h (v0.8 DLManagedTensor, "dltensor" capsules; v1.x
DLManagedTensorVersioned, "dltensor_versioned" capsules). A consumer renames the capsule to
"used_dltensor" / "used_dltensor_versioned" when it takes it, and calls the tensor's deleter once it no
longer needs the memory; until then the producer keeps the memory alive.
"""
import ctypes

c_void_p = ctypes.c_void_p
P = ctypes.POINTER

# DLDeviceType values.
KDL_CPU, KDL_CUDA, KDL_CUDA_HOST, KDL_ROCM, KDL_ROCM_HOST, KDL_EXT_DEV, KDL_CUDA_MANAGED = 1, 2, 3, 10, 11, 12, 13
# Memory the host can dereference: plain, pinned (CUDA/ROCm host) and managed memory.
HOST_DEVICE_TYPES = {KDL_CPU: "cpu", KDL_CUDA_HOST: "cuda_host", KDL_ROCM_HOST: "rocm_host",
                     KDL_CUDA_MANAGED: "cuda_managed"}
# Device memory of a backend hcrt may have: (hcrt backend name).
BACKEND_DEVICE_TYPES = {KDL_CUDA: "cuda", KDL_ROCM: "hip"}
DEVICE_TYPE_NAMES = {**HOST_DEVICE_TYPES, KDL_CUDA: "cuda", KDL_ROCM: "rocm", KDL_EXT_DEV: "ext_dev",
                     4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 14: "oneapi", 15: "webgpu", 16: "hexagon"}

# (DLDataTypeCode, bits) -> hcrt dtype name. 0 int, 1 uint, 2 float, 4 bfloat.
DTYPE_FROM_DL = {(0, 8): "i8", (1, 8): "u8", (0, 32): "i32", (1, 32): "u32", (0, 64): "i64", (1, 64): "u64",
                 (2, 16): "f16", (4, 16): "bf16", (2, 32): "f32", (2, 64): "f64"}
DTYPE_TO_DL = {v: k for k, v in DTYPE_FROM_DL.items()}
FLAG_READ_ONLY = 1


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32), ("dtype", DLDataType),
                ("shape", P(ctypes.c_int64)), ("strides", P(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class DLManagedTensor(ctypes.Structure):
    pass


DELETER = ctypes.CFUNCTYPE(None, P(DLManagedTensor))
DLManagedTensor._fields_ = [("dl_tensor", DLTensor), ("manager_ctx", c_void_p), ("deleter", DELETER)]


class DLPackVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class DLManagedTensorVersioned(ctypes.Structure):
    pass


DELETER_VERSIONED = ctypes.CFUNCTYPE(None, P(DLManagedTensorVersioned))
DLManagedTensorVersioned._fields_ = [("version", DLPackVersion), ("manager_ctx", c_void_p),
                                     ("deleter", DELETER_VERSIONED), ("flags", ctypes.c_uint64),
                                     ("dl_tensor", DLTensor)]

# The capsule API, holding the GIL (PYFUNCTYPE). Capsules go by address where they may be half destroyed.
_api = ctypes.pythonapi
_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_get_pointer = ctypes.PYFUNCTYPE(c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
_set_name = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_SetName", _api))
_is_valid_raw = ctypes.PYFUNCTYPE(ctypes.c_int, c_void_p, ctypes.c_char_p)(("PyCapsule_IsValid", _api))
_get_pointer_raw = ctypes.PYFUNCTYPE(c_void_p, c_void_p, ctypes.c_char_p)(("PyCapsule_GetPointer", _api))
CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, c_void_p)
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, c_void_p, ctypes.c_char_p, CAPSULE_DESTRUCTOR)(
    ("PyCapsule_New", _api))

# Capsule names must outlive the capsules: module constants.
NAME = b"dltensor"
NAME_USED = b"used_dltensor"
NAME_VERSIONED = b"dltensor_versioned"
NAME_VERSIONED_USED = b"used_dltensor_versioned"


class Imported:
    """Memory taken from a DLPack producer: data pointer, dtype, shape, device. The producer's memory stays
    valid until release() (called by the owner of this view once the C library no longer uses it)."""

    def __init__(self, capsule, managed, versioned):
        self._capsule = capsule  # the renamed capsule: kept so that nothing reuses its memory early
        self._managed = managed
        self._versioned = versioned
        t = managed.contents.dl_tensor
        self.data = (t.data or 0) + t.byte_offset
        self.device_type = t.device.device_type
        self.device_id = t.device.device_id
        self.ndim = t.ndim
        self.code, self.bits, self.lanes = t.dtype.code, t.dtype.bits, t.dtype.lanes
        self.shape = tuple(t.shape[i] for i in range(t.ndim))
        self.strides = tuple(t.strides[i] for i in range(t.ndim)) if t.strides else None
        self.read_only = versioned and bool(managed.contents.flags & FLAG_READ_ONLY)

    def contiguous(self):
        """Whether the elements are dense in C order (strides are in elements; size-1 dims may have any)."""
        if self.strides is None:
            return True
        expect = 1
        for extent, stride in zip(reversed(self.shape), reversed(self.strides)):
            if extent != 1 and stride != expect:
                return False
            expect *= extent
        return True

    def release(self):
        managed, self._managed = self._managed, None
        if managed is not None and managed.contents.deleter:
            managed.contents.deleter(managed)
        self._capsule = None

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass


def take(obj):
    """Takes the memory of a __dlpack__ producer (marks the capsule used). Returns an Imported view.
    Raises TypeError when obj has no __dlpack__, BufferError when the producer refuses."""
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:  # a producer of the older protocol takes no max_version
        capsule = obj.__dlpack__()
    if _is_valid(capsule, NAME_VERSIONED):
        ptr = _get_pointer(capsule, NAME_VERSIONED)
        managed = ctypes.cast(ptr, P(DLManagedTensorVersioned))
        if managed.contents.version.major != 1:
            raise BufferError(f"DLPack version {managed.contents.version.major}.{managed.contents.version.minor} "
                              "is not supported (hcrt reads 1.x)")
        _set_name(capsule, NAME_VERSIONED_USED)
        return Imported(capsule, managed, True)
    if _is_valid(capsule, NAME):
        ptr = _get_pointer(capsule, NAME)
        _set_name(capsule, NAME_USED)
        return Imported(capsule, ctypes.cast(ptr, P(DLManagedTensor)), False)
    raise BufferError("__dlpack__() returned no valid 'dltensor' capsule")


# ---- export ----------------------------------------------------------------------------------------------

# Tensors handed out and not yet deleted: manager_ctx (a number) -> (managed struct, shape array, owner).
_exports = {}
_next_key = [1]


@DELETER
def _export_deleter(managed):
    _exports.pop(managed.contents.manager_ctx, None)


@DELETER_VERSIONED
def _export_deleter_versioned(managed):
    _exports.pop(managed.contents.manager_ctx, None)


@CAPSULE_DESTRUCTOR
def _capsule_destructor(capsule_addr):
    # A capsule nobody consumed still owns its tensor (a consumed one was renamed).
    if _is_valid_raw(capsule_addr, NAME):
        _export_deleter(ctypes.cast(_get_pointer_raw(capsule_addr, NAME), P(DLManagedTensor)))
    elif _is_valid_raw(capsule_addr, NAME_VERSIONED):
        _export_deleter_versioned(ctypes.cast(_get_pointer_raw(capsule_addr, NAME_VERSIONED),
                                              P(DLManagedTensorVersioned)))


def export(owner, data, dtype, shape, versioned, device_type=KDL_CPU, device_id=0):
    """A capsule over `data` (an address) that keeps `owner` alive until the consumer is done: a
    "dltensor_versioned" one (DLPack 1.0, writable) when `versioned`, else a "dltensor" one (consumers of
    the older protocol may treat it as read-only)."""
    key = _next_key[0]
    _next_key[0] += 1
    code, bits = DTYPE_TO_DL[dtype]
    dims = (ctypes.c_int64 * max(len(shape), 1))(*shape)
    if versioned:
        m = DLManagedTensorVersioned()
        m.version = DLPackVersion(1, 0)
        m.deleter = _export_deleter_versioned
        m.flags = 0
    else:
        m = DLManagedTensor()
        m.deleter = _export_deleter
    t = m.dl_tensor
    t.data = data
    t.device = DLDevice(device_type, device_id)
    t.ndim = len(shape)
    t.dtype = DLDataType(code, bits, 1)
    t.shape = dims
    t.strides = None  # compact, row-major
    t.byte_offset = 0
    m.manager_ctx = key
    _exports[key] = (m, dims, owner)
    return _capsule_new(ctypes.addressof(m), NAME_VERSIONED if versioned else NAME, _capsule_destructor)
