"""The application's own events on hcrt's timeline (hcrt/trace.h, docs/trace.md): methods of hcrt.Context."""
import contextlib
import json

from ._errors import check, invalid, number
from ._lib import lib


def trace_clock():
    """Seconds on the trace's clock (wall-clock time), the start to give Context.trace_complete()."""
    return lib.hcrt_trace_clock()


def _text(func, name, value):
    if not isinstance(value, str):
        raise invalid(func, name, f"is a {type(value).__name__}, not a str")
    return value.encode()


def _args(func, args):
    if args is None:
        return None
    if isinstance(args, dict):
        try:
            return json.dumps(args).encode()
        except (TypeError, ValueError) as exc:
            raise invalid(func, "args", f"cannot be written as JSON: {exc}") from None
    if isinstance(args, str):
        return args.encode()  # the library checks that it is a JSON object
    raise invalid(func, "args", f"is a {type(args).__name__}, not a dict, a JSON object text or None")


class TraceMixin:
    """With HCRT_TRACE=FILE hcrt writes a Chrome trace of its collectives, checkpoints and balancer decisions;
    these add the application's events to its rank's "application" row:

        with ctx.trace_span("forward+backward", "compute", {"micro_batch": i}):
            ...
    Without HCRT_TRACE they check their arguments and record nothing."""

    @property
    def trace_enabled(self):
        """Whether this context records a trace (HCRT_TRACE set on rank 0)."""
        return not self.closed and bool(lib.hcrt_trace_enabled(self._h))

    def trace_complete(self, name, category, start, duration, args=None):
        """Records an event `name` of `category` ("compute") that began at `start` (trace_clock()) and lasted
        `duration` seconds; `args` is a dict (or JSON object text) shown with it."""
        func = "Context.trace_complete"
        self._alive(func)
        check(lib.hcrt_trace_complete(self._h, _text(func, "name", name), _text(func, "category", category),
                                      number(func, "start", start), number(func, "duration", duration),
                                      _args(func, args)), self._h)

    def trace_instant(self, name, category, args=None):
        """Records a mark `name` of `category` at the current time."""
        func = "Context.trace_instant"
        self._alive(func)
        check(lib.hcrt_trace_instant(self._h, _text(func, "name", name), _text(func, "category", category),
                                     _args(func, args)), self._h)

    @contextlib.contextmanager
    def trace_span(self, name, category="compute", args=None):
        """A with-block recorded as one complete event (host time around the block)."""
        start = trace_clock()
        yield
        self.trace_complete(name, category, start, max(trace_clock() - start, 0.0), args)
