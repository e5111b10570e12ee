"""The lifecycle every in-process service shares (STYLE.md §1, testcontainers' DockerContainer):
`start()` and `stop()` coroutines, and `async with` that stops what a failed start left behind.

    class FakeThing(AsyncService):
        async def start(self) -> Self: ...
        async def stop(self) -> None: ...   # must be safe to call after a partial start

    async with FakeThing() as thing:
        ...
"""

from __future__ import annotations

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
