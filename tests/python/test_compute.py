"""tests/python/test_compute.py - hcrt.compute on DeviceArrays, streams and events, views, under mpirun.

Run on 3 ranks, two on sim devices and one on the host's cpu device. Every op is checked against a float64
numpy reference on the same (rounded) inputs, within the error bound of its f32 arithmetic; then the
ranks allgather their results and every rank must hold the same bits (cpu and sim share one host
implementation, so a sim rank and a cpu rank must agree exactly). Bad arguments raise
hcrt.InvalidArgument naming the argument, on the calling rank before any communication.
"""
import numpy as np
import pytest

import hcrt
import hcrt.compute as hc

EPS = 2.0 ** -24


def bad(match, kind=hcrt.InvalidArgument):
    return pytest.raises(kind, match=match)


def same_bits_everywhere(comm, *arrays):
    """Every rank holds the same bytes in each array (allgathered and compared)."""
    for a in arrays:
        raw = np.ascontiguousarray(a).view(np.uint8).ravel()
        got = comm.allgather(raw)
        assert all(np.array_equal(got[r], raw) for r in range(comm.size)), "ranks disagree bitwise"


def bf16(x):
    """float32 -> bfloat16 bit patterns (round to nearest even) and their float64 values."""
    b = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return b, (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm(ctx, comm, rng, dtype, ta, tb):
    dev = ctx.device
    m, n, k = 7, 5, 33
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    if dtype == "f32":
        da, db, a64, b64 = dev.array(a), dev.array(b), a.astype(np.float64), b.astype(np.float64)
    elif dtype == "f16":
        a16, b16 = a.astype(np.float16), b.astype(np.float16)
        da, db, a64, b64 = dev.array(a16), dev.array(b16), a16.astype(np.float64), b16.astype(np.float64)
    else:
        (abits, a64), (bbits, b64) = bf16(a), bf16(b)
        da, db = dev.array(abits, dtype="bf16"), dev.array(bbits, dtype="bf16")
    dc = dev.array(c0)
    out = hc.gemm(da, db, dc, trans_a=ta, trans_b=tb, alpha=0.5, beta=2.0)
    assert out is dc
    opa, opb = (a64.T if ta else a64), (b64.T if tb else b64)
    ref = 0.5 * opa @ opb + 2.0 * c0
    bound = (k + 3) * EPS * (0.5 * np.abs(opa) @ np.abs(opb) + 2.0 * np.abs(c0))
    got = dc.numpy()
    assert np.all(np.abs(got - ref) <= bound), np.max(np.abs(got - ref) / bound)
    same_bits_everywhere(comm, got)


def test_elementwise_and_loss(ctx, comm, rng):
    dev = ctx.device
    rows, cols = 9, 6
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    bias = rng.standard_normal(cols).astype(np.float32)
    dx, dbias = dev.array(x), dev.array(bias)
    y = dev.empty((rows, cols))
    hc.bias_add(dx, dbias, out=y)
    np.testing.assert_array_equal(y.numpy(), x + bias)  # one f32 addition each: exact against numpy
    hc.bias_add(dx, dbias)  # in place
    np.testing.assert_array_equal(dx.numpy(), x + bias)
    h = (x + bias)
    hc.relu(dx, out=y)
    np.testing.assert_array_equal(y.numpy(), np.maximum(h, 0))
    dy = rng.standard_normal((rows, cols)).astype(np.float32)
    g = dev.array(dy)
    hc.relu_backward(g, dx)  # in place, act = the ReLU's input
    np.testing.assert_array_equal(g.numpy(), np.where(h > 0, dy, 0))
    s = dev.zeros(cols)
    hc.col_sum(dx, s)
    hc.col_sum(dx, s, accumulate=True)
    ref = 2 * h.astype(np.float64).sum(axis=0)
    assert np.all(np.abs(s.numpy() - ref) <= (rows + 2) * EPS * 2 * np.abs(h).sum(axis=0))

    labels = rng.integers(0, cols, rows).astype(np.int32)
    loss, dl = dev.zeros(1), dev.empty((rows, cols))
    hc.softmax_xent(dx, dev.array(labels), loss=loss, dlogits=dl)
    hc.softmax_xent(dx, dev.array(labels), loss=loss, accumulate=True)  # the loss of a second micro-batch
    z = h.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    ref_loss = -2 * np.log(p[np.arange(rows), labels]).sum()
    onehot = np.eye(cols)[labels]
    assert abs(loss.numpy()[0] - ref_loss) <= 1e-5 * abs(ref_loss)
    assert np.max(np.abs(dl.numpy() - (p - onehot))) <= 1e-6
    same_bits_everywhere(comm, y.numpy(), g.numpy(), s.numpy(), loss.numpy(), dl.numpy())


def test_cast(ctx, comm, rng):
    dev = ctx.device
    x = (rng.standard_normal(100) * 1000).astype(np.float32)
    d = dev.array(x)
    half, bf, back = dev.empty(100, "f16"), dev.empty(100, "bf16"), dev.empty(100)
    hc.cast(d, half)
    np.testing.assert_array_equal(half.numpy(), x.astype(np.float16))
    hc.cast(half, back)
    np.testing.assert_array_equal(back.numpy(), x.astype(np.float16).astype(np.float32))
    hc.cast(d, bf)
    np.testing.assert_array_equal(bf.numpy(), bf16(x)[0])
    same_bits_everywhere(comm, half.numpy(), bf.numpy())


def test_optimizers(ctx, comm, rng):
    dev = ctx.device
    n = 50
    p0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(3)]
    # SGD with momentum and weight decay, torch's formula, with the gradients scaled by 1/4.
    sgd = hc.OptimParams("sgd", lr=0.1, momentum=0.9, weight_decay=0.01, grad_scale=0.25)
    assert sgd.state_count(n) == n
    p, st = dev.array(p0), dev.zeros(sgd.state_count(n))
    rp, rv = p0.astype(np.float64), np.zeros(n)
    for g in grads:
        hc.optim_step(p, dev.array(g), sgd, st)
        gg = g * 0.25 + 0.01 * rp
        rv = 0.9 * rv + gg
        rp = rp - 0.1 * rv
    assert np.max(np.abs(p.numpy() - rp)) < 1e-5
    # AdamW with bias correction: step counts from 1.
    adam = hc.OptimParams("adamw", lr=0.01, weight_decay=0.1)
    assert adam.state_count(n) == 2 * n and hc.OptimParams("sgd").state_count(n) == 0
    q, st2 = dev.array(p0), dev.zeros(adam.state_count(n))
    rq, m1, m2 = p0.astype(np.float64), np.zeros(n), np.zeros(n)
    for t, g in enumerate(grads, 1):
        adam.step = t
        hc.optim_step(q, dev.array(g), adam, st2)
        rq = rq * (1 - 0.01 * 0.1)
        m1 = 0.9 * m1 + 0.1 * g
        m2 = 0.999 * m2 + 0.001 * g.astype(np.float64) ** 2
        rq = rq - 0.01 / (1 - 0.9 ** t) * m1 / (np.sqrt(m2) / np.sqrt(1 - 0.999 ** t) + 1e-8)
    assert np.max(np.abs(q.numpy() - rq)) < 1e-5
    plain = hc.OptimParams("sgd", lr=0.5)
    r = dev.array(p0)
    hc.optim_step(r, dev.array(grads[0]), plain)  # no state needed
    assert np.max(np.abs(r.numpy() - (p0 - 0.5 * grads[0]))) < 1e-6
    same_bits_everywhere(comm, p.numpy(), q.numpy(), r.numpy())


