"""Wall clock or virtual clock, behind one interface.

The virtual clock never sleeps: a `sleep(dt)` parks the caller until the clock is advanced past its
deadline. With `auto=True` (the default for `--sim-virtual-clock`) an advancer jumps straight to the
earliest deadline once the event loop has run everything else that was ready, so a test sees exact
model timings (TTFT = base + per-token * uncached tokens, ...) in metrics and responses while taking no
real time. `advance(dt)` moves it by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time


class WallClock:
    virtual = False

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, dt: float) -> None:
        if dt > 0:
            await asyncio.sleep(dt)


class VirtualClock:
    virtual = True

    def __init__(self, start: float = 0.0, auto: bool = True) -> None:
        self._now = start
        self.auto = auto
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._advancer: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    def set_now(self, t: float) -> None:
        """An event-driven driver (kvtest replay) moves time itself; nothing may be sleeping."""
        self._now = t

    async def sleep(self, dt: float) -> None:
        if dt <= 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + dt, next(self._seq), fut))
        if self.auto and (self._advancer is None or self._advancer.done()):
            self._advancer = asyncio.create_task(self._auto_advance())
        await fut

    def _wake_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            deadline, _, fut = heapq.heappop(self._heap)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)

    async def _auto_advance(self) -> None:
        while self._heap:
            # let every task that is ready run (and park its own sleeps) before time jumps
            for _ in range(8):
                await asyncio.sleep(0)
            if self._heap:
                self._wake_until(self._heap[0][0])

    async def advance(self, dt: float) -> None:
        target = self._now + dt
        while self._heap and self._heap[0][0] <= target:
            self._wake_until(self._heap[0][0])
            for _ in range(8):
                await asyncio.sleep(0)
        self._now = target
