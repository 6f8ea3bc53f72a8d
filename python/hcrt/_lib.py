"""Finds and loads libhcrt.so and declares the C signatures the binding uses.

Where libhcrt is looked for, first found wins (docs/architecture.md, "Python"):

1. ``HCRT_LIBRARY``: the library file, or the directory that holds it (when set, nothing else is tried);
2. the installed prefix: ``pkg-config --variable=libdir hcrt`` (the prefix's .pc file, found through
   pkg-config's usual search path and ``PKG_CONFIG_PATH``);
3. the system loader: ``libhcrt.so.1`` through ``ld.so`` (``LD_LIBRARY_PATH``, ``/etc/ld.so.conf``);
4. the source build tree: ``build/`` of the checkout this package was installed from (recorded by
   ``pip install``), or next to this package when it is imported from the checkout itself.

``library_path()`` says which file was loaded.
"""
import ctypes
import ctypes.util
import os
import shutil
import subprocess

c_status = ctypes.c_int
c_size = ctypes.c_size_t
c_void_p = ctypes.c_void_p
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_bool = ctypes.c_bool
P = ctypes.POINTER

SONAME = "libhcrt.so.1"


def _pkg_config_libdir():
    exe = shutil.which("pkg-config")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, "--variable=libdir", "hcrt"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = p.stdout.strip()
    return libdir if p.returncode == 0 and libdir else None


def _source_roots():
    try:
        from . import _install_info  # written by `pip install` from a checkout (python/setup.py)
        if _install_info.SOURCE_ROOT:
            yield _install_info.SOURCE_ROOT
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.dirname(os.path.dirname(here))  # imported from the checkout: python/hcrt/ -> root


def _candidates():
    """(description, path or soname) in search order."""
    env = os.environ.get("HCRT_LIBRARY")
    if env:
        yield "HCRT_LIBRARY", os.path.join(env, SONAME) if os.path.isdir(env) else env
    libdir = _pkg_config_libdir()
    if libdir:
        yield "pkg-config --variable=libdir hcrt", os.path.join(libdir, SONAME)
    yield "the system loader", SONAME
    for root in _source_roots():
        if os.path.exists(os.path.join(root, "meson.build")):
            yield "the source build tree", os.path.join(root, "build", "libhcrt.so")


def _load():
    tried = []
    for how, path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(f"{how}: {path} does not exist")
        else:
            try:
                # RTLD_GLOBAL: Open MPI's own plugins (mca components) resolve MPI symbols through it.
                return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as exc:
                tried.append(f"{how}: {exc}")
        if how == "HCRT_LIBRARY":  # asked for by name: another library would be a silent substitute
            raise ImportError(f"hcrt: cannot load libhcrt from {tried[-1]}")
    raise ImportError("hcrt: cannot load libhcrt. Set HCRT_LIBRARY to the library (or its directory), add the "
                      "install prefix's pkgconfig directory to PKG_CONFIG_PATH, or build the source tree "
                      "(meson setup build && ninja -C build). Tried: " + "; ".join(tried))


lib = _load()


