"""Balancer and summed gradients: a speed-proportional split of the global batch (hcrt/balance.h,
docs/balance.md)."""
import ctypes
from collections import namedtuple

from . import _arrays, _lib
from ._core import Device, LocalObject
from ._errors import check, invalid, number, whole
from ._lib import lib

MODES = {"off": 0, "static": 1, "online": 2}
REASONS = ("initial", "improve", "hold", "same", "cap", "restore", "unknown")
GRADS_MEAN = 1  # HCRT_GRADS_MEAN
FLOATS = ("f32", "f64", "f16", "bf16")

Decision = namedtuple("Decision", "step changed reason predicted_before predicted_after text")
Decision.__doc__ = """The balancer's last decision: `step` (steps completed when it was taken), whether the plan
`changed`, the `reason` (initial, improve, hold, same, cap, restore, unknown), the predicted seconds per
step of the previous plan and of the adopted (or, when held, proposed) one (0: unknown), and one line of
`text` ("step 40: shares 16,8,4 -> 15,9,4 (predicted 0.52 s -> 0.47 s)")."""


class Balancer(LocalObject):
    """The split of a global batch of `micro_batches` micro-batches of `micro_batch_size` samples over the
    ranks of `comm`, in proportion to their measured throughput (hcrt_balancer_t):

        bal = hcrt.Balancer(comm, micro_batches=28, micro_batch_size=32)
        for step in ...:
            first, count = bal.assignment          # global micro-batches [first, first + count)
            for each of them: t = compute it; bal.record(32, t)
            total = comm.allreduce_grads(grads, count * 32)     # summed gradients, global sample count
            ... update with grads / total ...
            bal.step()                              # every `interval` steps: a new plan

    `mode` is "online" (re-plan every `interval` steps, with hysteresis), "static" (one re-plan) or "off"
    (an even split). The other parameters default to the library's (hcrt_balance_params_init; docs/
    balance.md explains them): interval 4, smoothing 0.3, hysteresis 0.1, warmup_steps 1, no cap of
    max_micro_batches, bytes_per_sample 0 (no memory cap; else the cap is `device`'s free memory over
    bytes_per_sample * micro_batch_size), use_device_speed True (start from the backends' device speeds).

    Creating, step(), set_shares() and close() are collective over comm, with the same values on every rank;
    the rest is local. Closed with its context.
    """

    _close_order = 0
    _what = "balancer"

    def __init__(self, comm, micro_batches, micro_batch_size, mode="online", interval=None, smoothing=None,
                 hysteresis=None, warmup_steps=None, max_micro_batches=None, bytes_per_sample=None, device=None,
                 use_device_speed=None):
        func = "Balancer"
        from ._comm import Comm
        if not isinstance(comm, Comm):
            raise invalid(func, "comm", f"is a {type(comm).__name__}, not an hcrt.Comm")
        comm._alive(func)
        self._ctx, self.comm = comm._ctx, comm
        p = _lib.BalanceParams()
        lib.hcrt_balance_params_init(ctypes.byref(p))
        p.micro_batches = whole(func, "micro_batches", micro_batches)
        p.micro_batch_size = whole(func, "micro_batch_size", micro_batch_size)
        if mode not in MODES:
            raise invalid(func, "mode", f"is {mode!r}, not one of {', '.join(MODES)}")
        p.mode = MODES[mode]
        # Ranges are the library's to check (it names the field); an unsigned field is checked here, as
        # ctypes would wrap a negative value around.
        for name, value in (("interval", interval), ("smoothing", smoothing), ("hysteresis", hysteresis),
                            ("warmup_steps", warmup_steps), ("max_micro_batches", max_micro_batches),
                            ("bytes_per_sample", bytes_per_sample)):
            if value is not None:
                setattr(p, name, number(func, name, value) if name in ("smoothing", "hysteresis") else
                        whole(func, name, value, 0 if name == "bytes_per_sample" else None))
        if device is not None:
            if not isinstance(device, Device):
                raise invalid(func, "device", f"is a {type(device).__name__}, not an hcrt.Device")
            p.device = device._h
        if use_device_speed is not None:
            p.use_device_speed = bool(use_device_speed)
        self.micro_batches, self.micro_batch_size, self.mode = p.micro_batches, p.micro_batch_size, mode
        h = ctypes.c_void_p()
        check(lib.hcrt_balancer_create(comm._h, ctypes.byref(p), ctypes.byref(h)), self._ctx._h)
        self._h = h
        n = ctypes.c_int()
        check(lib.hcrt_balancer_size(h, ctypes.byref(n)), self._ctx._h)
        self.size = n.value
        self._ctx._own(self)

    def __repr__(self):
        if self.closed:
            return "<hcrt.Balancer (closed)>"
        return f"<hcrt.Balancer {self.mode} shares {self.shares} of {self.micro_batches} x {self.micro_batch_size}>"

    def record(self, samples, seconds):
        """Records that this rank computed `samples` (> 0) samples in `seconds` (> 0) during this step,
        typically once per micro-batch (calls add up). Local."""
        func = "Balancer.record"
        self._alive(func)
        check(lib.hcrt_balancer_record(self._h, whole(func, "samples", samples), number(func, "seconds", seconds)),
              self._ctx._h)

    def step(self):
        """Ends a step: folds its measurements in and, on re-plan steps, agrees on a new plan. Returns
        whether the plan changed. Collective: every rank calls it once per step."""
        self._alive("Balancer.step")
        changed = ctypes.c_bool()
        check(lib.hcrt_balancer_step(self._h, ctypes.byref(changed)), self._ctx._h)
        return bool(changed.value)

    @property
    def shares(self):
        """The plan in force: micro-batches of each rank, a list in rank order."""
        self._alive("Balancer.shares")
        out = (ctypes.c_int64 * self.size)()
        check(lib.hcrt_balancer_shares(self._h, out, self.size), self._ctx._h)
        return list(out)

    @property
    def assignment(self):
        """This rank's global micro-batches in the plan in force: (first, count)."""
        self._alive("Balancer.assignment")
        first, count = ctypes.c_int64(), ctypes.c_int64()
        check(lib.hcrt_balancer_assignment(self._h, ctypes.byref(first), ctypes.byref(count)), self._ctx._h)
        return first.value, count.value

    @property
    def rates(self):
        """Each rank's throughput (samples/s) at the last re-plan (0 where none was measured yet)."""
        self._alive("Balancer.rates")
        out = (ctypes.c_double * self.size)()
        check(lib.hcrt_balancer_rates(self._h, out, self.size), self._ctx._h)
        return list(out)

    @property
    def last_decision(self):
        """The last decision (initial plan, re-plan, hold, restore) as an hcrt.Decision."""
        self._alive("Balancer.last_decision")
        d = _lib.BalanceDecision(struct_size=ctypes.sizeof(_lib.BalanceDecision))
        check(lib.hcrt_balancer_last_decision(self._h, ctypes.byref(d)), self._ctx._h)
        reason = REASONS[d.reason] if 0 <= d.reason < len(REASONS) else str(d.reason)
        return Decision(d.step, bool(d.changed), reason, d.predicted_before, d.predicted_after,
                        (d.text or b"").decode(errors="replace"))

    def set_shares(self, shares):
        """Replaces the plan (one from a checkpoint's metadata, say): one share per rank, each at least 1 and
        within the rank's cap, summing to micro_batches. Collective: every rank passes the same plan
        (hcrt.Error ERR_MISMATCH on every rank otherwise)."""
        func = "Balancer.set_shares"
        self._alive(func)
        try:
            vals = [whole(func, "shares", v) for v in shares]
        except TypeError:
            raise invalid(func, "shares", f"is {shares!r}, not a sequence of ints") from None
        if len(vals) != self.size:
            raise invalid(func, "shares", f"has {len(vals)} entries, not one per rank ({self.size})")
        check(lib.hcrt_balancer_set_shares(self._h, (ctypes.c_int64 * self.size)(*vals), self.size), self._ctx._h)

    def close(self):
        """Frees the balancer. Idempotent."""
        if self._h and self._h.value and not self._ctx.closed:
            h, self._h = self._h, ctypes.c_void_p()
            check(lib.hcrt_balancer_destroy(h), self._ctx._h)
        self._h = ctypes.c_void_p()


def allreduce_grads(comm, grads, local_samples, mean=False):
    """Comm.allreduce_grads (see there)."""
    func = "Comm.allreduce_grads"
    comm._alive(func)
    local = whole(func, "local_samples", local_samples, 0)
    arrays = list(grads) if isinstance(grads, (list, tuple)) else [grads]
    views = []
    try:
        for i, a in enumerate(arrays):
            name = f"grads[{i}]" if isinstance(grads, (list, tuple)) else "grads"
            views.append(_arrays.view(comm._ctx, a, func, name, writable=True))
            if views[-1].dtype not in FLOATS:
                raise invalid(func, name, f"has dtype {views[-1].dtype}; gradients are floating point "
                                          f"({', '.join(FLOATS)})")
        bufs = (_lib.Buffer * max(len(views), 1))(*[_lib.Buffer(v.dev_handle, v.ptr, v.count, v.code) for v in views])
        total = ctypes.c_int64()
        check(lib.hcrt_comm_allreduce_grads(comm._h, bufs, len(views), local, ctypes.byref(total),
                                            GRADS_MEAN if mean else 0), comm._ctx._h)
        return total.value
    finally:
        for v in views:
            v.release()
