"""The lifecycle every service shares (after testcontainers' DockerContainer): `start()` and `stop()`,
and a context manager that stops what a failed start left behind.

AsyncService (coroutines) lives in simulators.service, the lower layer, and is re-exported here;
SyncService is for services whose start()/stop() block (they launch a process and poll it).
"""

from __future__ import annotations

import asyncio
from typing import Self

from simulators.service import AsyncService

# The cap on a readiness wait. Waits poll the probe and fail at once when the process exits, so the
# cap is never what a working start waits for: it only bounds a start that hangs. A start that takes
# 0.1-3 s on an idle machine takes tens of seconds on a loaded 2-core one, which a 10-20 s cap failed.
READY_CAP_S = 120.0


__all__ = ["READY_CAP_S", "AsyncService", "SyncService"]


class SyncService:
    """The same for a service whose start()/stop() block (it launches a process and polls it):
    `with` as is, `async with` in a worker thread so the event loop keeps running."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        try:
            return await asyncio.to_thread(self.start)
        except BaseException:
            self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
