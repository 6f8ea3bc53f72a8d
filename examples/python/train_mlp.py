#!/usr/bin/env python3
"""examples/python/train_mlp.py - an MLP trained data-parallel across mixed devices with hcrt.

Every rank runs this script on its own device (a sim accelerator, a GPU, or the host's cpu device). Each
step processes one fixed global batch of M micro-batches; hcrt's balancer gives each rank a share in
proportion to its measured speed; each rank SUMS the gradients of its samples, and the sums are reduced
with the sample counts, so the update is the one a single device would make on the whole batch. The
samples of a step are a function of (seed, step) alone, so any world size, device mix or split sees the
same data. Checkpoints every K steps are restored on start, on any world size.

    mpirun -np 2 -x HCRT_DEVICE=sim python3 train_mlp.py : -np 1 -x HCRT_DEVICE=cpu python3 train_mlp.py
    mpirun -np 3 python3 train_mlp.py --devices sim,sim,cpu --exact --ckpt-dir /shared/ck --ckpt-every 10
    hcrt-run --np 3 -- python3 train_mlp.py --devices sim,sim,cpu --ckpt-dir /shared/ck --ckpt-every 10

--compute device (the default) computes with hcrt.compute on the rank's device, without copying to numpy;
--compute numpy computes on the host with numpy and uses hcrt for the collectives, the balancer and the
checkpoints only. --exact sums the gradients exactly (hcrt.ExactAccumulator): the final weights are then
the same bits for any world size, split and restart (on cpu and sim devices, whose compute is bitwise
identical). Under hcrt-run the script heartbeats, and on SIGTERM saves a checkpoint and exits with 120;
an hcrt error ends it with the exit status of hcrt's exit policy (restartable ones: 121..125), which
tells hcrt-run whether to relaunch.
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import time

import numpy as np

import hcrt
import hcrt.compute as hc


EXIT_STATUS = """
Exit status: 0 when done and every rank holds the same weights; 120 when stopped on request after saving;
the status of hcrt's exit policy for an hcrt error (121..125 may be cured by a restart); 2 for a bad
command line or a checkpoint directory of another job; 1 when the ranks' weights differ.
"""


def parse_args():
    intro, rest = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(description=intro, epilog=rest + EXIT_STATUS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", default="32,64,10", help="layer sizes: inputs, hidden..., classes (default 32,64,10)")
    p.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    p.add_argument("--micro-batch", type=int, default=16, help="samples per micro-batch (default 16)")
    p.add_argument("--micro-batches", type=int, default=12, help="micro-batches per global batch (default 12)")
    p.add_argument("--balance", choices=["off", "static", "online"], default="online",
                   help="the split: off (even), static (re-planned once), online (every few steps; default)")
    p.add_argument("--exact", action="store_true", help="sum gradients exactly (bitwise reproducible)")
    p.add_argument("--compute", choices=["device", "numpy"], default="device",
                   help="device: hcrt.compute on each rank's device (default); numpy: on the host")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--seed", type=int, default=1, help="data, teacher and initial weights (default 1)")
    p.add_argument("--ckpt-dir", help="checkpoint directory, shared by the ranks; the newest step is restored")
    p.add_argument("--ckpt-every", type=int, default=10, help="save every K steps (default 10)")
    p.add_argument("--devices", help="rank r takes entry r %% len of this list (sim,sim,cpu): HCRT_DEVICE per "
                                     "rank, for launchers without per-rank options (hcrt-run)")
    p.add_argument("--log-every", type=int, default=10, help="a progress line every N steps (default 10)")
    p.add_argument("--json", help="rank 0 writes the results (loss curve, weights hash, shares) here")
    p.add_argument("--die-at", type=int, help="(tests) rank --die-rank kills itself at the start of this step, "
                                              "in the first attempt under hcrt-run only")
    p.add_argument("--die-rank", type=int, default=1, help="(tests) the rank --die-at kills (default 1)")
    a = p.parse_args()
    try:
        a.dims = [int(d) for d in a.layers.split(",")]
    except ValueError:
        p.error(f"--layers: {a.layers!r} is not a comma-separated list of sizes")
    if len(a.dims) < 2 or min(a.dims) < 1 or min(a.steps, a.micro_batch, a.micro_batches, a.ckpt_every) < 1:
        p.error("--layers needs 2 or more positive sizes; --steps, --micro-batch(es), --ckpt-every are >= 1")
    if a.seed < 0 or a.log_every < 1:
        p.error("--seed is >= 0 and --log-every >= 1")
    return a


# ---- data: sample i of step s is a pure function of (seed, s, i) ---------------------------------------

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
TEACHER, INIT = 2**63, 2**63 + 100  # streams of the teacher and of the initial weights, apart from steps


def splitmix64(z):
    """The splitmix64 finalizer on uint64 arrays (wrapping arithmetic)."""
    z = z + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed, stream, rows, cols):
    """A len(rows) x cols array uniform in [-1, 1), exact in f32: row i is a function of (seed, stream,
    rows[i]) only, so any rank can make any row without making the others."""
    with np.errstate(over="ignore"):
        key = splitmix64(splitmix64(np.full(len(rows), seed, np.uint64)) ^ np.uint64(stream))
        key = splitmix64(key ^ np.asarray(rows, np.uint64))
        words = splitmix64(key[:, None] + np.arange(cols, dtype=np.uint64) * GOLDEN)
    return ((words >> np.uint64(40)).astype(np.int64) - (1 << 23)).astype(np.float32) / np.float32(1 << 23)


class Data:
    """A synthetic classification set: inputs uniform in [-1, 1), labels from a fixed random teacher
    network (inputs -> 8 ReLU units -> classes) drawn from the seed, like hcrt-train's."""

    def __init__(self, seed, inputs, classes):
        self.seed, self.inputs = seed, inputs
        self.w1 = uniform(seed, TEACHER, range(inputs), 8).astype(np.float64)
        self.w2 = uniform(seed, TEACHER + 1, range(8), classes).astype(np.float64)

    def batch(self, step, first, n):
        """Samples [first, first + n) of global step `step`: (x f32 n x inputs, labels i32 n)."""
        rows = np.uint64(step) * np.uint64(1 << 32) + np.arange(first, first + n, dtype=np.uint64)
        x = uniform(self.seed, 0, rows, self.inputs)
        labels = np.argmax(np.maximum(x @ self.w1, 0) @ self.w2, axis=1).astype(np.int32)
        return x, labels


