"""Readiness as values, and the one waiter that polls them (testcontainers' wait strategies are the model).

    wait_ready(proc, [HttpProbe(f"{url}/health")], timeout=20)          # one thing
    wait_all_ready([(p0, [HttpProbe(...)], 240), (d0, [TcpProbe(...)], 240)], log=print)

A probe says whether something answers: an HTTP GET (HttpProbe), a TCP connect (TcpProbe), a line in a
log (LogProbe), or any predicate (CallProbe, e.g. a GET run inside a network namespace). The waiter
polls every target's probes until all are ready; a target that exits first raises ProcessExitedError,
one that misses its deadline ReadyTimeoutError, both with the tail of its log (as testcontainers puts
the container's log into the error). Launchers, the cluster runner and the etcd/master services all
wait through here, so "exited" vs "timed out" is told apart in one place, and a stop requested by a
signal (kvtest.interrupts) wakes every wait at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from kvtest import interrupts
from kvtest.ports import port_is_open

POLL_INTERVAL_S = 0.05


class ProcessExitedError(RuntimeError):
    """The process died before it became ready."""


class ReadyTimeoutError(TimeoutError):
    """The process is alive but did not become ready before the deadline."""


class Probe(Protocol):
    def ready(self) -> bool: ...


class Waitable(Protocol):
    """What the waiter watches: a name, an exit status (None while running) and a log."""

    @property
    def name(self) -> str: ...
    @property
    def log_path(self) -> Path | None: ...
    def poll(self) -> int | None: ...


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        data = fh.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class HttpProbe:
    """GET url answers 200; with any_status, any HTTP answer (a server listening is enough); with
    below, any status under it (a router that answers 404 for a path it lacks is up)."""

    url: str
    any_status: bool = False
    below: int | None = None
    timeout: float = 1.0

    def ready(self) -> bool:
        try:
            status = httpx.get(self.url, timeout=self.timeout).status_code
        except httpx.HTTPError:
            return False
        if self.any_status:
            return True
        return status < self.below if self.below is not None else status == 200


@dataclass(frozen=True)
class TcpProbe:
    host: str
    port: int

    def ready(self) -> bool:
        return port_is_open(self.host, self.port)


@dataclass(frozen=True)
class LogProbe:
    """A line matching pattern is in the log (testcontainers' wait_for_logs)."""

    path: Path
    pattern: str

    def ready(self) -> bool:
        if not self.path.exists():
            return False
        return re.search(self.pattern, self.path.read_text(errors="replace"), re.MULTILINE) is not None


@dataclass(frozen=True)
class CallProbe:
    """Any predicate, named for the error message (a GET from inside a network namespace)."""

    what: str
    check: Callable[[], bool]

    def ready(self) -> bool:
        return self.check()

    def __str__(self) -> str:
        return self.what


Target = tuple[Waitable, Sequence[Probe], float]  # what, its probes (all must pass), its deadline in s


def _check(pending: dict[str, Target], t0: float, argv_of: Callable[[Waitable], str]) -> list[str]:
    """One round over the pending targets: raise for an exit or a missed deadline, return the ready."""
    done = []
    for name, (target, probes, timeout) in pending.items():
        code = target.poll()
        if code is not None:
            raise ProcessExitedError(
                f"{name} exited with code {code} before it was ready ({argv_of(target)})\n"
                f"--- last lines of {target.log_path} ---\n{tail(target.log_path)}"
            )
        if all(p.ready() for p in probes):
            done.append(name)
        elif time.monotonic() - t0 > timeout:
            shown = ", ".join(str(p) for p in probes)
            raise ReadyTimeoutError(
                f"{name} was not ready after {timeout:.0f}s ({shown})\n"
                f"--- last lines of {target.log_path} ---\n{tail(target.log_path)}"
            )
    return done


def _argv(target: Waitable) -> str:
    argv = getattr(target, "argv", None)
    if argv is None:
        argv = getattr(getattr(target, "launch", None), "argv", None)
    return " ".join(argv) if argv else "?"


def wait_all_ready(
    targets: Sequence[Target], log: Callable[[str], None] = lambda _: None, interval: float = POLL_INTERVAL_S
) -> dict[str, float]:
    """Poll until every target's probes pass; returns seconds to ready per name."""
    t0 = time.monotonic()
    pending = {t[0].name: t for t in targets}
    ready: dict[str, float] = {}
    while pending:
        interrupts.check()  # a Ctrl-C during a start wakes the wait here (kvtest.interrupts)
        for name in _check(pending, t0, _argv):
            ready[name] = round(time.monotonic() - t0, 2)
            log(f"ready: {name} in {ready[name]:.1f}s")
            del pending[name]
        if pending:
            interrupts.sleep(interval)
    return ready


def wait_ready(
    target: Waitable, probes: Sequence[Probe], timeout: float, interval: float = POLL_INTERVAL_S
) -> float:
    return wait_all_ready([(target, probes, timeout)], interval=interval)[target.name]


async def wait_ready_async(
    target: Waitable, probes: Sequence[Probe], within: float, interval: float = POLL_INTERVAL_S
) -> float:
    """wait_ready for event-loop code: a probe blocks for at most its own short timeout, so each round
    runs in a worker thread and the loop keeps serving."""
    t0 = time.monotonic()
    pending = {target.name: (target, probes, within)}
    # the deadline is _check's, not asyncio.timeout's, so that "exited" is told from "timed out"
    while not await asyncio.to_thread(_check, pending, t0, _argv):
        interrupts.check()
        await asyncio.sleep(interval)
    return time.monotonic() - t0
