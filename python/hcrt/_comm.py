"""Comm and Request: every collective of hcrt/comm.h on numpy arrays, DLPack producers and DeviceArrays.

Array arguments are taken without a copy (hcrt._arrays). Each rank's arrays may live on a different
backend; send and receive arrays of one call live on the same device. Sizes are checked here, before the
call, because the library cannot know the size of memory it did not allocate: a receive array too small
for the result is hcrt.InvalidArgument naming it, never a write past its end.
"""
import ctypes
import weakref

from . import _arrays
from ._core import ContextObject, DeviceArray
from ._errors import check, invalid
from ._lib import lib

OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3, "avg": 4}
IN_PLACE = ctypes.c_void_p(1)  # HCRT_IN_PLACE
UNDEFINED = -1  # HCRT_COMM_UNDEFINED


def _op(func, op):
    if op not in OPS:
        raise invalid(func, "op", f"is {op!r}, not one of {', '.join(OPS)}")
    return OPS[op]


def _root(func, root, size):
    if not isinstance(root, int) or not 0 <= root < size:
        raise invalid(func, "root", f"is {root!r}, out of range for a communicator of {size} ranks")
    return root


def _same_kind(func, a, b, aname, bname):
    if a.dtype != b.dtype:
        raise invalid(func, bname, f"has dtype {b.dtype} but argument '{aname}' has {a.dtype}")
    if a.device != b.device:
        raise invalid(func, bname, f"lives on {b.device or 'the host'} but argument '{aname}' on "
                                   f"{a.device or 'the host'}: both must be on one device")


def _counts(func, name, values, size):
    try:
        vals = [int(v) for v in values]
    except TypeError:
        raise invalid(func, name, f"is {values!r}, not a sequence of counts") from None
    if len(vals) != size or any(v < 0 for v in vals):
        raise invalid(func, name, f"is {vals}: it needs {size} non-negative entries, one per rank")
    return (ctypes.c_size_t * size)(*vals), vals


def _displs(func, name, values, counts, size):
    if values is None:
        out, at = [], 0
        for c in counts:
            out.append(at)
            at += c
        return _counts(func, name, out, size)
    return _counts(func, name, values, size)


def _extent(counts, displs):
    return max((d + c for c, d in zip(counts, displs) if c), default=0)


def _like(v, shape, src):
    """A new result array for an argument of view v: a DeviceArray on its device for a DeviceArray input,
    else a numpy array on the host."""
    if isinstance(src, DeviceArray):
        return src.device.empty(shape, v.dtype)
    import numpy as np
    return np.empty(shape, dtype=_arrays.HCRT_TO_NUMPY.get(v.dtype, "uint16"))


class _Views:
    """The array views of one call. Leaving the with-block releases them (DLPack memory goes back to its
    producer), whether the call ran or building it failed, unless a Request took them over."""

    def __init__(self, comm, func):
        self.comm, self.func, self.items = comm, func, []

    def add(self, obj, name, writable=False):
        v = _arrays.view(self.comm._ctx, obj, self.func, name, writable=writable)
        self.items.append(v)
        return v

    def hand_over(self):
        items, self.items = self.items, []
        return items

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for v in self.hand_over():
            v.release()


class Request:
    """A nonblocking operation in flight. wait() blocks until it completes and returns its result; test()
    says whether it has (without blocking). Its arrays must not be touched until then. A request that is
    dropped unfinished is waited for (its peers depend on it)."""

    def __init__(self, comm, handle, views, result):
        self._comm = comm
        self._h = ctypes.c_void_p(handle)
        self._views = views
        self.result = result
        self._status = None
        comm._requests.add(self)

    @property
    def done(self):
        return self._h.value is None

    def _finish(self, status):
        lib.hcrt_request_free(self._h)
        self._h = ctypes.c_void_p()
        for v in self._views:
            v.release()
        self._views = []
        self._status = status

    def wait(self):
        """Blocks until the operation completes; returns its result (the output array, or None)."""
        if not self.done:
            self._comm._alive("Request.wait")
            self._finish(lib.hcrt_request_wait(self._h))
        check(self._status or 0, self._comm._ctx._h)
        return self.result

    def test(self):
        """Progresses the communicator; True once the operation completed (then wait() returns at once)."""
        if not self.done:
            self._comm._alive("Request.test")
            flag = ctypes.c_bool()
            st = lib.hcrt_request_test(self._h, ctypes.byref(flag))
            if st != 0 or flag.value:
                self._finish(st)
        if self._status:
            check(self._status, self._comm._ctx._h)
        return self.done

    def _abandon(self):
        # The communicator is going away: it waits for and frees its requests itself.
        self._h = ctypes.c_void_p()
        for v in self._views:
            v.release()
        self._views = []

    def __del__(self):
        try:
            if not self.done and not self._comm.closed:
                self._finish(lib.hcrt_request_free(self._h))
        except Exception:
            pass


