"""hcrt's exceptions, and how an uncaught one ends the process (the exit policy of hcrt/exit.h)."""
import sys
import weakref

from ._lib import lib

INVALID_ARG = -1  # HCRT_ERR_INVALID_ARG


class Error(Exception):
    """An hcrt call failed.

    ``status`` is the hcrt_status_t code, ``name`` its symbolic name ("ERR_TIMEOUT"), ``message`` hcrt's
    detail (naming the argument, rank, device...), ``exit_status`` the status the process should end with
    under the exit policy (hcrt_exit_status()), and ``restartable`` whether a relaunch from the newest
    checkpoint may help (hcrt_exit_restartable()).
    """

    def __init__(self, status, message):
        self.status = int(status)
        self.name = lib.hcrt_status_name(self.status).decode()
        self.message = message
        self.exit_status = lib.hcrt_exit_status(self.status)
        self.restartable = bool(lib.hcrt_exit_restartable(self.exit_status))
        super().__init__(f"{self.name}: {message}")


class InvalidArgument(Error, ValueError):
    """HCRT_ERR_INVALID_ARG: a bad argument, named in the message. Also a ValueError."""


class RestartableError(Error):
    """A failure a relaunch from the newest checkpoint may cure (a lost device, a dead peer, a deadline,
    an I/O or MPI error). An uncaught one ends the process with ``exit_status`` (121..125), which
    ``hcrt-run`` relaunches."""


for _cls in (Error, InvalidArgument, RestartableError):
    _cls.__module__ = "hcrt"  # tracebacks say hcrt.Error, as users write it


def make_error(status, message):
    """The exception for a failed call: the most specific class of status."""
    status = int(status)
    if status == INVALID_ARG:
        return InvalidArgument(status, message)
    if lib.hcrt_exit_restartable(lib.hcrt_exit_status(status)):
        return RestartableError(status, message)
    return Error(status, message)


def invalid(func, name, why):
    """InvalidArgument for argument `name` of `func`, worded like the C library's."""
    return InvalidArgument(INVALID_ARG, f"{func}: argument '{name}' {why}")


def whole(func, name, value, minimum=None):
    """An int argument (an int or numpy integer, not a bool or a float), at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise invalid(func, name, f"is {value!r}, not an int")
    value = int(value)
    if minimum is not None and value < minimum:
        raise invalid(func, name, f"is {value}, below {minimum}")
    return value


def number(func, name, value):
    """A real-number argument (int, float or numpy scalar, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise invalid(func, name, f"is {value!r}, not a number")
    return float(value)


def check(status, ctx_handle=None):
    """Raises the error of a failed call, with hcrt_last_error() of the context as its message."""
    if status != 0:
        raise make_error(status, lib.hcrt_last_error(ctx_handle).decode(errors="replace"))


_previous_hook = None
live_contexts = weakref.WeakSet()  # open Contexts: an uncaught error is recorded in each for hcrt-run


def note_failure(ctx_handle, exc):
    """Records `exc` for hcrt-run's report (hcrt_run_note_failure: nothing without HCRT_RUN_DIR): the exit
    status it ends the process with and one line of text."""
    status = exc.exit_status if isinstance(exc, Error) else 1
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:1000]
    try:
        lib.hcrt_run_note_failure(ctx_handle, status, None, text.encode(errors="replace"))
    except Exception:
        pass


def _excepthook(kind, value, tb):
    for ctx in list(live_contexts):
        if not ctx.closed:
            note_failure(ctx._h, value)
    _previous_hook(kind, value, tb)
    interactive = hasattr(sys, "ps1") or sys.flags.interactive  # a REPL survives its errors
    if isinstance(value, Error) and value.exit_status != 0 and not interactive:
        # mpirun reports the first failing rank's status as the job's; hcrt-run decides from it.
        sys.stderr.flush()
        sys.stdout.flush()
        import os
        os._exit(value.exit_status)


def install_excepthook():
    """Makes an uncaught hcrt.Error end a script with its exit status instead of Python's 1, so that
    mpirun and hcrt-run see what failed (an interactive session is left alone). Installed once, by the
    first Context; chains to the hook that was in place (which prints the traceback)."""
    global _previous_hook
    if _previous_hook is None:
        _previous_hook = sys.excepthook
        sys.excepthook = _excepthook
