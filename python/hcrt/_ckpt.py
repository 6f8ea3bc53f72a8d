"""Checkpoint: sharded, asynchronous, verified checkpoints of registered arrays (hcrt/ckpt.h)."""
import ctypes
import json

from . import _arrays, _lib
from ._core import ContextObject
from ._errors import Error, check, invalid
from ._lib import lib

LATEST = -1  # HCRT_CKPT_LATEST
MAX_DIMS = 8
ERR_NOT_FOUND = -5
_BUSY = {"wait": 0, "refuse": 1}


class Checkpoint(ContextObject):
    """A checkpointer over the ranks of `comm` (an hcrt.Comm; None: every rank of the context).

        with hcrt.Checkpoint(ctx, "/shared/ckpt", keep=3) as ck:
            ck.register("w", w)                              # replicated: every rank holds all of w
            ck.register("emb", rows, global_shape=(N, D), shard=(first_row, n_rows))
            step, meta = ck.restore()                        # (None, None) when nothing was saved yet
            ...
            ck.save(step, meta={"epoch": e})                 # returns once the snapshot is in host memory

    Arrays are numpy arrays, __dlpack__ producers on host memory, or DeviceArrays of any device; hcrt
    keeps a view, not a copy, so they must stay alive and in place until close(). `local_dir` is the
    node-local level (None: HCRT_CKPT_LOCAL_DIR; "" turns it off), `keep` the number of committed steps
    kept (0: HCRT_CKPT_KEEP), `partner` the in-memory partner copy (None: HCRT_CKPT_PARTNER), `busy` what
    save() does while the previous save still persists ("wait" or "refuse": hcrt.Error ERR_BUSY).
    open, save, wait, restore and close are collective over the ranks; register, latest and list are
    local. A failed save or restore raises hcrt.Error; I/O and corruption are hcrt.RestartableError.
    """

    _close_order = 0
    _what = "checkpoint"

    def __init__(self, ctx, dir, keep=0, local_dir=None, partner=None, busy="wait", comm=None):
        func = "Checkpoint"
        ctx._alive(func)
        if busy not in _BUSY:
            raise invalid(func, "busy", f"is {busy!r}, not 'wait' or 'refuse'")
        if not isinstance(keep, int) or keep < 0:
            raise invalid(func, "keep", f"is {keep!r}, not a count of steps (0: HCRT_CKPT_KEEP)")
        self._ctx = ctx
        self._arrays = {}  # name -> (array, view): kept alive until close
        p = _lib.CkptParams()
        lib.hcrt_ckpt_params_init(ctypes.byref(p))
        self._dir = str(dir).encode()
        self._local = None if local_dir is None else str(local_dir).encode()
        p.dir = self._dir
        p.local_dir = self._local
        p.keep = keep
        p.busy = _BUSY[busy]
        p.partner = -1 if partner is None else int(bool(partner))
        if comm is not None:
            comm._alive(func)
        h = ctypes.c_void_p()
        check(lib.hcrt_ckpt_open(ctx._h, comm._h if comm is not None else None, ctypes.byref(p), ctypes.byref(h)),
              ctx._h)
        self._h = h
        ctx._own(self)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        # Closing waits for the save in flight; when the block failed, its error is the one to see.
        try:
            self.close()
        except Error:
            if kind is None:
                raise

    def register(self, name, array, global_shape=None, shard=None):
        """Registers `array` under `name`. Without `shard` it is replicated: every rank holds the whole
        tensor (of shape `global_shape`, default the array's shape) and rank 0's copy is saved. With
        shard=(row_offset, rows) this rank holds those rows of dimension 0 of `global_shape` (required),
        and the shards of all ranks must tile it. Local."""
        func = "Checkpoint.register"
        self._alive(func)
        if not isinstance(name, str):
            raise invalid(func, "name", f"is a {type(name).__name__}, not a str")
        v = _arrays.view(self._ctx, array, func, "array", writable=True)
        try:
            if global_shape is None:
                if shard is not None:
                    raise invalid(func, "global_shape", "is needed with a shard (the whole tensor's shape)")
                global_shape = v.shape if v.shape else (v.count,)
            try:
                shape = [int(x) for x in global_shape]
            except TypeError:
                raise invalid(func, "global_shape", f"is {global_shape!r}, not a sequence of extents") from None
            if not 1 <= len(shape) <= MAX_DIMS or any(x < 0 for x in shape):
                raise invalid(func, "global_shape", f"is {tuple(shape)}: it needs 1..{MAX_DIMS} non-negative "
                                                    "extents")
            cshard = None
            if shard is not None:
                try:
                    row_offset, rows = (int(x) for x in shard)
                except (TypeError, ValueError):
                    raise invalid(func, "shard", f"is {shard!r}, not (row_offset, rows)") from None
                if row_offset < 0 or rows < 0:
                    raise invalid(func, "shard", f"is {(row_offset, rows)}: offsets and counts are non-negative")
                cshard = _lib.CkptShard(row_offset, rows)
            cshape = (ctypes.c_uint64 * len(shape))(*shape)
            buf = _lib.Buffer(v.dev_handle, v.ptr, v.count, v.code)
            check(lib.hcrt_ckpt_register(self._h, name.encode(), buf, len(shape), cshape,
                                         ctypes.byref(cshard) if cshard is not None else None), self._ctx._h)
        except BaseException:
            v.release()
            raise
        self._arrays[name] = (array, v)

    def save(self, step, meta=None):
        """Saves every registered array and `meta` (bytes, or a dict stored as JSON) as step `step` (the
        same on every rank, increasing). Returns once the snapshot is in host memory: the arrays may change
        again. Persisting and the commit go on in the background (wait(), test(), or the next save)."""
        func = "Checkpoint.save"
        self._alive(func)
        if isinstance(meta, dict):
            meta = json.dumps(meta, sort_keys=True).encode()
        elif meta is None:
            meta = b""
        elif not isinstance(meta, (bytes, bytearray, memoryview)):
            raise invalid(func, "meta", f"is a {type(meta).__name__}, not bytes or a dict")
        blob = bytes(meta)
        check(lib.hcrt_ckpt_save(self._h, int(step), blob, len(blob)), self._ctx._h)

    def wait(self):
        """Waits until the save in flight is committed on every rank (or raises its error)."""
        self._alive("Checkpoint.wait")
        check(lib.hcrt_ckpt_wait(self._h), self._ctx._h)

    def test(self):
        """Advances the save in flight without blocking; True once it is committed (every rank must keep
        calling test() or wait() until then)."""
        self._alive("Checkpoint.test")
        done = ctypes.c_bool()
        check(lib.hcrt_ckpt_test(self._h, ctypes.byref(done)), self._ctx._h)
        return bool(done.value)

    def latest(self):
        """Newest committed step in the shared directory, or None. Local."""
        self._alive("Checkpoint.latest")
        step = ctypes.c_int64()
        st = lib.hcrt_ckpt_latest(self._h, ctypes.byref(step))
        if st == ERR_NOT_FOUND:
            return None
        check(st, self._ctx._h)
        return step.value

    def list(self):
        """Committed steps in the shared directory, newest first. Local."""
        self._alive("Checkpoint.list")
        n = ctypes.c_size_t()
        check(lib.hcrt_ckpt_list(self._h, None, 0, ctypes.byref(n)), self._ctx._h)
        steps = (ctypes.c_int64 * max(n.value, 1))()
        check(lib.hcrt_ckpt_list(self._h, steps, n.value, ctypes.byref(n)), self._ctx._h)
        return [steps[i] for i in range(min(n.value, len(steps)))]

    def restore(self, step=LATEST, missing_ok=True):
        """Loads `step` (hcrt.LATEST: the newest committed step that verifies) into the registered arrays.
        Returns (step, meta): meta is a dict when a dict was saved, else bytes. With nothing committed yet,
        returns (None, None) when missing_ok, else raises hcrt.Error ERR_NOT_FOUND."""
        func = "Checkpoint.restore"
        self._alive(func)
        cap = 1 << 16
        for _ in range(2):
            buf = ctypes.create_string_buffer(cap)
            length, got = ctypes.c_size_t(), ctypes.c_int64()
            st = lib.hcrt_ckpt_restore(self._h, int(step), buf, cap, ctypes.byref(length), ctypes.byref(got))
            if st == ERR_NOT_FOUND and missing_ok and step == LATEST:
                return None, None
            check(st, self._ctx._h)
            if length.value <= cap:
                break
            # Every rank got the same blob length: all restore the same step again with room for it.
            cap, step = length.value, got.value
        blob = buf.raw[:length.value]
        return got.value, _decode_meta(blob)

    def close(self):
        """Finishes the save in flight and releases the checkpointer (collective). Idempotent."""
        if self._h and self._h.value and not self._ctx.closed:
            h, self._h = self._h, ctypes.c_void_p()
            try:
                check(lib.hcrt_ckpt_close(h), self._ctx._h)
            finally:
                self._release()
        self._h = ctypes.c_void_p()

    def _release(self):
        for _array, v in self._arrays.values():
            v.release()
        self._arrays = {}

    def _context_closing(self):
        try:
            self.close()
        except Error:
            pass


def _decode_meta(blob):
    if blob[:1] == b"{":
        try:
            value = json.loads(blob.decode())
            if isinstance(value, dict):
                return value
        except (UnicodeDecodeError, ValueError):
            pass
    return blob