class Comm(ContextObject):
    """A communicator over MPI (hcrt_comm_t). Every method is collective over its ranks unless it says
    otherwise, and every rank must call them in the same order with matching counts and dtypes."""

    _close_order = 1
    _what = "communicator"

    def __init__(self, ctx, handle):
        self._ctx = ctx
        self._h = ctypes.c_void_p(handle)
        self._requests = weakref.WeakSet()
        r, s = ctypes.c_int(), ctypes.c_int()
        check(lib.hcrt_comm_rank(self._h, ctypes.byref(r)), ctx._h)
        check(lib.hcrt_comm_size(self._h, ctypes.byref(s)), ctx._h)
        self.rank, self.size = r.value, s.value
        ctx._own(self)

    def __repr__(self):
        return f"<hcrt.Comm rank {self.rank} of {self.size}{' (closed)' if self.closed else ''}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Frees the communicator (collective). Its unfinished requests are completed first."""
        if self._h and self._h.value and not self._ctx.closed:
            for r in list(self._requests):
                r._abandon()
            lib.hcrt_comm_destroy(self._h)
        self._h = ctypes.c_void_p()

    def _context_closing(self):
        self.close()

    def _call(self, call, result=None):
        check(call(), self._ctx._h)
        return result

    def _start(self, views, call, result=None):
        """Starts a nonblocking call; the Request keeps the views until the operation completes."""
        h = ctypes.c_void_p()
        check(call(ctypes.byref(h)), self._ctx._h)
        return Request(self, h.value, views.hand_over(), result)

    # ---- information (local) ----

    @property
    def node_count(self):
        """Number of distinct nodes among the ranks."""
        self._alive("Comm.node_count")
        n = ctypes.c_int()
        check(lib.hcrt_comm_node_count(self._h, ctypes.byref(n)), self._ctx._h)
        return n.value

    def rank_info(self, rank):
        """Where rank `rank` lives: dict with rank, node, local_rank, host, backend, device_index, speed, pid."""
        from ._lib import RankInfo
        self._alive("Comm.rank_info")
        info = RankInfo(struct_size=ctypes.sizeof(RankInfo))
        check(lib.hcrt_comm_rank_info(self._h, int(rank), ctypes.byref(info)), self._ctx._h)
        return {"rank": info.rank, "node": info.node, "local_rank": info.local_rank, "host": info.host.decode(),
                "backend": info.backend.decode(), "device_index": info.device_index, "speed": info.speed,
                "pid": info.pid}

    # ---- communicators ----

    def split(self, color, key=None):
        """Ranks with the same color form a new communicator, ordered by key (default: this rank). color None
        (or negative) joins none and returns None."""
        self._alive("Comm.split")
        c = UNDEFINED if color is None or color < 0 else int(color)
        h = ctypes.c_void_p()
        check(lib.hcrt_comm_split(self._h, c, self.rank if key is None else int(key), ctypes.byref(h)),
              self._ctx._h)
        return Comm(self._ctx, h.value) if h.value else None

    def dup(self):
        """A new communicator with the same ranks."""
        self._alive("Comm.dup")
        h = ctypes.c_void_p()
        check(lib.hcrt_comm_dup(self._h, ctypes.byref(h)), self._ctx._h)
        return Comm(self._ctx, h.value)

    # ---- reductions ----

    def _allreduce(self, func, buf, op, out, nonblocking):
        self._alive(func)
        code = _op(func, op)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf", writable=out is None)
            send, dst = IN_PLACE, v
            if out is not None:
                dst = vs.add(out, "out", writable=True)
                _same_kind(func, v, dst, "buf", "out")
                if dst.count != v.count:
                    raise invalid(func, "out", f"has {dst.count} elements but argument 'buf' has {v.count}")
                send = v.ptr
            result = out if out is not None else buf
            if nonblocking:
                return self._start(vs, lambda r: lib.hcrt_comm_iallreduce(
                    self._h, send, dst.ptr, v.count, v.code, code, v.dev_handle, r), result)
            return self._call(lambda: lib.hcrt_comm_allreduce(
                self._h, send, dst.ptr, v.count, v.code, code, v.dev_handle), result)

    def allreduce(self, buf, op="sum", out=None):
        """Reduces `buf` over every rank with `op` (sum, prod, min, max, avg): into `buf` itself, like
        torch.distributed.all_reduce, or into `out` (same size and dtype). Returns the result array."""
        return self._allreduce("Comm.allreduce", buf, op, out, False)

    def iallreduce(self, buf, op="sum", out=None):
        """Nonblocking allreduce: a Request whose wait() returns the result array."""
        return self._allreduce("Comm.iallreduce", buf, op, out, True)

    def reduce(self, buf, op="sum", root=0, out=None):
        """Like allreduce, but only `root` receives: into `out`, or into `buf` at the root when out is None.
        Returns the result at the root, None elsewhere."""
        func = "Comm.reduce"
        self._alive(func)
        code = _op(func, op)
        root = _root(func, root, self.size)
        at_root = self.rank == root
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf", writable=at_root and out is None)
            send, dst = v.ptr, None
            if at_root and out is not None:
                o = vs.add(out, "out", writable=True)
                _same_kind(func, v, o, "buf", "out")
                if o.count != v.count:
                    raise invalid(func, "out", f"has {o.count} elements but argument 'buf' has {v.count}")
                dst = o.ptr
            elif at_root:
                send, dst = IN_PLACE, v.ptr
            result = (out if out is not None else buf) if at_root else None
            return self._call(lambda: lib.hcrt_comm_reduce(
                self._h, send, dst, v.count, v.code, code, root, v.dev_handle), result)

    def _reduce_scatter(self, func, buf, op, out, nonblocking):
        self._alive(func)
        code = _op(func, op)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf")
            if v.count % self.size:
                raise invalid(func, "buf", f"has {v.count} elements, not a multiple of the {self.size} ranks")
            n = v.count // self.size
            if out is None:
                rows = v.shape[0] if v.shape else 0
                shape = (rows // self.size,) + tuple(v.shape[1:]) if rows % self.size == 0 and rows else (n,)
                out = _like(v, shape, buf)
            o = vs.add(out, "out", writable=True)
            _same_kind(func, v, o, "buf", "out")
            if o.count != n:
                raise invalid(func, "out", f"has {o.count} elements; this rank's block of argument 'buf' has {n}")
            if nonblocking:
                return self._start(vs, lambda r: lib.hcrt_comm_ireduce_scatter(
                    self._h, v.ptr, o.ptr, n, v.code, code, v.dev_handle, r), out)
            return self._call(lambda: lib.hcrt_comm_reduce_scatter(
                self._h, v.ptr, o.ptr, n, v.code, code, v.dev_handle), out)

    def reduce_scatter(self, buf, op="sum", out=None):
        """Reduces `buf` (size x n elements) over every rank; rank r receives block r (n elements) in `out`
        (allocated like buf, with the first dimension divided by size, when None). Returns out."""
        return self._reduce_scatter("Comm.reduce_scatter", buf, op, out, False)

    def ireduce_scatter(self, buf, op="sum", out=None):
        """Nonblocking reduce_scatter: a Request whose wait() returns out."""
        return self._reduce_scatter("Comm.ireduce_scatter", buf, op, out, True)

    # ---- data movement ----

    def _broadcast(self, func, buf, root, nonblocking):
        self._alive(func)
        root = _root(func, root, self.size)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf", writable=self.rank != root)
            if nonblocking:
                return self._start(vs, lambda r: lib.hcrt_comm_ibroadcast(
                    self._h, v.ptr, v.count, v.code, root, v.dev_handle, r), buf)
            return self._call(lambda: lib.hcrt_comm_broadcast(
                self._h, v.ptr, v.count, v.code, root, v.dev_handle), buf)

    def broadcast(self, buf, root=0):
        """Copies root's `buf` into `buf` on every rank. Returns buf."""
        return self._broadcast("Comm.broadcast", buf, root, False)

    def ibroadcast(self, buf, root=0):
        """Nonblocking broadcast: a Request whose wait() returns buf."""
        return self._broadcast("Comm.ibroadcast", buf, root, True)

    def _gathered(self, vs, func, buf, out, rows):
        """Views of buf and of out (rows blocks of buf; allocated when None). Returns (v, o, out)."""
        v = vs.add(buf, "buf")
        if out is None:
            out = _like(v, (rows,) + tuple(v.shape), buf)
        o = vs.add(out, "out", writable=True)
        _same_kind(func, v, o, "buf", "out")
        if o.count != v.count * rows:
            raise invalid(func, "out", f"has {o.count} elements; {rows} blocks of argument 'buf' need "
                                       f"{v.count * rows}")
        return v, o, out

    def _allgather(self, func, buf, out, nonblocking):
        self._alive(func)
        with _Views(self, func) as vs:
            v, o, out = self._gathered(vs, func, buf, out, self.size)
            if nonblocking:
                return self._start(vs, lambda r: lib.hcrt_comm_iallgather(
                    self._h, v.ptr, o.ptr, v.count, v.code, v.dev_handle, r), out)
            return self._call(lambda: lib.hcrt_comm_allgather(
                self._h, v.ptr, o.ptr, v.count, v.code, v.dev_handle), out)

    def allgather(self, buf, out=None):
        """Every rank's `buf` in rank order, in `out` (size x buf's elements; a new array shaped
        (size,) + buf.shape when None: numpy for host inputs, a DeviceArray for DeviceArray inputs)."""
        return self._allgather("Comm.allgather", buf, out, False)

    def iallgather(self, buf, out=None):
        """Nonblocking allgather: a Request whose wait() returns out."""
        return self._allgather("Comm.iallgather", buf, out, True)

    def allgatherv(self, buf, out, counts, displs=None):
        """Rank r's `buf` (counts[r] elements) lands at out[displs[r]:] on every rank (displs default to the
        running sum of counts). Returns out."""
        func = "Comm.allgatherv"
        self._alive(func)
        ccounts, counts = _counts(func, "counts", counts, self.size)
        cdispls, displs = _displs(func, "displs", displs, counts, self.size)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf")
            o = vs.add(out, "out", writable=True)
            _same_kind(func, v, o, "buf", "out")
            if v.count != counts[self.rank]:
                raise invalid(func, "buf", f"has {v.count} elements but counts[{self.rank}] is {counts[self.rank]}")
            if o.count < _extent(counts, displs):
                raise invalid(func, "out", f"has {o.count} elements; counts and displs reach "
                                           f"{_extent(counts, displs)}")
            return self._call(lambda: lib.hcrt_comm_allgatherv(
                self._h, v.ptr, o.ptr, ccounts, cdispls, v.code, v.dev_handle), out)

    def alltoall(self, buf, out=None):
        """Block j of this rank's `buf` (size blocks of equal size) goes to rank j, arriving as block i of
        its `out` (same size as buf; allocated like buf when None). Returns out."""
        func = "Comm.alltoall"
        self._alive(func)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf")
            if v.count % self.size:
                raise invalid(func, "buf", f"has {v.count} elements, not a multiple of the {self.size} ranks")
            if out is None:
                out = _like(v, v.shape, buf)
            o = vs.add(out, "out", writable=True)
            _same_kind(func, v, o, "buf", "out")
            if o.count != v.count:
                raise invalid(func, "out", f"has {o.count} elements but argument 'buf' has {v.count}")
            if v.count and v.ptr == o.ptr:
                raise invalid(func, "out", "is argument 'buf' itself: alltoall is out of place only")
            return self._call(lambda: lib.hcrt_comm_alltoall(
                self._h, v.ptr, o.ptr, v.count // self.size, v.code, v.dev_handle), out)

    def alltoallv(self, buf, sendcounts, out, recvcounts, sdispls=None, rdispls=None):
        """Like alltoall with per-peer counts and displacements in elements (displacements default to
        running sums). Returns out."""
        func = "Comm.alltoallv"
        self._alive(func)
        csc, sc = _counts(func, "sendcounts", sendcounts, self.size)
        crc, rc = _counts(func, "recvcounts", recvcounts, self.size)
        csd, sd = _displs(func, "sdispls", sdispls, sc, self.size)
        crd, rd = _displs(func, "rdispls", rdispls, rc, self.size)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf")
            o = vs.add(out, "out", writable=True)
            _same_kind(func, v, o, "buf", "out")
            if v.count < _extent(sc, sd):
                raise invalid(func, "buf", f"has {v.count} elements; sendcounts and sdispls reach {_extent(sc, sd)}")
            if o.count < _extent(rc, rd):
                raise invalid(func, "out", f"has {o.count} elements; recvcounts and rdispls reach {_extent(rc, rd)}")
            return self._call(lambda: lib.hcrt_comm_alltoallv(
                self._h, v.ptr, csc, csd, o.ptr, crc, crd, v.code, v.dev_handle), out)

    def gather(self, buf, root=0, out=None):
        """Every rank's `buf` in rank order in root's `out` (size x buf's elements; allocated when None).
        Returns out at the root, None elsewhere."""
        func = "Comm.gather"
        self._alive(func)
        root = _root(func, root, self.size)
        with _Views(self, func) as vs:
            if self.rank == root:
                v, o, out = self._gathered(vs, func, buf, out, self.size)
                dst = o.ptr
            else:
                v, dst, out = vs.add(buf, "buf"), None, None
            return self._call(lambda: lib.hcrt_comm_gather(
                self._h, v.ptr, dst, v.count, v.code, root, v.dev_handle), out)

    def scatter(self, send, out, root=0):
        """Block r of root's `send` (size x out's elements) lands in rank r's `out`; send is ignored (may be
        None) on other ranks. Returns out."""
        func = "Comm.scatter"
        self._alive(func)
        root = _root(func, root, self.size)
        with _Views(self, func) as vs:
            o = vs.add(out, "out", writable=True)
            src = None
            if self.rank == root:
                s = vs.add(send, "send")
                _same_kind(func, s, o, "send", "out")
                if s.count != o.count * self.size:
                    raise invalid(func, "send", f"has {s.count} elements; {self.size} blocks of argument 'out' "
                                                f"need {o.count * self.size}")
                src = s.ptr
            return self._call(lambda: lib.hcrt_comm_scatter(
                self._h, src, o.ptr, o.count, o.code, root, o.dev_handle), out)

    def barrier(self):
        """Returns once every rank entered the barrier."""
        self._alive("Comm.barrier")
        check(lib.hcrt_comm_barrier(self._h), self._ctx._h)

    def ibarrier(self):
        """Nonblocking barrier: a Request."""
        self._alive("Comm.ibarrier")
        with _Views(self, "Comm.ibarrier") as vs:
            return self._start(vs, lambda r: lib.hcrt_comm_ibarrier(self._h, r))

    # ---- training (hcrt/balance.h, hcrt/run.h) ----

    def allreduce_grads(self, grads, local_samples, mean=False):
        """Sums gradient arrays over every rank in place, together with the sample counts: `grads` (one
        floating array or a list of them, each on its own device) hold this rank's SUM over its
        `local_samples` samples (zeros for none). Returns the global sample count; with mean=True the sums
        are also divided by it (on the arrays' devices). Summing and dividing once by the global count is
        the one-rank computation over the same global batch however unevenly the samples were split, which
        averaging per rank (op="avg", torch DDP) is not (docs/balance.md)."""
        from ._balance import allreduce_grads
        return allreduce_grads(self, grads, local_samples, mean)

    def should_stop(self):
        """Whether the job should save and stop: True on every rank when any rank received SIGTERM or SIGINT
        since Context.catch_signals(), or hcrt-run was told to stop. One small allreduce: call it once per
        step on every rank, then save, wait for the commit and exit with 120 (hcrt.EXIT_PREEMPTED)."""
        self._alive("Comm.should_stop")
        stop = ctypes.c_bool()
        check(lib.hcrt_run_should_stop(self._h, ctypes.byref(stop)), self._ctx._h)
        return bool(stop.value)

    # ---- point to point (not collective) ----

    def send(self, buf, dest, tag=0):
        """Sends `buf` to rank `dest` with `tag` (0..32767); returns when buf may be reused."""
        func = "Comm.send"
        self._alive(func)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf")
            return self._call(lambda: lib.hcrt_comm_send(
                self._h, v.ptr, v.count, v.code, int(dest), int(tag), v.dev_handle))

    def recv(self, buf, source, tag=0):
        """Receives exactly buf's size from rank `source` with `tag` into `buf`. Returns buf."""
        func = "Comm.recv"
        self._alive(func)
        with _Views(self, func) as vs:
            v = vs.add(buf, "buf", writable=True)
            return self._call(lambda: lib.hcrt_comm_recv(
                self._h, v.ptr, v.count, v.code, int(source), int(tag), v.dev_handle), buf)