def layout(dims):
    """(offset, shape) of each layer's weight and bias in the flat parameter vector, and its length."""
    out, at = [], 0
    for din, dout in zip(dims, dims[1:]):
        out.append(((at, (din, dout)), (at + din * dout, (dout,))))
        at += din * dout + dout
    return out, at


def initial_params(seed, dims):
    lay, n = layout(dims)
    p = np.zeros(n, np.float32)
    for layer, ((w_at, (din, dout)), _) in enumerate(lay):
        p[w_at:w_at + din * dout] = uniform(seed, INIT + layer, range(din), dout).ravel() / np.float32(din ** 0.5)
    return p


# ---- the model, twice: on an hcrt device, and in numpy ---------------------------------------------------

class DeviceMLP:
    """The MLP on an hcrt device. Parameters and gradients are one flat DeviceArray each, with a view per
    tensor, so that one allreduce, one optimizer call and one checkpoint tensor cover the whole model. The
    gradient buffer has one more element: the loss (a sum over samples too) rides along with the
    gradients through the reduction."""

    def __init__(self, device, dims, micro, seed, lr, momentum):
        lay, self.n = layout(dims)
        self.params = device.array(initial_params(seed, dims))
        self.grads = device.zeros(self.n + 1)
        self.loss = self.grads.view(self.n, (1,))
        self.opt = hc.OptimParams("sgd", lr=lr, momentum=momentum)
        self.state = device.zeros(self.opt.state_count(self.n))  # the momentum: checkpointed with the weights
        self.w = [(self.params.view(*w), self.params.view(*b)) for w, b in lay]
        self.dw = [(self.grads.view(*w), self.grads.view(*b)) for w, b in lay]
        self.x = device.empty((micro, dims[0]))
        self.labels = device.empty(micro, "i32")
        self.h = [device.empty((micro, d)) for d in dims[1:]]  # each layer's output (the last: logits)
        self.g = [device.empty((micro, d)) for d in dims[1:-1]]  # gradients w.r.t. the hidden outputs

    def micro_batch(self, x, labels, accumulate):
        """Forward and backward over one micro-batch: adds (accumulate) or writes its gradient sums and
        loss sum into self.grads."""
        self.x.copy_from(x)
        self.labels.copy_from(labels)
        beta = 1.0 if accumulate else 0.0
        acts = [self.x] + self.h[:-1]
        for (w, b), inp, out in zip(self.w, acts, self.h):
            hc.gemm(inp, w, out)  # out = inp @ w
            hc.bias_add(out, b)
            if out is not self.h[-1]:
                hc.relu(out)  # in place: relu_backward's test is the same on the output
        logits = self.h[-1]
        hc.softmax_xent(logits, self.labels, loss=self.loss, dlogits=logits, accumulate=accumulate)
        d = logits  # now the gradient of the loss w.r.t. the logits
        for layer in reversed(range(len(self.w))):
            (dw, db), (w, _), inp = self.dw[layer], self.w[layer], acts[layer]
            hc.gemm(inp, d, dw, trans_a=True, beta=beta)  # dw (+)= inp^T d
            hc.col_sum(d, db, accumulate=accumulate)
            if layer > 0:
                g = self.g[layer - 1]
                hc.gemm(d, w, g, trans_b=True)  # g = d w^T
                hc.relu_backward(g, inp)
                d = g

    def zero_grads(self):
        self.grads.zero()

    def loss_sum(self):
        return float(self.loss.numpy()[0])

    def update(self, grad_scale):
        self.opt.grad_scale = grad_scale
        hc.optim_step(self.params, self.grads.view(0, (self.n,)), self.opt, self.state)

    def weights(self):
        return self.params.numpy()


