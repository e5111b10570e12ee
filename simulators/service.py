"""The lifecycle every asynchronous service shares (the fake vLLM, the mock master, kvtest's proxy),
modelled on testcontainers' DockerContainer: `start()` and `stop()` coroutines, and `async with` that
stops what a failed start left behind.

    class FakeThing(AsyncService):
        async def start(self) -> Self: ...
        async def stop(self) -> None: ...   # must be safe to call after a partial start

    async with FakeThing() as thing:
        ...

It lives in simulators/ because the simulators need it and depend on nothing in kvtest (kvtest builds on
the simulators, never the other way round); kvtest.service re-exports it.
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
