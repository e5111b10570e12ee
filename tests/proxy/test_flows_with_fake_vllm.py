"""Each P/D flow of kvtest's proxy over fake vLLM nodes whose KV connectors really move KV: the decode's
external prefix-cache hits say whether the prefill's KV arrived (vLLM counts them in
vllm:external_prefix_cache_hits_total, vllm/v1/core/sched/scheduler.py connector_prefix_cache_stats)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from kvtest.metrics.exposition import total
from kvtest.proxy import PDProxy, ProxyConfig
from kvtest.services.mooncake_master import MooncakeMaster
from simulators.vllm import FakeVLLMServer, SimConfig

MODEL = "fixtures/models/tiny-llama"
PROMPT = "Shared context: the quick brown fox jumps over the lazy dog. " * 3


def metric(text: str, name: str, **labels: str) -> float:
    return total(text, name, **labels)


def node_cfg(connector: str, role: str, env: dict[str, str], **kw: Any) -> SimConfig:
    kv = {"kv_connector": connector, "kv_role": role, **kw.pop("kv", {})}
    return SimConfig(model=MODEL, port=0, block_size=16, sim_env=env, kv_transfer_config=kv, **kw)


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


@pytest.fixture
def master_env(tmp_path: Path) -> Any:
    master = MooncakeMaster("mock", log_dir=tmp_path, in_process=True)
    master.start()
    path = tmp_path / "mooncake.json"
    path.write_text(
        json.dumps(
            {
                "master_server_address": master.rpc_addr,
                "global_segment_size": "16MB",
                "local_buffer_size": "8MB",
            }
        )
    )
    try:
        yield {"MOONCAKE_CONFIG_PATH": str(path), "PYTHONHASHSEED": "0"}
    finally:
        master.stop()


async def pd_pair(
    stack: AsyncExitStack, connector: str, env: dict[str, str], flow: str, **kw: Any
) -> tuple[FakeVLLMServer, FakeVLLMServer, PDProxy]:
    p = await stack.enter_async_context(FakeVLLMServer(node_cfg(connector, "kv_producer", env, **kw)))
    d = await stack.enter_async_context(FakeVLLMServer(node_cfg(connector, "kv_consumer", env, **kw)))
    boot = [p.connector.side.port] if connector == "MooncakeConnector" else [8998]  # type: ignore[union-attr]
    cfg = ProxyConfig(prefill=[p.url], decode=[d.url], flow=flow, bootstrap_port=boot)
    proxy = await stack.enter_async_context(PDProxy(cfg))
    return p, d, proxy


async def scrape(c: httpx.AsyncClient, node: FakeVLLMServer) -> str:
    return (await c.get(node.url_for("metrics"))).text


async def test_store_flow_v1_decode_loads_the_prefill_blocks(stack: AsyncExitStack, master_env: Any) -> None:
    p, d, proxy = await pd_pair(stack, "MooncakeStoreConnector", master_env, "store", sim_enable_admin=True)
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 4}
    async with httpx.AsyncClient(timeout=15) as c:
        first = await c.post(proxy.url_for("v1/completions"), json=body)
        assert first.status_code == 200, first.text
        n = first.json()["usage"]["prompt_tokens"]
        await p.connector.drain()  # the puts run after the prefill answered: the first decode may miss
        # empty the decode's own cache, so the second decode can only hit the store
        assert (await c.post(d.url_for("sim/reset_prefix_cache"))).status_code == 200
        before = metric(await scrape(c, d), "vllm:external_prefix_cache_hits_total")
        second = await c.post(proxy.url_for("v1/completions"), json=body)
        assert second.status_code == 200
        dm = await scrape(c, d)
    # every full block below the n-1 cap (store/worker.py lookup)
    assert metric(dm, "vllm:external_prefix_cache_hits_total") - before == (n - 1) // 16 * 16
    assert metric(dm, "vllm:mooncake_store_operation_total", operation="load_get", status="ok") >= 1
    assert second.json()["choices"][0]["text"] == first.json()["choices"][0]["text"]


async def test_nixl_flow_decode_reads_the_whole_prompt_and_prefill_frees(stack: AsyncExitStack) -> None:
    env = {"VLLM_NIXL_SIDE_CHANNEL_PORT": "0"}
    p, d, proxy = await pd_pair(stack, "NixlConnector", env, "nixl")
    async with httpx.AsyncClient(timeout=15) as c:
        r = await c.post(
            proxy.url_for("v1/completions"), json={"model": MODEL, "prompt": PROMPT, "max_tokens": 3}
        )
        assert r.status_code == 200, r.text
        n = r.json()["usage"]["prompt_tokens"]
        dm = await scrape(c, d)
    # NIXL loads len(prompt) - local hits, no n-1 cap (nixl/push_scheduler.py get_num_new_matched_tokens)
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == n
    assert p.connector.sent == 1 and not p.connector.state()["held"]  # type: ignore[union-attr]
    assert not p.engine.delayed_free


async def test_mooncake_flow_pushes_on_one_transfer_id(stack: AsyncExitStack) -> None:
    env = {"VLLM_MOONCAKE_BOOTSTRAP_PORT": "0"}
    p, d, proxy = await pd_pair(stack, "MooncakeConnector", env, "mooncake")
    async with httpx.AsyncClient(timeout=15) as c:
        r = await c.post(
            proxy.url_for("v1/completions"), json={"model": MODEL, "prompt": PROMPT, "max_tokens": 3}
        )
        assert r.status_code == 200, r.text
        n = r.json()["usage"]["prompt_tokens"]
        dm = await scrape(c, d)
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == n
    assert p.connector.sent == 1  # type: ignore[union-attr]
    assert not p.engine.delayed_free


async def test_store_flow_v0_the_seeds_connector(stack: AsyncExitStack, master_env: Any) -> None:
    # VLLM_USE_V1=0: the seed's V0 connector; the decode loads the whole prompt and skips its forward pass
    env = master_env | {"VLLM_USE_V1": "0"}
    p, _d, proxy = await pd_pair(
        stack, "MooncakeStoreConnector", env, "store", enable_prompt_tokens_details=True
    )
    async with httpx.AsyncClient(timeout=15) as c:
        r = await c.post(
            proxy.url_for("v1/completions"), json={"model": MODEL, "prompt": PROMPT, "max_tokens": 3}
        )
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"]
    assert p.connector.put_codes == {0: 2}  # type: ignore[union-attr]  # the KV and the hidden states


async def test_store_flow_example_connector(stack: AsyncExitStack, tmp_path: Path) -> None:
    kv = {"kv_connector_extra_config": {"shared_storage_path": str(tmp_path)}}
    _p, d, proxy = await pd_pair(stack, "ExampleConnector", {}, "store", kv=kv)
    prompt = "x " * 40  # a length where the save and lookup alignments agree (example.py)
    async with httpx.AsyncClient(timeout=15) as c:
        r = await c.post(
            proxy.url_for("v1/completions"), json={"model": MODEL, "prompt": prompt, "max_tokens": 3}
        )
        dm = await scrape(c, d)
    assert r.status_code == 200, r.text
    n = r.json()["usage"]["prompt_tokens"]
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == (n - 2) // 16 * 16 > 0