class NumpyMLP:
    """The same model computed on the host with numpy; hcrt only reduces, balances and checkpoints."""

    def __init__(self, device, dims, micro, seed, lr, momentum):
        lay, self.n = layout(dims)
        self.params = initial_params(seed, dims)
        self.grads = np.zeros(self.n + 1, np.float32)  # + the loss, as in DeviceMLP
        self.state = np.zeros(self.n, np.float32)
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)
        view = lambda v, at, shape: v[at:at + int(np.prod(shape))].reshape(shape)  # noqa: E731
        self.w = [(view(self.params, *w), view(self.params, *b)) for w, b in lay]
        self.dw = [(view(self.grads, *w), view(self.grads, *b)) for w, b in lay]

    def micro_batch(self, x, labels, accumulate):
        if not accumulate:
            self.grads[:] = 0
        acts = [x]
        for layer, (w, b) in enumerate(self.w):
            out = acts[-1] @ w + b
            acts.append(np.maximum(out, 0) if layer < len(self.w) - 1 else out)
        z = acts.pop()
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        self.grads[-1] += -logp[np.arange(len(labels)), labels].sum()
        d = np.exp(logp)
        d[np.arange(len(labels)), labels] -= 1
        for layer in reversed(range(len(self.w))):
            (dw, db), (w, _), inp = self.dw[layer], self.w[layer], acts[layer]
            dw += inp.T @ d
            db += d.sum(axis=0)
            if layer > 0:
                d = (d @ w.T) * (inp > 0)

    def zero_grads(self):
        self.grads[:] = 0

    def loss_sum(self):
        return float(self.grads[-1])

    def update(self, grad_scale):
        # torch.optim.SGD with momentum, as hcrt.compute.optim_step computes it
        self.state *= self.momentum
        self.state += self.grads[:self.n] * np.float32(grad_scale)
        self.params -= self.lr * self.state

    def weights(self):
        return self.params


# ---- the job ---------------------------------------------------------------------------------------------

def pick_device(devices):
    """--devices: this rank's HCRT_DEVICE from its launcher rank (read before MPI starts)."""
    if devices:
        rank = next((int(os.environ[v]) for v in ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")
                     if v in os.environ), 0)
        entries = devices.split(",")
        os.environ["HCRT_DEVICE"] = entries[rank % len(entries)]


def restore(ck, args, data_layout, bal, comm):
    """Loads the newest committed checkpoint, if any: returns the step it holds (0: a fresh start)."""
    step, meta = ck.restore()
    if step is None:
        return 0
    if meta.get("seed") != args.seed or meta.get("layout") != data_layout:
        if comm.rank == 0:
            print(f"train_mlp: {args.ckpt_dir} holds a checkpoint of another job ({meta}); use another "
                  "--ckpt-dir", file=sys.stderr)
        raise SystemExit(2)  # every rank: bad usage, which a restart would not cure
    if len(meta["shares"]) == comm.size:  # the same world size: resume with the plan it had
        bal.set_shares(meta["shares"])
    return step


