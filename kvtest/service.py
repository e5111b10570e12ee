"""The lifecycle every service shares (STYLE.md §1, testcontainers' DockerContainer):
`start()` and `stop()` coroutines, and `async with` that stops what a failed start left behind.

    class FakeThing(AsyncService):
        async def start(self) -> Self: ...
        async def stop(self) -> None: ...   # must be safe to call after a partial start

    async with FakeThing() as thing:
        ...
"""

from __future__ import annotations

import asyncio
from typing import Self


class AsyncService:
    async def start(self) -> Self:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


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