def library_path():
    """The file libhcrt was loaded from (resolved through the dynamic loader)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p), ("dli_sname", c_char_p),
                    ("dli_saddr", c_void_p)]

    libc = ctypes.CDLL(None)
    info = DlInfo()
    addr = ctypes.cast(lib.hcrt_version, c_void_p)
    if libc.dladdr(addr, ctypes.byref(info)) == 0 or not info.dli_fname:
        return lib._name
    return os.path.realpath(info.dli_fname.decode())


# ---- structs (layouts pinned by tests/unit/test_abi.c on the C side) ------------------------------------

class ContextParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("api_version", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("backends", c_char_p)]


class BackendInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("name", c_char_p), ("path", c_char_p), ("status", c_int),
                ("reason", c_char_p), ("device_count", c_int)]


class DeviceProps(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("backend", c_char_p), ("index", c_int), ("global_index", c_int),
                ("name", c_char_p), ("vendor", c_char_p), ("pci_bus_id", c_char_p), ("total_memory", c_uint64),
                ("free_memory", c_uint64), ("speed", ctypes.c_double), ("caps", c_uint64), ("numa_node", c_int),
                ("local_cpus", c_char_p), ("host_addressable", c_bool)]


class ConfigEntry(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("name", c_char_p), ("default", c_char_p), ("value", c_char_p),
                ("help", c_char_p), ("type", c_char_p), ("is_set", c_bool)]


class RankInfo(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("rank", c_int), ("node", c_int), ("local_rank", c_int),
                ("host", c_char_p), ("backend", c_char_p), ("device_index", c_int), ("speed", ctypes.c_double),
                ("pid", c_int64)]


class Buffer(ctypes.Structure):
    _fields_ = [("device", c_void_p), ("ptr", c_void_p), ("count", c_size), ("dtype", c_int)]


class CkptParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("dir", c_char_p), ("local_dir", c_char_p), ("keep", c_int),
                ("busy", c_int), ("partner", c_int)]


class CkptShard(ctypes.Structure):
    _fields_ = [("row_offset", c_uint64), ("rows", c_uint64)]


class BalanceParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("micro_batches", c_int64), ("micro_batch_size", c_int64), ("mode", c_int),
                ("interval", c_int), ("smoothing", ctypes.c_double), ("hysteresis", ctypes.c_double),
                ("warmup_steps", c_int), ("max_micro_batches", c_int64), ("bytes_per_sample", c_uint64),
                ("device", c_void_p), ("use_device_speed", c_bool)]


class BalanceDecision(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("step", c_int64), ("changed", c_bool), ("reason", c_int),
                ("predicted_before", ctypes.c_double), ("predicted_after", ctypes.c_double), ("text", c_char_p)]


class ExactParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("lsb_exponent", c_int), ("top_exponent", c_int)]


class OptimParams(ctypes.Structure):
    _fields_ = [("struct_size", c_size), ("kind", c_int), ("step", c_uint64), ("lr", ctypes.c_double),
                ("grad_scale", ctypes.c_double), ("weight_decay", ctypes.c_double), ("momentum", ctypes.c_double),
                ("beta1", ctypes.c_double), ("beta2", ctypes.c_double), ("eps", ctypes.c_double),
                ("nesterov", c_bool)]


def _sig(name, argtypes, restype=c_status):
    fn = getattr(lib, name)
    fn.argtypes = argtypes
    fn.restype = restype
    return fn


V = c_void_p
_sig("hcrt_status_name", [c_int], c_char_p)
_sig("hcrt_status_string", [c_int], c_char_p)
_sig("hcrt_last_error", [V], c_char_p)
_sig("hcrt_api_version", [], ctypes.c_uint32)
_sig("hcrt_version", [P(c_int)] * 3, None)
_sig("hcrt_exit_status", [c_int], c_int)
_sig("hcrt_exit_restartable", [c_int], c_bool)
_sig("hcrt_exit_name", [c_int], c_char_p)
_sig("hcrt_context_params_init", [P(ContextParams)], None)
_sig("hcrt_init", [P(ContextParams), P(V)])
_sig("hcrt_finalize", [V])
_sig("hcrt_context_rank", [V, P(c_int), P(c_int)])
_sig("hcrt_context_local_rank", [V, P(c_int), P(c_int)])
_sig("hcrt_context_device", [V, P(V)])
_sig("hcrt_device_host", [V, P(V)])
_sig("hcrt_device_count", [V, P(c_int)])
_sig("hcrt_device_get", [V, c_int, P(V)])
_sig("hcrt_device_find", [V, c_char_p, c_int, P(V)])
_sig("hcrt_device_get_props", [V, P(DeviceProps)])
_sig("hcrt_backend_count", [V, P(c_int)])
_sig("hcrt_backend_get_info", [V, c_int, P(BackendInfo)])
_sig("hcrt_config_count", [], c_size)
_sig("hcrt_config_get_entry", [V, c_size, P(ConfigEntry)])
_sig("hcrt_config_get", [V, c_char_p, P(c_char_p)])
_sig("hcrt_mem_alloc", [V, c_size, P(V)])
_sig("hcrt_mem_free", [V, V])
_sig("hcrt_memcpy", [V, V, V, V, c_size])
_sig("hcrt_memset", [V, V, c_int, c_size])
_sig("hcrt_reduce", [V, V, V, c_size, c_int, c_int, V])
_sig("hcrt_scale", [V, V, c_size, c_int, ctypes.c_double, V])

_sig("hcrt_comm_world", [V, P(V)])
_sig("hcrt_comm_from_mpi", [V, c_int64, P(V)])
_sig("hcrt_comm_split", [V, c_int, c_int, P(V)])
_sig("hcrt_comm_dup", [V, P(V)])
_sig("hcrt_comm_destroy", [V])
_sig("hcrt_comm_rank", [V, P(c_int)])
_sig("hcrt_comm_size", [V, P(c_int)])
_sig("hcrt_comm_node_count", [V, P(c_int)])
_sig("hcrt_comm_rank_info", [V, c_int, P(RankInfo)])
_sig("hcrt_comm_allreduce", [V, V, V, c_size, c_int, c_int, V])
_sig("hcrt_comm_reduce", [V, V, V, c_size, c_int, c_int, c_int, V])
_sig("hcrt_comm_broadcast", [V, V, c_size, c_int, c_int, V])
_sig("hcrt_comm_allgather", [V, V, V, c_size, c_int, V])
_sig("hcrt_comm_allgatherv", [V, V, V, P(c_size), P(c_size), c_int, V])
_sig("hcrt_comm_reduce_scatter", [V, V, V, c_size, c_int, c_int, V])
_sig("hcrt_comm_alltoall", [V, V, V, c_size, c_int, V])
_sig("hcrt_comm_alltoallv", [V, V, P(c_size), P(c_size), V, P(c_size), P(c_size), c_int, V])
_sig("hcrt_comm_gather", [V, V, V, c_size, c_int, c_int, V])
_sig("hcrt_comm_scatter", [V, V, V, c_size, c_int, c_int, V])
_sig("hcrt_comm_barrier", [V])
_sig("hcrt_comm_send", [V, V, c_size, c_int, c_int, c_int, V])
_sig("hcrt_comm_recv", [V, V, c_size, c_int, c_int, c_int, V])
_sig("hcrt_comm_iallreduce", [V, V, V, c_size, c_int, c_int, V, P(V)])
_sig("hcrt_comm_ibroadcast", [V, V, c_size, c_int, c_int, V, P(V)])
_sig("hcrt_comm_iallgather", [V, V, V, c_size, c_int, V, P(V)])
_sig("hcrt_comm_ireduce_scatter", [V, V, V, c_size, c_int, c_int, V, P(V)])
_sig("hcrt_comm_ibarrier", [V, P(V)])
_sig("hcrt_request_test", [V, P(c_bool)])
_sig("hcrt_request_wait", [V])
_sig("hcrt_request_free", [V])

_sig("hcrt_ckpt_params_init", [P(CkptParams)], None)
_sig("hcrt_ckpt_open", [V, V, P(CkptParams), P(V)])
_sig("hcrt_ckpt_register", [V, c_char_p, Buffer, c_int, P(c_uint64), P(CkptShard)])
_sig("hcrt_ckpt_save", [V, c_int64, V, c_size])
_sig("hcrt_ckpt_wait", [V])
_sig("hcrt_ckpt_test", [V, P(c_bool)])
_sig("hcrt_ckpt_latest", [V, P(c_int64)])
_sig("hcrt_ckpt_list", [V, P(c_int64), c_size, P(c_size)])
_sig("hcrt_ckpt_restore", [V, c_int64, V, c_size, P(c_size), P(c_int64)])
_sig("hcrt_ckpt_close", [V])

_sig("hcrt_stream_create", [V, P(V)])
_sig("hcrt_stream_destroy", [V])
_sig("hcrt_stream_sync", [V])
_sig("hcrt_event_create", [V, P(V)])
_sig("hcrt_event_destroy", [V])
_sig("hcrt_event_record", [V, V])
_sig("hcrt_event_sync", [V])
_sig("hcrt_event_query", [V, P(c_bool)])
_sig("hcrt_event_elapsed", [V, V, P(ctypes.c_float)])

_sig("hcrt_balance_params_init", [P(BalanceParams)], None)
_sig("hcrt_balancer_create", [V, P(BalanceParams), P(V)])
_sig("hcrt_balancer_destroy", [V])
_sig("hcrt_balancer_record", [V, c_int64, ctypes.c_double])
_sig("hcrt_balancer_step", [V, P(c_bool)])
_sig("hcrt_balancer_size", [V, P(c_int)])
_sig("hcrt_balancer_shares", [V, P(c_int64), c_size])
_sig("hcrt_balancer_assignment", [V, P(c_int64), P(c_int64)])
_sig("hcrt_balancer_rates", [V, P(ctypes.c_double), c_size])
_sig("hcrt_balancer_last_decision", [V, P(BalanceDecision)])
_sig("hcrt_balancer_set_shares", [V, P(c_int64), c_size])
_sig("hcrt_comm_allreduce_grads", [V, P(Buffer), c_size, c_int64, P(c_int64), ctypes.c_uint])

_sig("hcrt_exact_params_init", [P(ExactParams)], None)
_sig("hcrt_exact_create", [V, P(Buffer), P(c_char_p), c_size, P(ExactParams), P(V)])
_sig("hcrt_exact_destroy", [V])
_sig("hcrt_exact_add", [V])
_sig("hcrt_exact_allreduce", [V, c_int64, P(c_int64), ctypes.c_uint])
_sig("hcrt_exact_reset", [V])
_sig("hcrt_exact_info", [V, P(c_int), P(c_int64)])

_sig("hcrt_run_heartbeat", [V, c_int64, c_int])
_sig("hcrt_run_note_failure", [V, c_int, c_char_p, c_char_p])
_sig("hcrt_run_catch_signals", [V])
_sig("hcrt_run_should_stop", [V, P(c_bool)])

_sig("hcrt_trace_enabled", [V], c_bool)
_sig("hcrt_trace_clock", [], ctypes.c_double)
_sig("hcrt_trace_complete", [V, c_char_p, c_char_p, ctypes.c_double, ctypes.c_double, c_char_p])
_sig("hcrt_trace_instant", [V, c_char_p, c_char_p, c_char_p])

_sig("hcrt_device_has_compute", [V], c_bool)
_sig("hcrt_compute_gemm", [V, c_bool, c_bool, c_size, c_size, c_size, ctypes.c_float, V, c_size, V, c_size,
                           ctypes.c_float, V, c_size, c_int, V])
_sig("hcrt_compute_bias_add", [V, V, V, V, c_size, c_size, V])
_sig("hcrt_compute_relu", [V, V, V, c_size, V])
_sig("hcrt_compute_relu_backward", [V, V, V, V, c_size, V])
_sig("hcrt_compute_softmax_xent", [V, V, V, c_size, c_size, V, V, c_bool, V])
_sig("hcrt_compute_col_sum", [V, V, V, c_size, c_size, c_bool, V])
_sig("hcrt_optim_params_init", [P(OptimParams)], None)
_sig("hcrt_optim_state_count", [P(OptimParams), c_size, P(c_size)])
_sig("hcrt_compute_optim_step", [V, P(OptimParams), V, V, V, c_size, V])
_sig("hcrt_compute_cast", [V, V, c_int, V, c_int, c_size, V])


def _check_layouts():
    """Each params struct's init function writes sizeof() of the C struct into struct_size: a ctypes
    layout of another size means this binding and the library disagree, which would corrupt memory."""
    for struct, init in ((ContextParams, lib.hcrt_context_params_init), (CkptParams, lib.hcrt_ckpt_params_init),
                         (BalanceParams, lib.hcrt_balance_params_init), (ExactParams, lib.hcrt_exact_params_init),
                         (OptimParams, lib.hcrt_optim_params_init)):
        room = ctypes.create_string_buffer(ctypes.sizeof(struct) + 1024)  # room for a larger C struct
        init(ctypes.cast(room, P(struct)))
        size = c_size.from_buffer(room).value
        if size != ctypes.sizeof(struct):
            raise ImportError(f"hcrt: {library_path()} has a {size}-byte {struct.__name__} where this "
                              f"binding expects {ctypes.sizeof(struct)}: the package and the library are of "
                              "different versions")


_check_layouts()