def train(ctx, args):
    comm = ctx.comm_world()
    rank, size = comm.rank, comm.size
    dims, m, nmb = args.dims, args.micro_batch, args.micro_batches
    data = Data(args.seed, dims[0], dims[-1])
    Model = DeviceMLP if args.compute == "device" else NumpyMLP
    model = Model(ctx.device, dims, m, args.seed, args.lr, args.momentum)
    bal = hcrt.Balancer(comm, micro_batches=nmb, micro_batch_size=m, mode=args.balance)
    # Exact mode sums each micro-batch's gradients (and loss) exactly; the others add them in place.
    acc = hcrt.ExactAccumulator(comm, [model.grads], names=["gradients+loss"]) if args.exact else None
    ck = None
    data_layout = {"layers": dims, "micro_batch": m, "micro_batches": nmb}
    start = 0
    if args.ckpt_dir:
        ck = hcrt.Checkpoint(ctx, args.ckpt_dir)
        ck.register("params", model.params)
        ck.register("momentum", model.state)
        start = restore(ck, args, data_layout, bal, comm)
    ctx.catch_signals()  # SIGTERM (Slurm, hcrt-run) and SIGINT: save and stop at the end of a step
    ctx.heartbeat(start, "ready")
    if rank == 0:
        print(f"train_mlp: {size} ranks, layers {dims}, {nmb} x {m} samples per step, "
              f"{'exact' if args.exact else 'summed'} gradients, compute on "
              f"{'each device' if args.compute == 'device' else 'the host (numpy)'}"
              f"{f', resumed from step {start}' if start else ''}", flush=True)
    print(f"rank {rank}: device {ctx.device}", flush=True)

    losses, samples, seconds = [], 0, 0.0
    stopped = False
    for step in range(start + 1, args.steps + 1):
        if args.die_at == step and rank == args.die_rank and ctx.run_attempt == 0:
            print(f"rank {rank}: dying at step {step} (--die-at)", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        t_step = time.perf_counter()
        first, count = bal.assignment  # this rank's global micro-batches of the step
        if not args.exact:
            model.zero_grads()
        for mb in range(first, first + count):
            x, labels = data.batch(step, mb * m, m)
            start_time, t0 = hcrt.trace_clock(), time.perf_counter()
            model.micro_batch(x, labels, accumulate=not args.exact)
            if acc:
                acc.add()
            t = max(time.perf_counter() - t0, 1e-9)
            bal.record(m, t)  # what the balancer splits by: this rank's samples per second
            if ctx.trace_enabled:  # on the timeline of HCRT_TRACE=FILE
                ctx.trace_complete("forward+backward", "compute", start_time, t, {"step": step, "micro_batch": mb})
        if acc:  # the exact mean over the global batch: the same bits for any split
            total = acc.allreduce(count * m, mean=True)
            loss, scale = model.loss_sum(), 1.0
        else:  # sums over every rank's samples, and the global sample count
            total = comm.allreduce_grads(model.grads, count * m)
            loss, scale = model.loss_sum() / total, 1.0 / total
        model.update(scale)
        bal.step()
        losses.append(loss)
        samples += total
        seconds += time.perf_counter() - t_step
        ctx.heartbeat(step, "step")
        if ck:
            ck.test()  # moves the previous save on towards its commit, without waiting
        stop = comm.should_stop()  # every rank gets the same answer
        if ck and (stop or step % args.ckpt_every == 0 or step == args.steps):
            ck.save(step, meta={"step": step, "seed": args.seed, "layout": data_layout, "shares": bal.shares})
            ctx.heartbeat(step, "saved")
        if rank == 0 and (step % args.log_every == 0 or step == args.steps or stop):
            print(f"step {step}: loss {loss:.4f}, shares {','.join(map(str, bal.shares))}, "
                  f"{samples / max(seconds, 1e-9):.0f} samples/s", flush=True)
        if stop:
            stopped = True
            break
    if ck:
        ck.wait()  # the last save is committed on every rank
    if stopped:
        if rank == 0:
            print(f"train_mlp: stopped on request after step {step}, checkpoint committed", flush=True)
        return hcrt.EXIT_PREEMPTED

    # Every rank must hold the same weights: compare their hashes.
    digest = hashlib.sha256(model.weights().tobytes()).digest()
    hashes = comm.allgather(np.frombuffer(digest, np.uint8).copy())
    agree = all(bytes(h) == digest for h in hashes)
    print(f"rank {rank}: weights sha256 {digest.hex()[:16]}, "
          f"{'the same on all ranks' if agree else 'DIFFERENT from other ranks'}", flush=True)
    if rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": args.steps, "world_size": size, "exact": args.exact, "compute": args.compute,
                       "restored_from": start or None, "loss_curve": losses, "final_loss": losses[-1] if losses
                       else None, "weights_sha256": digest.hex(), "weights_agree": agree, "shares": bal.shares,
                       "decision": bal.last_decision.text, "samples_per_s": samples / max(seconds, 1e-9)}, f)
    return 0 if agree else 1


def main():
    args = parse_args()
    pick_device(args.devices)
    # An hcrt.Error that escapes ends the process with its exit status (hcrt's excepthook), e.g. 122 for a
    # checkpoint I/O error: hcrt-run relaunches restartable ones, and the job resumes from the checkpoint.
    with hcrt.Context() as ctx:
        return train(ctx, args)


if __name__ == "__main__":
    sys.exit(main())
