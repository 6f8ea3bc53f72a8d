"""ExactAccumulator: gradient sums that are bitwise the same whatever the world size, the batch split and
the restarts (hcrt/exact.h, docs/exact-mode.md)."""
import ctypes

from . import _arrays, _lib
from ._core import LocalObject
from ._errors import check, invalid, whole
from ._lib import lib

EXACT_MEAN = 1  # HCRT_EXACT_MEAN


class ExactAccumulator(LocalObject):
    """Sums the f32 `arrays` (gradients, on any device) exactly over micro-batches and ranks:

        acc = hcrt.ExactAccumulator(comm, [grads, loss], names=["grads", "loss"])
        for each micro-batch of this rank:
            compute its gradient sum INTO grads (overwriting, not accumulating)
            acc.add()                                   # adds the arrays' current contents, exactly
        total = acc.allreduce(local_samples, mean=True)  # grads = exact sum over all ranks / total

    Every value added is rounded once to the grid of 2**lsb_exponent and must be below 2**top_exponent in
    magnitude (defaults -64 and 32: two int64 words per element); the reduction adds integers, so its
    order does not matter and the result, rounded once to f32, is the same bits on every rank, world size
    and split. A value outside the window makes the next allreduce raise hcrt.InvalidArgument on every rank,
    naming the rank, array, element and value. hcrt keeps views of the arrays, not copies: they must stay
    alive and in place until close(). Creating and allreduce() are collective over comm; add(), reset()
    and the properties are local. Closed with its context.
    """

    _close_order = 0
    _what = "exact accumulator"

    def __init__(self, comm, arrays, names=None, lsb_exponent=None, top_exponent=None):
        func = "ExactAccumulator"
        from ._comm import Comm
        if not isinstance(comm, Comm):
            raise invalid(func, "comm", f"is a {type(comm).__name__}, not an hcrt.Comm")
        comm._alive(func)
        self._ctx, self.comm = comm._ctx, comm
        single = not isinstance(arrays, (list, tuple))
        arrays = [arrays] if single else list(arrays)
        if not arrays:
            raise invalid(func, "arrays", "is empty: an accumulator needs at least one array")
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            if len(names) != len(arrays) or not all(isinstance(n, str) for n in names):
                raise invalid(func, "names", f"is {names!r}: it needs one str per array ({len(arrays)})")
        p = _lib.ExactParams()
        lib.hcrt_exact_params_init(ctypes.byref(p))
        if lsb_exponent is not None:
            p.lsb_exponent = whole(func, "lsb_exponent", lsb_exponent)
        if top_exponent is not None:
            p.top_exponent = whole(func, "top_exponent", top_exponent)
        self._views = []
        try:
            for i, a in enumerate(arrays):
                name = "arrays" if single else f"arrays[{i}]"
                self._views.append(_arrays.view(self._ctx, a, func, name, writable=True))
                if self._views[-1].dtype != "f32":
                    raise invalid(func, name, f"has dtype {self._views[-1].dtype}; exact mode sums f32")
            self._arrays = arrays  # kept alive with the views
            bufs = (_lib.Buffer * len(arrays))(*[_lib.Buffer(v.dev_handle, v.ptr, v.count, v.code)
                                                 for v in self._views])
            self._names = [n.encode() for n in names] if names is not None else None
            cnames = (ctypes.c_char_p * len(arrays))(*self._names) if names is not None else None
            h = ctypes.c_void_p()
            check(lib.hcrt_exact_create(comm._h, bufs, cnames, len(arrays), ctypes.byref(p), ctypes.byref(h)),
                  self._ctx._h)
        except BaseException:
            self._release()
            raise
        self._h = h
        words, adds = ctypes.c_int(), ctypes.c_int64()
        check(lib.hcrt_exact_info(h, ctypes.byref(words), ctypes.byref(adds)), self._ctx._h)
        self.words, self.max_adds = words.value, adds.value
        self._ctx._own(self)

    def __repr__(self):
        return (f"<hcrt.ExactAccumulator of {len(getattr(self, '_arrays', []))} arrays, {self.words} words per "
                f"element{' (closed)' if self.closed else ''}>")

    def add(self):
        """Adds the arrays' current contents (one micro-batch's gradients) to the exact sums. Synchronous:
        the arrays may be overwritten when it returns. Local."""
        self._alive("ExactAccumulator.add")
        check(lib.hcrt_exact_add(self._h), self._ctx._h)

    def allreduce(self, local_samples, mean=False):
        """Sums every rank's accumulator exactly and writes the result, rounded once to f32, into the arrays
        on every rank: the sum, or with mean=True the sum divided by the global sample count. local_samples
        is this rank's count. Returns the global count. Resets the accumulator. Collective."""
        func = "ExactAccumulator.allreduce"
        self._alive(func)
        total = ctypes.c_int64()
        check(lib.hcrt_exact_allreduce(self._h, whole(func, "local_samples", local_samples, 0),
                                       ctypes.byref(total), EXACT_MEAN if mean else 0), self._ctx._h)
        return total.value

    def reset(self):
        """Discards what was added since the last allreduce. Local."""
        self._alive("ExactAccumulator.reset")
        check(lib.hcrt_exact_reset(self._h), self._ctx._h)

    def close(self):
        """Frees the accumulator and lets go of the arrays. Idempotent."""
        if self._h and self._h.value and not self._ctx.closed:
            h, self._h = self._h, ctypes.c_void_p()
            try:
                check(lib.hcrt_exact_destroy(h), self._ctx._h)
            finally:
                self._release()
        self._h = ctypes.c_void_p()

    def _release(self):
        for v in self._views:
            v.release()
        self._views, self._arrays = [], []
