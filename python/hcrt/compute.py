"""hcrt.compute: the operations of one MLP training step on DeviceArrays (hcrt/compute.h), so a Python
trainer computes on its sim, cuda or hip device (or the host's cpu device) without copying to numpy.

    import hcrt.compute as hc
    hc.gemm(x, w1, h)                     # h = x @ w1            (x: m x in, w1: in x hidden, h: m x hidden)
    hc.bias_add(h, b1)                    # h += b1, in place
    hc.relu(h, out=a)                     # a = max(h, 0)
    hc.softmax_xent(z, labels, loss=loss, dlogits=z, accumulate=True)   # loss += sum -log p[y]; z = p - onehot
    hc.gemm(a, z, dw2, trans_a=True, beta=1.0)                           # dw2 += a^T z
    hc.optim_step(params, grads, hc.OptimParams("sgd", lr=0.1, momentum=0.9, grad_scale=1 / n), state)

Shapes come from the arrays (row-major and dense: a leading dimension is a row's length) and are checked
here, naming the argument; the library checks the rest (overlaps, alignment, device ownership, the
hyper-parameters) the same way. Every operand of one call is a DeviceArray of one device; views of a flat
buffer (DeviceArray.view) are fine. Gradients are sums over samples, never means (hcrt/compute.h says
why): divide once, by the global sample count, in the optimizer's grad_scale. Each call runs synchronously,
or with `stream` (an hcrt.Stream of the same device) is queued and returns at once. On cpu and sim every op
gives the same bits on every run, rank and machine. A device whose backend has no compute extension
raises hcrt.Error ERR_NOT_SUPPORTED (Device.has_compute tells beforehand).
"""
import ctypes

from . import _arrays, _lib
from ._core import DeviceArray
from ._errors import check, invalid, number, whole
from ._lib import lib
from ._stream import Stream

__all__ = ["gemm", "bias_add", "relu", "relu_backward", "softmax_xent", "col_sum", "cast", "optim_step",
           "OptimParams"]

GEMM_DTYPES = ("f32", "f16", "bf16")
OPTIMIZERS = {"sgd": 0, "adamw": 1}


class _Call:
    """The operands of one call: each a live DeviceArray on the device of the first, with its dtype checked."""

    def __init__(self, func, stream):
        self.func, self.device = func, None
        if stream is not None:
            if not isinstance(stream, Stream):
                raise invalid(func, "stream", f"is a {type(stream).__name__}, not an hcrt.Stream or None")
            stream._alive(func)
        self.stream = stream._h if stream is not None else None

    def arg(self, a, name, dtypes=("f32",), ndim=None):
        if not isinstance(a, DeviceArray):
            raise invalid(self.func, name, f"is a {type(a).__name__}, not an hcrt.DeviceArray (device.array(x) "
                                           "copies host data to a device)")
        if a.freed:
            raise invalid(self.func, name, "is a DeviceArray that was freed")
        a.device._ctx._alive(self.func)
        if self.device is None:
            self.device = a.device
        elif a.device != self.device:
            raise invalid(self.func, name, f"lives on {a.device}, but the call's first operand on {self.device}: "
                                           "every operand must be on one device")
        if a.dtype not in dtypes:
            raise invalid(self.func, name, f"has dtype {a.dtype}, not {' or '.join(dtypes)}")
        if ndim is not None and len(a.shape) != ndim:
            raise invalid(self.func, name, f"has shape {a.shape}; it must be {ndim}-D")
        return a.ptr

    def size(self, a, name, count):
        if a.size != count:
            raise invalid(self.func, name, f"has {a.size} elements (shape {a.shape}); the call needs {count}")

    def run(self, fn, *args):
        check(fn(self.device._h, *args), self.device._ctx._h)


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, stream=None):
    """out = alpha * op(a) @ op(b) + beta * out, where op(a) is m x k and op(b) k x n: `a` is m x k, or
    k x m used transposed with trans_a; `b` k x n, or n x k with trans_b. a and b are f32, f16 or bf16
    (one dtype; products accumulate in f32), out is f32, m x n, and must not overlap them. With beta 0
    out is only written. Returns out."""
    c = _Call("hcrt.compute.gemm", stream)
    pa = c.arg(a, "a", GEMM_DTYPES, 2)
    pb = c.arg(b, "b", GEMM_DTYPES, 2)
    pc = c.arg(out, "out", ndim=2)
    if b.dtype != a.dtype:
        raise invalid(c.func, "b", f"has dtype {b.dtype} but argument 'a' has {a.dtype}")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if kb != k:
        raise invalid(c.func, "b", f"has shape {b.shape}{' (transposed)' if trans_b else ''}: its {kb} rows do "
                                   f"not match the {k} columns of argument 'a'{' (transposed)' if trans_a else ''}")
    if out.shape != (m, n):
        raise invalid(c.func, "out", f"has shape {out.shape}, not ({m}, {n})")
    c.run(lib.hcrt_compute_gemm, bool(trans_a), bool(trans_b), m, n, k, float(alpha), pa, a.shape[1], pb,
          b.shape[1], float(beta), pc, n, _arrays.DTYPES[a.dtype], c.stream)
    return out


