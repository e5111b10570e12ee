"""Signals inside deferred_interrupts only ask to stop: the wait in progress wakes and raises
Interrupted, the status is the shell's 128+N, and the previous handlers come back."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kvtest import interrupts


@pytest.fixture(autouse=True)
def terminal_signals() -> Iterator[None]:
    """SIGINT and SIGTERM as a foreground program in a terminal has them (a suite run as a background
    job inherits SIGINT ignored, which deferred_interrupts rightly keeps)."""
    previous = {sig: signal.signal(sig, signal.SIG_DFL) for sig in interrupts.STOP_SIGNALS}
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_wakes_the_wait_and_raises_interrupted(sig: signal.Signals) -> None:
    before = signal.getsignal(sig)
    with pytest.raises(interrupts.Interrupted) as caught, interrupts.deferred_interrupts():
        os.kill(os.getpid(), sig)
        t0 = time.monotonic()
        interrupts.sleep(600)  # must wake on the signal, not after 600 s
    assert time.monotonic() - t0 < 60
    assert caught.value.signum == sig and caught.value.exit_code == 128 + sig
    assert signal.getsignal(sig) is before


def test_code_between_waits_is_never_cut_short() -> None:
    """The signal lands while ordinary code runs; that code finishes, the next check raises."""
    finished = []
    with pytest.raises(interrupts.Interrupted), interrupts.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append("teardown-like work after the signal")
        interrupts.check()
    assert finished


def test_a_nested_block_leaves_the_request_to_the_outermost() -> None:
    with pytest.raises(interrupts.Interrupted), interrupts.deferred_interrupts():
        with interrupts.deferred_interrupts():
            os.kill(os.getpid(), signal.SIGTERM)
        # the inner exit did not raise: the outer block decides
        assert interrupts.requested() == signal.SIGTERM
    assert interrupts.requested() is None


def test_a_signal_the_parent_ignored_stays_ignored() -> None:
    """A shell starts background jobs with SIGINT ignored so that Ctrl-C reaches only the foreground."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        interrupts.check()  # nothing was requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert interrupts.requested() is None


BUSY_WAITER = """
import sys
from kvtest import interrupts
try:
    with interrupts.deferred_interrupts():
        print("waiting", flush=True)
        while True:
            interrupts.sleep(0)  # in and out of the wait as fast as it can
except interrupts.Interrupted as exc:
    sys.exit(exc.exit_code)
"""


def test_a_signal_never_deadlocks_the_wait_it_lands_in() -> None:
    """The handler runs in the thread that is waiting. When it set a threading.Event it could land
    while that thread held the Event's own lock and block on it for ever (a soak run: `cluster up
    --foreground` ignored SIGTERM). A waiter that enters and leaves its wait as fast as it can, signalled
    20 times at seeded offsets, exits with 143 every time."""
    rng = random.Random(9)
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", BUSY_WAITER],
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "waiting\n"
            time.sleep(rng.uniform(0, 0.05))  # a drawn moment inside the busy loop, not a readiness wait
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=30) == 143
        finally:
            child.kill()
            child.wait()
