"""Fixtures for kvtest's proxy tests: each test starts PDProxy in-process over StubNodes (stub_node.py)
and talks to it by URL. The checks that rate any router (kvtest's or another, by command line) live in
kvtest/conformance and run from tests/conformance; these are the proxy's own unit tests.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kvtest.proxy import PDProxy, ProxyConfig

from .stub_node import StubNode


@dataclass
class PD:
    """The proxy under test and the backends it routes to."""

    url: str
    prefill: list[StubNode]
    decode: list[StubNode]
    proxy: PDProxy

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts)])

    def nodes(self) -> tuple[list[StubNode], list[StubNode]]:
        return self.prefill, self.decode


StartPD = Callable[..., Awaitable[PD]]


@pytest.fixture
async def start_pd() -> AsyncIterator[StartPD]:
    """`await start_pd(n_prefill=2, n_decode=2, **ProxyConfig fields)` -> PD; everything stops at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(n_prefill: int = 2, n_decode: int = 2, **config: Any) -> PD:
            prefill = [
                await stack.enter_async_context(StubNode(bootstrap=True, engine_id=f"engine-p{i}"))
                for i in range(n_prefill)
            ]
            decode = [await stack.enter_async_context(StubNode()) for _ in range(n_decode)]
            # The stubs share this test's event loop: on a loaded machine accepting a connection can
            # take seconds, and a 2 s connect timeout turned "prefill drops the connection -> 502" into
            # 504 "connect timed out" in a soak run. No test here needs these to fire (timeouts are
            # tested with FAST configs and mocked transport errors), so they only bound a hang.
            config.setdefault("connect_timeout", 60.0)
            config.setdefault("read_timeout", 60.0)
            if config.get("flow") == "mooncake":
                config.setdefault("bootstrap_port", [n.bootstrap_port for n in prefill])
            cfg = ProxyConfig(prefill=[n.url for n in prefill], decode=[n.url for n in decode], **config)
            proxy = await stack.enter_async_context(PDProxy(cfg))
            return PD(proxy.url, prefill, decode, proxy)

        yield start


@pytest.fixture
async def pd(start_pd: StartPD) -> PD:
    return await start_pd()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0)) as c:
        yield c
