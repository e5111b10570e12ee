"""Ctrl-C and SIGTERM as a request to stop, answered at safe points, never as an exception thrown
into whatever line happened to be running.

    with deferred_interrupts():            # SIGINT/SIGTERM now only set a flag
        for step in steps:
            start(step)
            wait_until(ready, deadline)     # wakes at once on a signal and raises Interrupted
    # handlers restored; the caller's teardown runs in ordinary control flow

Why: Python's default SIGINT handler (and a SIGTERM handler that raises) throws KeyboardInterrupt
between any two bytecodes, also after a lock's __enter__ and before the `with` block protects it
(CPython issue 29988). A start interrupted inside httpx's connection pool left its lock held; the
cleanup that followed blocked on that lock forever, so `kvtest cluster up --foreground` ignored
Ctrl-C and the processes it had started outlived it (parent pid 1). Here a signal only sets an event;
the waits that make up a start (readiness polls, sleeps between probes) wake on it and raise
`Interrupted` from a known place, so teardown always runs with no half-held lock behind it.

The handler itself takes no lock: it only records the signal. Python runs handlers in the main thread
between bytecodes, so a handler that set a threading.Event could land while that same thread held the
Event's internal lock (entering or leaving its own wait) and block on it for ever; that hung
`kvtest cluster up --foreground` once in a 20-run soak (SIGTERM right as it began to wait). The waits
instead select() on a pipe that the interpreter writes to when a signal arrives
(signal.set_wakeup_fd), so they wake at once without the handler touching anything shared.

`Interrupted` is a KeyboardInterrupt, so pytest and the CLI still treat it as Ctrl-C. Outside the
main thread (where Python cannot install handlers) nothing is deferred: the waits just never wake.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop was requested by `signum` (SIGINT or SIGTERM); raised at a safe point."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by this signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class _StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.depth = 0
        self.wakeup: tuple[int, int] | None = None  # (read, write) ends of the wakeup pipe

    def handle(self, signum: int, frame: object) -> None:
        # Only record, and take no lock (see the module docstring): the code that is running decides
        # when to stop; the interpreter has already written to the wakeup pipe.
        if self.signum is None:
            self.signum = signum

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early once a stop is requested."""
        deadline = time.monotonic() + seconds
        while self.signum is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.wakeup is None:  # not deferring (another thread, or outside the context)
                time.sleep(left)
                return
            ready, _, _ = select.select([self.wakeup[0]], [], [], left)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wakeup[0], 512)  # one byte per signal; drained, not interpreted


_REQUEST = _StopRequest()


def requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _REQUEST.signum


def check() -> None:
    """Raise Interrupted if a stop was requested since the handlers were installed."""
    if _REQUEST.signum is not None:
        raise Interrupted(_REQUEST.signum)


def _raise_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_like_ctrl_c() -> None:
    """Make SIGTERM (a CI runner's cancel, `timeout`, `kill`) end this program like Ctrl-C: a
    KeyboardInterrupt, so finally blocks and context managers still stop what it started. By default
    SIGTERM ends Python with no unwinding at all, leaving vLLM nodes and masters running. A handler
    someone else set is kept; off the main thread (where Python cannot install one) nothing changes."""
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)
    ):
        signal.signal(signal.SIGTERM, _raise_ctrl_c)


def sleep(seconds: float) -> None:
    """time.sleep that returns early, raising Interrupted, when a stop is requested."""
    _REQUEST.wait(max(0.0, seconds))
    check()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll condition until true (True) or the timeout passes (False); Interrupted on a signal."""
    deadline = time.monotonic() + timeout
    while True:
        check()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        sleep(min(interval, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM set the stop request instead of raising; restored on exit.

    Nested uses share one request; the outermost exit restores the previous handlers and clears
    it. A signal that arrived inside is not lost: the outermost exit raises Interrupted if the
    body returned normally, so the caller still sees it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outermost = _REQUEST.depth == 0
    previous: dict[int, object] = {}
    previous_fd = -1
    if outermost:
        _REQUEST.signum = None
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)  # set_wakeup_fd requires it: a full pipe must not block a handler
        _REQUEST.wakeup = (r, w)
        previous_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in STOP_SIGNALS:
            # a signal the parent told us to ignore stays ignored: a shell starts background jobs
            # with SIGINT ignored so that Ctrl-C reaches only the foreground (Python keeps that too)
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, _REQUEST.handle)
    _REQUEST.depth += 1
    try:
        yield
    finally:
        _REQUEST.depth -= 1
        if outermost:
            for signum_, handler in previous.items():
                signal.signal(signum_, handler)  # type: ignore[arg-type]
            signal.set_wakeup_fd(previous_fd)
            if _REQUEST.wakeup is not None:
                for fd in _REQUEST.wakeup:
                    os.close(fd)
                _REQUEST.wakeup = None
            signum, _REQUEST.signum = _REQUEST.signum, None
            if signum is not None:
                # the with-block finished (or is raising something else): surface the request
                raise Interrupted(signum)
