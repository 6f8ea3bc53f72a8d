"""Stream and Event: queues of device work and points in them (the streams and events of hcrt/hcrt.h).

Compute calls (hcrt.compute) run synchronously unless given a stream; on a stream they return at once and
run behind the stream's earlier work, and an error during execution shows at the next sync(). Events
recorded around work time it on the device itself, which is what the balancer should be told: host timers
also count the Python that queued the work.
"""
import ctypes

from ._core import LocalObject
from ._errors import check, invalid
from ._lib import lib


class _DeviceObject(LocalObject):
    """A stream or event: belongs to one device, released by close() or with its context."""

    _close_order = 1

    def __init__(self, device, create):
        device._ctx._alive(f"{type(self).__name__}")
        self._ctx = device._ctx
        self.device = device
        h = ctypes.c_void_p()
        check(create(device._h, ctypes.byref(h)), self._ctx._h)
        self._h = h
        self._ctx._own(self)

    def __repr__(self):
        return f"<hcrt.{type(self).__name__} on {self.device}{' (closed)' if self.closed else ''}>"


class Stream(_DeviceObject):
    """An in-order queue of work on one device (Device.stream())."""

    _what = "stream"

    def __init__(self, device):
        super().__init__(device, lib.hcrt_stream_create)

    def sync(self):
        """Blocks until the work queued so far has run; raises the first error of that work."""
        self._alive("Stream.sync")
        check(lib.hcrt_stream_sync(self._h), self._ctx._h)

    def close(self):
        """Waits for the queued work and destroys the stream. Idempotent."""
        if self._h and self._h.value and not self._ctx.closed:
            h, self._h = self._h, ctypes.c_void_p()
            check(lib.hcrt_stream_destroy(h), self._ctx._h)
        self._h = ctypes.c_void_p()


class Event(_DeviceObject):
    """A point in a stream's work (Device.event()): record it, wait for it, time the work between two."""

    _what = "event"

    def __init__(self, device):
        super().__init__(device, lib.hcrt_event_create)

    def record(self, stream):
        """Marks the point after the work queued so far on `stream` (a Stream of this event's device)."""
        func = "Event.record"
        self._alive(func)
        if not isinstance(stream, Stream):
            raise invalid(func, "stream", f"is a {type(stream).__name__}, not an hcrt.Stream")
        stream._alive(func)
        check(lib.hcrt_event_record(self._h, stream._h), self._ctx._h)
        return self

    def sync(self):
        """Blocks until the stream reached this event."""
        self._alive("Event.sync")
        check(lib.hcrt_event_sync(self._h), self._ctx._h)

    def query(self):
        """Whether the stream reached this event (never blocks)."""
        self._alive("Event.query")
        done = ctypes.c_bool()
        check(lib.hcrt_event_query(self._h, ctypes.byref(done)), self._ctx._h)
        return bool(done.value)

    def seconds_since(self, start):
        """Seconds of device time from the completed event `start` to this completed event (one device)."""
        func = "Event.seconds_since"
        self._alive(func)
        if not isinstance(start, Event):
            raise invalid(func, "start", f"is a {type(start).__name__}, not an hcrt.Event")
        start._alive(func)
        ms = ctypes.c_float()
        check(lib.hcrt_event_elapsed(start._h, self._h, ctypes.byref(ms)), self._ctx._h)
        return ms.value * 1e-3

    def close(self):
        """Destroys the event. Idempotent."""
        if self._h and self._h.value and not self._ctx.closed:
            h, self._h = self._h, ctypes.c_void_p()
            check(lib.hcrt_event_destroy(h), self._ctx._h)
        self._h = ctypes.c_void_p()
