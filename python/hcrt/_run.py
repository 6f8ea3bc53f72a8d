"""What a job tells the restart loop (hcrt-run), and how it learns that it should stop (hcrt/run.h,
docs/goodput.md). Methods of hcrt.Context; Comm.should_stop() is the collective half."""
import ctypes

from ._errors import check, invalid, whole
from ._lib import lib

RUN_EVENTS = {"step": 0, "ready": 1, "saved": 2, "committed": 3}


class RunMixin:
    """hcrt-run's side of a training loop, on the Context:

        ctx.catch_signals()                       # SIGTERM/SIGINT request a stop instead of killing
        step, meta = ck.restore()                 # (None, None) on a fresh start
        step = step or 0
        ctx.heartbeat(step, "ready")              # the state after `step` is loaded
        while step < steps:
            step += 1; train(step)
            ctx.heartbeat(step, "step")
            stop = comm.should_stop()             # collective: the same answer on every rank
            if stop or step % every == 0:
                ck.save(step); ctx.heartbeat(step, "saved")
            if stop:
                ck.wait(); ...; sys.exit(120)     # HCRT_EXIT_PREEMPTED: hcrt-run does not relaunch

    Without hcrt-run (HCRT_RUN_DIR empty) heartbeat() and note_failure() do nothing.
    """

    @property
    def run_dir(self):
        """HCRT_RUN_DIR, the directory hcrt-run shares with the ranks; None when not under hcrt-run."""
        return self._config_value("HCRT_RUN_DIR") or None

    @property
    def run_attempt(self):
        """HCRT_RUN_ATTEMPT: 0 for the first launch, 1 for the first relaunch, ..."""
        return int(self._config_value("HCRT_RUN_ATTEMPT") or 0)

    def heartbeat(self, step, event="step"):
        """Tells hcrt-run that `event` happened at `step` (>= 0): "ready" (the state after `step` is loaded,
        restored or initial), "step" (step `step` completed), "saved" (save(step) returned) or "committed"
        (the checkpoint of `step` is restorable: hcrt.Checkpoint reports that itself). One write(2)."""
        func = "Context.heartbeat"
        self._alive(func)
        if event not in RUN_EVENTS:
            raise invalid(func, "event", f"is {event!r}, not one of {', '.join(RUN_EVENTS)}")
        check(lib.hcrt_run_heartbeat(self._h, whole(func, "step", step), RUN_EVENTS[event]), self._h)

    def note_failure(self, exit_status, lost_node=None, what=None):
        """Records why this rank is about to end the job, for hcrt-run's report: the exit status it will end
        with (0..255), a node known to be lost (None: none; "": this rank's own), one line of text. Only a
        rank's first record is kept; an uncaught hcrt.Error records itself. Does not end the process."""
        func = "Context.note_failure"
        self._alive(func)
        for name, value in (("lost_node", lost_node), ("what", what)):
            if value is not None and not isinstance(value, str):
                raise invalid(func, name, f"is a {type(value).__name__}, not a str or None")
        node = None if lost_node is None else lost_node.encode()
        text = None if what is None else what.encode(errors="replace")
        check(lib.hcrt_run_note_failure(self._h, whole(func, "exit_status", exit_status), node, text), self._h)

    def catch_signals(self):
        """Makes SIGTERM and SIGINT request a stop, reported by Comm.should_stop(), instead of ending the
        process (Python's KeyboardInterrupt included). Calling again does nothing."""
        self._alive("Context.catch_signals")
        check(lib.hcrt_run_catch_signals(self._h), self._h)

    def _config_value(self, name):
        self._alive("Context.config")
        value = ctypes.c_char_p()
        check(lib.hcrt_config_get(self._h, name.encode(), ctypes.byref(value)), self._h)
        return (value.value or b"").decode()