def bias_add(x, bias, out=None, stream=None):
    """out[r, j] = x[r, j] + bias[j] for a rows x cols `x` and a `bias` of cols elements; out defaults to x
    (in place). Returns out."""
    c = _Call("hcrt.compute.bias_add", stream)
    px = c.arg(x, "x", ndim=2)
    rows, cols = x.shape
    pb = c.arg(bias, "bias")
    c.size(bias, "bias", cols)
    out = x if out is None else out
    po = c.arg(out, "out")
    c.size(out, "out", x.size)
    c.run(lib.hcrt_compute_bias_add, po, px, pb, rows, cols, c.stream)
    return out


def relu(x, out=None, stream=None):
    """out = max(x, 0) element-wise; out defaults to x (in place). Returns out."""
    c = _Call("hcrt.compute.relu", stream)
    px = c.arg(x, "x")
    out = x if out is None else out
    po = c.arg(out, "out")
    c.size(out, "out", x.size)
    c.run(lib.hcrt_compute_relu, po, px, x.size, c.stream)
    return out


def relu_backward(dy, act, out=None, stream=None):
    """The ReLU's gradient: out = dy where act > 0, else 0 (act: the ReLU's input or output). out defaults
    to dy (in place). Returns out."""
    c = _Call("hcrt.compute.relu_backward", stream)
    pdy = c.arg(dy, "dy")
    pact = c.arg(act, "act")
    c.size(act, "act", dy.size)
    out = dy if out is None else out
    po = c.arg(out, "out")
    c.size(out, "out", dy.size)
    c.run(lib.hcrt_compute_relu_backward, po, pdy, pact, dy.size, c.stream)
    return out


def softmax_xent(logits, labels, loss=None, dlogits=None, accumulate=False, stream=None):
    """Softmax cross-entropy of a rows x classes `logits` against i32 `labels` (rows, each in [0, classes)).
    `loss` (one f32 element) receives the SUM over the rows of -log softmax[label] (added to it with
    accumulate); `dlogits` (the shape of logits; may be logits itself) receives softmax - onehot per row.
    At least one of them is needed. Returns (loss, dlogits)."""
    c = _Call("hcrt.compute.softmax_xent", stream)
    pz = c.arg(logits, "logits", ndim=2)
    rows, classes = logits.shape
    py = c.arg(labels, "labels", ("i32",))
    c.size(labels, "labels", rows)
    if loss is None and dlogits is None:
        raise invalid(c.func, "loss", "and argument 'dlogits' are both None: the call would compute nothing")
    pl = pd = None
    if loss is not None:
        pl = c.arg(loss, "loss")
        c.size(loss, "loss", 1)
    if dlogits is not None:
        pd = c.arg(dlogits, "dlogits")
        c.size(dlogits, "dlogits", logits.size)
    c.run(lib.hcrt_compute_softmax_xent, pz, py, rows, classes, pl, pd, bool(accumulate), c.stream)
    return loss, dlogits


def col_sum(x, out, accumulate=False, stream=None):
    """out[j] = sum over the rows of x[r, j] (rows x cols `x`, cols elements of `out`), or out[j] + that sum
    with accumulate. Returns out."""
    c = _Call("hcrt.compute.col_sum", stream)
    px = c.arg(x, "x", ndim=2)
    rows, cols = x.shape
    po = c.arg(out, "out")
    c.size(out, "out", cols)
    c.run(lib.hcrt_compute_col_sum, po, px, rows, cols, bool(accumulate), c.stream)
    return out


