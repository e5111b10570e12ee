"""kv_aware routing over fake vLLM nodes that publish vLLM's KV events (kvtest/proxy/kv_aware.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kvtest.experiments.kv_routing import many_tenant_workload, run_strategy
from kvtest.ports import free_port
from kvtest.proxy import PDProxy, ProxyConfig
from simulators.vllm import FakeVLLMServer
from simulators.vllm.config import SimConfig
from simulators.vllm.kv_events import KVEventsConfig

MODEL = str(Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama")
BS = 16


def ctx(n: int) -> str:
    return f"Context {n}: " + "the quick brown fox jumps over the lazy dog. " * 6


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[list[FakeVLLMServer], PDProxy]]:
    def node(i: int, events: bool) -> FakeVLLMServer:
        ev = (
            KVEventsConfig(True, "zmq", f"ipc://{tmp_path}/pub{i}", f"ipc://{tmp_path}/rep{i}")
            if events
            else None
        )
        return FakeVLLMServer(
            SimConfig(
                model=MODEL,
                port=free_port(),
                block_size=BS,
                kv_events_config=ev,
                sim_env={"PYTHONHASHSEED": "3"},
            )
        )

    nodes = [node(0, True), node(1, True), node(2, False)]
    for n in nodes:
        await n.start()
    cfg = ProxyConfig(
        prefill=[nodes[0].url, nodes[1].url],
        decode=[nodes[2].url],
        strategy="kv_aware",
        kv_events=[f"ipc://{tmp_path}/pub{i}" for i in range(2)],
        kv_replay=[f"ipc://{tmp_path}/rep{i}" for i in range(2)],
        kv_model=MODEL,
        kv_block_size=BS,
        kv_hash_seed="3",
    )
    try:
        async with PDProxy(cfg) as proxy:
            yield nodes, proxy
    finally:
        for n in nodes:
            await n.stop()


async def known_blocks(proxy: PDProxy) -> int:
    kv = proxy.router.kv_aware
    assert kv is not None
    return sum(kv.index.blocks.values())


async def wait_for_blocks(proxy: PDProxy, at_least: int) -> None:
    kv = proxy.router.kv_aware
    assert kv is not None
    try:
        async with asyncio.timeout(30):  # events cross a ZMQ socket; bounds a hang only
            while await known_blocks(proxy) < at_least:  # noqa: ASYNC110 (a count, not an event)
                await asyncio.sleep(0.01)
    except TimeoutError:
        states = {u: (s.batches, s.lost, s.gaps) for u, s in kv.streams.items()}
        raise AssertionError(
            f"index has {await known_blocks(proxy)} blocks; streams {states}, failed {kv.failed}"
        ) from None


async def test_a_repeat_goes_to_the_node_that_cached_its_prefix(
    cluster: tuple[list[FakeVLLMServer], PDProxy],
) -> None:
    nodes, proxy = cluster
    async with httpx.AsyncClient(timeout=30) as c:
        for n in range(6):
            r = await c.post(
                proxy.url_for("v1/completions"),
                json={"model": MODEL, "prompt": ctx(n) + "Q0", "max_tokens": 2},
            )
            assert r.status_code == 200
        tok = nodes[0].tokenizer
        await wait_for_blocks(proxy, sum(len(tok.encode(ctx(n) + "Q0")) // BS for n in range(6)))
        before = [n.engine.kv.stats.hits for n in nodes[:2]]
        for n in range(6):
            r = await c.post(
                proxy.url_for("v1/completions"),
                json={"model": MODEL, "prompt": ctx(n) + "Q1", "max_tokens": 2},
            )
            assert r.status_code == 200
        hits = sum(n.engine.kv.stats.hits for n in nodes[:2]) - sum(before)
        # every repeat found its whole context on the node it was sent to
        # (the last block of "...Q0" differs from "...Q1" when the question falls inside it)
        full = sum((len(tok.encode(ctx(n) + "Q1")) - 1) // BS * BS for n in range(6))
        assert hits >= full - 6 * BS and hits > 0
        m = (await c.get(proxy.url_for("metrics"))).text
    assert 'kvtest_proxy_kv_events_stream_up{node="' + nodes[0].url + '"} 1' in m
    assert 'kvtest_proxy_kv_aware_picks_total{reason="prefix"} 6' in m


async def test_a_lost_stream_falls_back_to_load_and_says_so(
    cluster: tuple[list[FakeVLLMServer], PDProxy],
) -> None:
    nodes, proxy = cluster
    kv = proxy.router.kv_aware
    assert kv is not None
    async with asyncio.timeout(30):
        await kv.streams[nodes[1].url].ready.wait()
    kv.streams[nodes[1].url].lost = True  # as after a gap its replay buffer no longer covered
    async with httpx.AsyncClient(timeout=30) as c:
        r = await c.post(
            proxy.url_for("v1/completions"), json={"model": MODEL, "prompt": ctx(0), "max_tokens": 2}
        )
        assert r.status_code == 200
        m = (await c.get(proxy.url_for("metrics"))).text
    assert 'kvtest_proxy_kv_events_stream_up{node="' + nodes[1].url + '"} 0' in m
    assert 'kvtest_proxy_kv_aware_picks_total{reason="load_fallback"} 1' in m


def test_kv_aware_needs_its_endpoints() -> None:
    with pytest.raises(ValueError, match="one --kv-events endpoint per --prefill URL"):
        ProxyConfig(
            prefill=["h:1", "h:2"],
            decode=["h:3"],
            strategy="kv_aware",
            kv_events=["tcp://h:9"],
            kv_model=MODEL,
        )


@pytest.mark.slow
async def test_kv_aware_beats_the_other_strategies_on_many_tenants() -> None:
    # a prompt is 18 preamble blocks + ~29 of its tenant's own: a 120-block node holds 3 tenants;
    # 9 tenants are more than any one node holds and what the three hold together
    bodies = many_tenant_workload(9, 90, 80, 1)
    rates = {}
    for s in ("kv_aware", "prefix", "round_robin", "random"):
        r = await run_strategy(
            s, "many-tenant", bodies, prefill_nodes=3, pool_blocks=120, block_size=16, concurrency=1, seed=1
        )
        rates[s] = r.hit_rate
    assert rates["kv_aware"] > max(rates["prefix"], rates["round_robin"], rates["random"]) + 0.05, rates