def test_one_step_on_views(ctx, comm, rng):
    """A layer's forward and backward on views of one flat parameter and one flat gradient buffer, the way
    examples/python/train_mlp.py keeps its model, against numpy."""
    dev = ctx.device
    m, din, dout = 8, 5, 3
    flat = rng.standard_normal(din * dout + dout).astype(np.float32)
    params, grads = dev.array(flat), dev.zeros(din * dout + dout)
    w, b = params.view(0, (din, dout)), params.view(din * dout, (dout,))
    dw, db = grads.view(0, (din, dout)), grads.view(din * dout)
    assert w.is_view and dw.shape == (din, dout) and db.shape == (dout,) and not params.is_view
    x = rng.standard_normal((m, din)).astype(np.float32)
    dx, h = dev.array(x), dev.empty((m, dout))
    hc.gemm(dx, w, h)
    hc.bias_add(h, b)
    wn, bn = flat[:din * dout].reshape(din, dout).astype(np.float64), flat[din * dout:]
    assert np.max(np.abs(h.numpy() - (x @ wn + bn))) < 1e-5
    hc.gemm(dx, h, dw, trans_a=True)
    hc.col_sum(h, db)
    ref = np.concatenate([(x.T @ h.numpy()).ravel(), h.numpy().sum(axis=0)])
    assert np.max(np.abs(grads.numpy() - ref)) < 1e-4
    comm.allreduce(grads)  # one collective for every tensor of the layer
    np.testing.assert_allclose(grads.numpy(), comm.size * ref, rtol=1e-4, atol=1e-4)
    rows = grads.reshape((2, (din * dout + dout) // 2))
    assert rows.size == grads.size and rows.is_view
    np.testing.assert_array_equal(rows.numpy().ravel(), grads.numpy())
    inner = w.view(3, (2, 2))  # a view of a view: offsets add up
    np.testing.assert_array_equal(inner.numpy().ravel(), flat[3:7])


def test_stream_and_events(ctx, comm, rng):
    dev = ctx.device
    x = rng.standard_normal((16, 16)).astype(np.float32)
    a, out = dev.array(x), dev.empty((16, 16))
    with dev.stream() as s:
        start, end = dev.event(), dev.event()
        start.record(s)
        for _ in range(5):
            hc.gemm(a, a, out, stream=s)
            hc.relu(out, stream=s)
        end.record(s)
        s.sync()
        assert end.query() and start.query()
        end.sync()
        t = end.seconds_since(start)
        assert 0 <= t < 60
    assert s.closed
    np.testing.assert_allclose(out.numpy(), np.maximum(x @ x, 0), rtol=1e-5, atol=1e-4)
    with bad(r"Event.record: argument 'stream' is a str, not an hcrt.Stream"):
        start.record("default")
    with bad(r"Event.seconds_since: argument 'start' is a int"):
        end.seconds_since(0)
    with bad(r"hcrt.compute.relu: argument 'stream' is a int, not an hcrt.Stream"):
        hc.relu(out, stream=1)
    with pytest.raises(hcrt.Error, match="stream is closed"):
        s.sync()
    other = ctx.host if dev != ctx.host else ctx.find_device("sim", 0)
    with other.stream() as s2:
        with bad(r"argument 'stream' belongs to .* not to the call's"):
            hc.relu(out, stream=s2)
    start.close()
    end.close()


def test_has_compute(ctx):
    assert ctx.device.has_compute and ctx.host.has_compute
    assert all(d.has_compute for d in ctx.devices())  # cpu and sim both carry the extension


def test_bad_arguments(ctx, rng):
    dev = ctx.device
    a, b, c = dev.zeros((4, 3)), dev.zeros((3, 2)), dev.zeros((4, 2))
    with bad(r"hcrt.compute.gemm: argument 'a' is a ndarray, not an hcrt.DeviceArray"):
        hc.gemm(np.zeros((4, 3), np.float32), b, c)
    with bad(r"hcrt.compute.gemm: argument 'b' has shape \(2, 3\): its 2 rows do not match the 3 columns"):
        hc.gemm(a, dev.zeros((2, 3)), c)
    with bad(r"hcrt.compute.gemm: argument 'out' has shape \(4, 3\), not \(4, 2\)"):
        hc.gemm(a, b, dev.zeros((4, 3)))
    with bad(r"hcrt.compute.gemm: argument 'out' has dtype f16, not f32"):
        hc.gemm(a, b, dev.zeros((4, 2), "f16"))
    with bad(r"hcrt.compute.gemm: argument 'b' has dtype f16 but argument 'a' has f32"):
        hc.gemm(a, dev.zeros((3, 2), "f16"), c)
    with bad(r"hcrt.compute.gemm: argument 'a' has dtype i32, not f32 or f16 or bf16"):
        hc.gemm(dev.zeros((4, 3), "i32"), b, c)
    with bad(r"hcrt.compute.gemm: argument 'a' has shape \(12,\); it must be 2-D"):
        hc.gemm(dev.zeros(12), b, c)
    other = ctx.host if dev != ctx.host else ctx.find_device("sim", 0)
    with bad(r"hcrt.compute.gemm: argument 'b' lives on .*, but the call's first operand on .*one device"):
        hc.gemm(a, other.zeros((3, 2)), c)
    with bad(r"hcrt.compute.bias_add: argument 'bias' has 3 elements \(shape \(3,\)\); the call needs 2"):
        hc.bias_add(c, dev.zeros(3))
    with bad(r"hcrt.compute.relu: argument 'out' has 7 elements"):
        hc.relu(c, out=dev.zeros(7))
    with bad(r"hcrt.compute.relu_backward: argument 'act' has 1 elements"):
        hc.relu_backward(c, dev.zeros(1))
    with bad(r"hcrt.compute.softmax_xent: argument 'labels' has dtype f32, not i32"):
        hc.softmax_xent(c, dev.zeros(4), loss=dev.zeros(1))
    with bad(r"hcrt.compute.softmax_xent: argument 'loss' and argument 'dlogits' are both None"):
        hc.softmax_xent(c, dev.zeros(4, "i32"))
    with bad(r"hcrt.compute.softmax_xent: argument 'loss' has 2 elements"):
        hc.softmax_xent(c, dev.zeros(4, "i32"), loss=dev.zeros(2))
    with bad(r"softmax_xent: labels\[1\] is 2, outside \[0, 2\)"):  # the library checks the labels
        hc.softmax_xent(c, dev.array(np.array([0, 2, 1, 0], np.int32)), loss=dev.zeros(1))
    with bad(r"hcrt.compute.col_sum: argument 'out' has 3 elements"):
        hc.col_sum(c, dev.zeros(3))
    with bad(r"hcrt.compute.cast: argument 'out' has dtype f64"):
        hc.cast(c, dev.zeros((4, 2), "f64"))
    with bad(r"hcrt_compute_gemm: argument 'c' .*overlap|overlap.*'c'"):  # the library checks overlaps
        hc.gemm(a, b, a.view(0, (4, 2)))
    sgd = hc.OptimParams("sgd", lr=0.1, momentum=0.9)
    with bad(r"hcrt.compute.optim_step: argument 'state' is None; sgd with these params needs 12 elements"):
        hc.optim_step(a, a, sgd)
    with bad(r"hcrt.compute.optim_step: argument 'state' has 5 elements; sgd needs 12"):
        hc.optim_step(a, a, sgd, dev.zeros(5))
    with bad(r"hcrt.compute.optim_step: argument 'grad' has 8 elements \(shape \(4, 2\)\); the call needs 12"):
        hc.optim_step(a, c, sgd, dev.zeros(12))
    with bad(r"hcrt.compute.optim_step: argument 'params' is a dict"):
        hc.optim_step(a, a, {"lr": 0.1})
    with bad(r"params->lr"):  # ranges are the library's to check
        hc.optim_step(a, a, hc.OptimParams("sgd", lr=-1.0))
    with bad(r"argument 'params.lr' is 'fast', not a number"):
        hc.optim_step(a, a, hc.OptimParams("sgd", lr="fast"))
    with bad(r"argument 'params.step' is -1, below 0"):
        hc.optim_step(a, a, hc.OptimParams("adamw", step=-1), dev.zeros(24))
    with bad(r"OptimParams: argument 'kind' is 'adam', not one of sgd, adamw"):
        hc.OptimParams("adam")
    with bad(r"OptimParams: argument 'learning_rate' is not a field"):
        hc.OptimParams("sgd", learning_rate=0.1)
    with bad(r"OptimParams.state_count: argument 'count' is 1.5, not an int"):
        sgd.state_count(1.5)
    gone = dev.zeros((4, 3))
    v = gone.view(0, (3, 4))
    gone.free()
    assert v.freed
    with bad(r"hcrt.compute.relu: argument 'x' is a DeviceArray that was freed"):
        hc.relu(v)


def test_view_arguments(ctx):
    a = ctx.device.zeros(10)
    with bad(r"DeviceArray.view: argument 'shape' is \(3, 4\): 12 elements from offset 0 pass the end"):
        a.view(0, (3, 4))
    with bad(r"DeviceArray.view: argument 'offset' is 11, past the array's 10 elements"):
        a.view(11)
    with bad(r"DeviceArray.view: argument 'offset' is -1, below 0"):
        a.view(-1)
    with bad(r"DeviceArray.view: argument 'offset' is 2.0, not an int"):
        a.view(2.0)
    with bad(r"DeviceArray.view: argument 'shape' is 'x', not an int or a sequence of ints"):
        a.view(0, "x")
    with bad(r"DeviceArray.reshape: argument 'shape' is \(3, 3\) \(9 elements\), not 10 elements"):
        a.reshape((3, 3))
    tail = a.view(4)
    assert tail.shape == (6,) and tail.size == 6
    tail.copy_from(np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(a.numpy(), [0, 0, 0, 0, 0, 1, 2, 3, 4, 5])
    tail.free()  # a view frees nothing
    assert tail.freed and not a.freed
    np.testing.assert_array_equal(a.zero().numpy(), np.zeros(10))