def cast(src, out, stream=None):
    """out = src converted between f32, f16 and bf16 (same element count; narrowing rounds to nearest
    even). Returns out."""
    c = _Call("hcrt.compute.cast", stream)
    ps = c.arg(src, "src", GEMM_DTYPES)
    po = c.arg(out, "out", GEMM_DTYPES)
    c.size(out, "out", src.size)
    c.run(lib.hcrt_compute_cast, po, _arrays.DTYPES[out.dtype], ps, _arrays.DTYPES[src.dtype], src.size, c.stream)
    return out


class OptimParams:
    """Hyper-parameters of optim_step (hcrt_optim_params_t), PyTorch's semantics:

        OptimParams("sgd", lr=0.1, momentum=0.9, weight_decay=0, nesterov=False, grad_scale=1 / n)
        OptimParams("adamw", lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, step=t)

    Fields left out keep the library's defaults (hcrt_optim_params_init). grad_scale multiplies the
    gradients first (1 / the global sample count for summed gradients); step is AdamW's 1-based update
    number. The library checks every value and names the field ("params->beta2")."""

    FIELDS = ("step", "lr", "grad_scale", "weight_decay", "momentum", "beta1", "beta2", "eps", "nesterov")

    def __init__(self, kind="sgd", **fields):
        if kind not in OPTIMIZERS:
            raise invalid("OptimParams", "kind", f"is {kind!r}, not one of {', '.join(OPTIMIZERS)}")
        self.kind = kind
        c = _lib.OptimParams()
        lib.hcrt_optim_params_init(ctypes.byref(c))
        for name in self.FIELDS:
            setattr(self, name, getattr(c, name))
        for name, value in fields.items():
            if name not in self.FIELDS:
                raise invalid("OptimParams", name, f"is not a field (fields: kind, {', '.join(self.FIELDS)})")
            setattr(self, name, value)

    def _struct(self, func):
        c = _lib.OptimParams()
        lib.hcrt_optim_params_init(ctypes.byref(c))
        if self.kind not in OPTIMIZERS:
            raise invalid(func, "params.kind", f"is {self.kind!r}, not one of {', '.join(OPTIMIZERS)}")
        c.kind = OPTIMIZERS[self.kind]
        for name in self.FIELDS:
            value = getattr(self, name)
            if name == "nesterov":
                value = bool(value)
            elif name == "step":  # unsigned in C: ctypes would wrap a negative value around
                value = whole(func, "params.step", value, 0)
            else:
                value = number(func, f"params.{name}", value)
            setattr(c, name, value)
        return c

    def state_count(self, count):
        """The f32 elements of optimizer state optim_step needs for `count` parameters: 0 for SGD without
        momentum, count with it, 2 * count for AdamW. Allocate them zeroed (device.zeros) and checkpoint
        them with the weights: they are everything the optimizer remembers."""
        func = "OptimParams.state_count"
        count = whole(func, "count", count, 0)
        n = ctypes.c_size_t()
        check(lib.hcrt_optim_state_count(ctypes.byref(self._struct(func)), count, ctypes.byref(n)), None)
        return n.value

    def __repr__(self):
        return f"OptimParams({self.kind!r}, " + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"


def optim_step(param, grad, params, state=None, stream=None):
    """One optimizer update of the f32 `param` in place from `grad` (same element count), with `params`
    (an OptimParams) and its `state` (params.state_count(param.size) f32 elements, zeroed before the first
    step; None when that is 0). Returns param."""
    func = "hcrt.compute.optim_step"
    if not isinstance(params, OptimParams):
        raise invalid(func, "params", f"is a {type(params).__name__}, not an hcrt.compute.OptimParams")
    c = _Call(func, stream)
    pp = c.arg(param, "param")
    pg = c.arg(grad, "grad")
    c.size(grad, "grad", param.size)
    cp = params._struct(func)
    need = params.state_count(param.size)
    ps = None
    if state is not None:
        ps = c.arg(state, "state")
        if state.size < need:
            raise invalid(func, "state", f"has {state.size} elements; {params.kind} needs {need} for "
                                         f"{param.size} parameters (params.state_count)")
    elif need:
        raise invalid(func, "state", f"is None; {params.kind} with these params needs {need} elements of state")
    c.run(lib.hcrt_compute_optim_step, ctypes.byref(cp), pp, pg, ps, param.size, c.stream)
    return param
