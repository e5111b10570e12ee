"""Fake vLLM nodes with a KV connector, for the connector tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from kvtest.metrics.exposition import total
from simulators.vllm import FakeVLLMServer, SimConfig

MODEL = "fixtures/models/tiny-llama"
PROMPT = "Shared context: the quick brown fox jumps over the lazy dog. " * 3  # 78 tokens with tiny-llama


def node(
    connector: str, role: str, env: dict[str, str], kv: dict[str, Any] | None = None, **kw: Any
) -> FakeVLLMServer:
    tc = {"kv_connector": connector, "kv_role": role, **(kv or {})}
    cfg = SimConfig(model=MODEL, port=0, block_size=16, sim_env=env, kv_transfer_config=tc, **kw)
    return FakeVLLMServer(cfg)


def metric(text: str, name: str, **labels: str) -> float:
    return total(text, name, **labels)


async def complete(
    c: httpx.AsyncClient, n: FakeVLLMServer, prompt: str = PROMPT, **body: Any
) -> httpx.Response:
    return await c.post(
        n.url_for("v1/completions"), json={"model": MODEL, "prompt": prompt, "max_tokens": 1, **body}
    )


async def scrape(c: httpx.AsyncClient, n: FakeVLLMServer) -> str:
    return (await c.get(n.url_for("metrics"))).text


async def until(pred: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll `pred` with a deadline (no fixed sleeps waiting for a state)."""
    for _ in range(int(within_s / 0.005)):
        if pred():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached in time")
