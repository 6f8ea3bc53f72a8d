"""Finds and loads libhcrt.so and declares the C signatures hcrt's Python binding uses.

Search order (DESIGN.md section 11): $HCRT_LIBRARY, the build tree next to this package
(../../build/libhcrt.so), then the dynamic loader's usual paths (the install dir).
"""
import ctypes
import ctypes.util
import os

c_status = ctypes.c_int
c_size = ctypes.c_size_t
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p


def _candidates():
    env = os.environ.get("HCRT_LIBRARY")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    for build in ("build", "build-san"):
        yield os.path.join(root, build, "libhcrt.so")
    found = ctypes.util.find_library("hcrt")
    if found:
        yield found
    yield "libhcrt.so.1"


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append(f"{path}: not found")
            continue
        try:
            # RTLD_GLOBAL: Open MPI's own plugins (mca components) resolve MPI symbols through it.
            return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise ImportError("cannot load libhcrt.so (set HCRT_LIBRARY to its path): " + "; ".join(errors))


lib = _load()


class ContextParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("api_version", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("backends", c_char_p)]


class BackendInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("name", c_char_p), ("path", c_char_p), ("status", ctypes.c_int),
                ("reason", c_char_p), ("device_count", ctypes.c_int)]


class DeviceProps(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("backend", c_char_p), ("index", ctypes.c_int),
                ("global_index", ctypes.c_int), ("name", c_char_p), ("vendor", c_char_p),
                ("pci_bus_id", c_char_p), ("total_memory", ctypes.c_uint64), ("free_memory", ctypes.c_uint64),
                ("speed", ctypes.c_double), ("caps", ctypes.c_uint64), ("numa_node", ctypes.c_int),
                ("local_cpus", c_char_p), ("host_addressable", ctypes.c_bool)]


class ConfigEntry(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("name", c_char_p), ("default", c_char_p), ("value", c_char_p),
                ("help", c_char_p), ("type", c_char_p), ("is_set", ctypes.c_bool)]


def _sig(name, argtypes, restype=c_status):
    fn = getattr(lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


P = ctypes.POINTER
_sig("hcrt_status_name", [ctypes.c_int], c_char_p)
_sig("hcrt_status_string", [ctypes.c_int], c_char_p)
_sig("hcrt_last_error", [c_void_p], c_char_p)
_sig("hcrt_api_version", [], ctypes.c_uint32)
_sig("hcrt_version", [P(ctypes.c_int)] * 3, None)
_sig("hcrt_context_params_init", [P(ContextParams)], None)
_sig("hcrt_init", [P(ContextParams), P(c_void_p)])
_sig("hcrt_finalize", [c_void_p])
_sig("hcrt_context_rank", [c_void_p, P(ctypes.c_int), P(ctypes.c_int)])
_sig("hcrt_context_local_rank", [c_void_p, P(ctypes.c_int), P(ctypes.c_int)])
_sig("hcrt_context_device", [c_void_p, P(c_void_p)])
_sig("hcrt_device_host", [c_void_p, P(c_void_p)])
_sig("hcrt_device_count", [c_void_p, P(ctypes.c_int)])
_sig("hcrt_device_get", [c_void_p, ctypes.c_int, P(c_void_p)])
_sig("hcrt_device_find", [c_void_p, c_char_p, ctypes.c_int, P(c_void_p)])
_sig("hcrt_device_get_props", [c_void_p, P(DeviceProps)])
_sig("hcrt_backend_count", [c_void_p, P(ctypes.c_int)])
_sig("hcrt_backend_get_info", [c_void_p, ctypes.c_int, P(BackendInfo)])
_sig("hcrt_config_count", [], c_size)
_sig("hcrt_config_get_entry", [c_void_p, c_size, P(ConfigEntry)])
_sig("hcrt_config_get", [c_void_p, c_char_p, P(c_char_p)])
_sig("hcrt_mem_alloc", [c_void_p, c_size, P(c_void_p)])
_sig("hcrt_mem_free", [c_void_p, c_void_p])
_sig("hcrt_memcpy", [c_void_p, c_void_p, c_void_p, c_void_p, c_size])
_sig("hcrt_memset", [c_void_p, c_void_p, ctypes.c_int, c_size])
_sig("hcrt_reduce", [c_void_p, c_void_p, c_void_p, c_size, ctypes.c_int, ctypes.c_int, c_void_p])
_sig("hcrt_scale", [c_void_p, c_void_p, c_size, ctypes.c_int, ctypes.c_double, c_void_p])

_sig("hcrt_comm_world", [c_void_p, P(c_void_p)])
_sig("hcrt_comm_destroy", [c_void_p])
_sig("hcrt_comm_rank", [c_void_p, P(ctypes.c_int)])
_sig("hcrt_comm_size", [c_void_p, P(ctypes.c_int)])
_sig("hcrt_comm_allreduce", [c_void_p, c_void_p, c_void_p, c_size, ctypes.c_int, ctypes.c_int, c_void_p])
_sig("hcrt_comm_broadcast", [c_void_p, c_void_p, c_size, ctypes.c_int, ctypes.c_int, c_void_p])
_sig("hcrt_comm_allgather", [c_void_p, c_void_p, c_void_p, c_size, ctypes.c_int, c_void_p])
_sig("hcrt_comm_barrier", [c_void_p])
