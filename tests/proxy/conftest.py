"""Fixtures for the proxy conformance suite.

The tests talk to the proxy only by URL. `pytest tests/proxy --proxy-url URL` aims them at another,
already-running proxy: the cases that need to script the proxy's backends (faults, field checks) are
then skipped with that reason, the rest (request validation, designation parsing, SSE shape) run.
Without --proxy-url each test starts PDProxy in-process over StubNodes (stub_node.py).
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
    """A proxy under test and, when it is ours, the backends it routes to."""

    url: str
    prefill: list[StubNode] | None = None
    decode: list[StubNode] | None = None
    proxy: PDProxy | None = None

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts)])

    def nodes(self) -> tuple[list[StubNode], list[StubNode]]:
        if self.prefill is None or self.decode is None:
            pytest.skip("needs to script the proxy's backends: runs only against the in-process proxy")
        return self.prefill, self.decode


StartPD = Callable[..., Awaitable[PD]]


@pytest.fixture
def external_proxy_url(request: pytest.FixtureRequest) -> str | None:
    url: str | None = request.config.getoption("--proxy-url")
    return url


@pytest.fixture
async def start_pd(external_proxy_url: str | None) -> AsyncIterator[StartPD]:
    """`await start_pd(n_prefill=2, n_decode=2, **ProxyConfig fields)` -> PD; everything stops at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(n_prefill: int = 2, n_decode: int = 2, **config: Any) -> PD:
            if external_proxy_url:
                return PD(external_proxy_url)
            prefill = [
                await stack.enter_async_context(StubNode(bootstrap=True, engine_id=f"engine-p{i}"))
                for i in range(n_prefill)
            ]
            decode = [await stack.enter_async_context(StubNode()) for _ in range(n_decode)]
            config.setdefault("connect_timeout", 2.0)
            config.setdefault("read_timeout", 5.0)
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
