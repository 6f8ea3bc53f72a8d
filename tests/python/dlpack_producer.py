"""A hand-made DLPack producer for the tests: any memory, described any way (dtype code, strides, device
type, read-only flag), in a legacy "dltensor" or a versioned "dltensor_versioned" capsule, counting the
deleter calls so that a test can tell when the consumer gave the memory back.

It is written against dlpack.h directly (structures from hcrt._dlpack, which are dlpack.h's; the capsules
and deleters here are this file's own), so that hcrt's consumer is checked against a producer it did not
write, the way torch or cupy would hand memory over.
"""
import ctypes

from hcrt import _dlpack as dl

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class Producer:
    """Exports `owner`'s memory at `data` (an address) through __dlpack__. Keeps `owner` alive until the
    consumer calls the deleter. `deleted` counts deleter calls (must end at exactly 1 per export)."""

    def __init__(self, owner, data, shape, code, bits, strides=None, device_type=dl.KDL_CPU, device_id=0,
                 versioned=False, read_only=False, lanes=1):
        self.owner, self.data, self.shape, self.strides = owner, data, tuple(shape), strides
        self.code, self.bits, self.lanes = code, bits, lanes
        self.device_type, self.device_id = device_type, device_id
        self.versioned, self.read_only = versioned, read_only
        self.deleted = 0
        self.exported = 0
        self._live = []

    @classmethod
    def of(cls, array, **kw):
        """A producer over a numpy array's memory, with its dtype unless told otherwise."""
        codes = {"i": 0, "u": 1, "f": 2}
        kw.setdefault("code", codes[array.dtype.kind])
        kw.setdefault("bits", array.dtype.itemsize * 8)
        return cls(array, array.ctypes.data, array.shape, **kw)

    def __dlpack_device__(self):
        return (self.device_type, self.device_id)

    def __dlpack__(self, stream=None, max_version=None):
        versioned = self.versioned and max_version is not None and max_version[0] >= 1
        n = len(self.shape)
        shape = (ctypes.c_int64 * max(n, 1))(*self.shape)
        strides = (ctypes.c_int64 * max(n, 1))(*self.strides) if self.strides is not None else None
        m = dl.DLManagedTensorVersioned() if versioned else dl.DLManagedTensor()
        producer = self

        def deleter(_ptr):
            producer.deleted += 1
            producer._live.remove(entry)

        entry = [m, shape, strides]
        if versioned:
            m.version = dl.DLPackVersion(1, 0)
            m.flags = dl.FLAG_READ_ONLY if self.read_only else 0
            cb = dl.DELETER_VERSIONED(deleter)
        else:
            cb = dl.DELETER(deleter)
        entry.append(cb)
        m.deleter = cb
        t = m.dl_tensor
        t.data = self.data
        t.device = dl.DLDevice(self.device_type, self.device_id)
        t.ndim = n
        t.dtype = dl.DLDataType(self.code, self.bits, self.lanes)
        t.shape = shape
        t.strides = strides
        t.byte_offset = 0
        self._live.append(entry)
        self.exported += 1
        # No capsule destructor: every test's consumer takes the capsule (renames it) or the test fails.
        return _capsule_new(ctypes.addressof(m), b"dltensor_versioned" if versioned else b"dltensor", None)
