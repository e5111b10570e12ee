"""MooncakeStoreConnector V1 and V0 against the mock master (simulators/vllm/connectors/store.py cites
vLLM's source for each rule: store/data.py keys, store/worker.py lookup / save / load)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from kvtest.metrics.exposition import total
from kvtest.services.mooncake_master import MooncakeMaster
from kvtest.store import MooncakeConfig, open_store
from simulators.vllm.connectors.store import v0_key_prefix

from .nodes import PROMPT, complete, metric, node, scrape

STORE = "MooncakeStoreConnector"


def env(path: Path, seed: str | None = "0", **extra: str) -> dict[str, str]:
    e = {"MOONCAKE_CONFIG_PATH": str(path), **extra}
    if seed is not None:
        e["PYTHONHASHSEED"] = seed
    return e


def metric_plain(text: str, name: str) -> float:
    return total(text, name)


def master_keys(path: Path, keys: list[str]) -> list[int]:
    store = open_store("mock", MooncakeConfig.from_file(path))
    try:
        return list(store.batch_is_exist(keys))
    finally:
        store.close()


async def test_v1_keys_per_block_and_second_producer_puts_nothing(mooncake_json: Path) -> None:
    async with (
        node(STORE, "kv_producer", env(mooncake_json)) as p1,
        node(STORE, "kv_producer", env(mooncake_json)) as p2,
    ):
        async with httpx.AsyncClient(timeout=15) as c:
            r = await complete(c, p1)
            n = r.json()["usage"]["prompt_tokens"]
            await p1.connector.drain()  # type: ignore[union-attr]
            await complete(c, p2)
            await p2.connector.drain()  # type: ignore[union-attr]
            m1, m2 = await scrape(c, p1), await scrape(c, p2)
        req = p1.engine.new_request(p1.tokenizer.encode(PROMPT), 1)
        keys = [p1.connector.key(h) for h in req.block_hashes]  # type: ignore[union-attr]
        present = await asyncio.to_thread(master_keys, mooncake_json, keys)
    # key format at the master: model basename @tp_rank:0@pcp0@dcp0@pp_rank:0@group:0@hash hex
    assert keys[0].startswith("tiny-llama@tp_rank:0@pcp0@dcp0@pp_rank:0@group:0@")
    assert len(keys) == n // 16 and present == [1] * len(keys)
    assert (
        metric(m1, "vllm:mooncake_store_operation_keys_total", operation="save_put", status="ok") == n // 16
    )
    # the second producer checked (save_exists) and put nothing
    assert metric(m2, "vllm:mooncake_store_operation_total", operation="save_exists", status="ok") == 1
    assert metric(m2, "vllm:mooncake_store_operation_total", operation="save_put") == 0
    # a kv_producer looks the store up too (enable_lookup defaults True for every role)
    assert metric(m2, "vllm:external_prefix_cache_hits_total") == (n - 1) // 16 * 16
    bytes_per_block = 2 * 2 * 2 * 64 * 16 * 2  # layers x K,V x kv heads x head_dim x block x bf16
    assert metric(
        m1, "vllm:mooncake_store_operation_bytes_total", operation="save_put"
    ) == bytes_per_block * (n // 16)


async def test_v1_without_a_common_hash_seed_instances_share_nothing(mooncake_json: Path) -> None:
    async with (
        node(STORE, "kv_producer", env(mooncake_json, seed="1")) as p,
        node(STORE, "kv_consumer", env(mooncake_json, seed="2")) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        await complete(c, p)
        await p.connector.drain()  # type: ignore[union-attr]
        await complete(c, d, max_tokens=2)
        dm = await scrape(c, d)
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == 0
    assert metric(dm, "vllm:external_prefix_cache_queries_total") > 0


async def test_v1_consumer_does_not_put_and_decode_too_soon_misses(mooncake_json: Path) -> None:
    slow = env(mooncake_json)
    async with (
        node(STORE, "kv_producer", slow, sim_kv_put_delay_ms=200) as p,
        node(STORE, "kv_consumer", slow) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        await complete(c, p)
        r = await complete(c, d)  # the prefill's puts have not started yet
        dm = await scrape(c, d)
        await p.connector.drain()  # type: ignore[union-attr]
    assert r.status_code == 200
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == 0
    assert (
        metric(dm, "vllm:mooncake_store_operation_total", operation="save_exists") == 0
    )  # consumers never put


async def test_v0_whole_prompt_key_and_second_producer_rejected_by_the_master(
    mooncake_json: Path, mock_master: MooncakeMaster
) -> None:
    v0 = env(mooncake_json, VLLM_USE_V1="0")
    async with (
        node(STORE, "kv_producer", v0) as p1,
        node(STORE, "kv_producer", v0) as p2,
        node(STORE, "kv_consumer", v0, enable_prompt_tokens_details=True) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        await complete(c, p1)
        await complete(c, p2)
        r = await complete(c, d, max_tokens=3)
        dm = await scrape(c, d)
        ids = p1.tokenizer.encode(PROMPT)
        prefix = v0_key_prefix(ids)
        present = await asyncio.to_thread(master_keys, mooncake_json, [f"{prefix}_0", f"{prefix}_hidden_0"])
        master_metrics = (await c.get(mock_master.url_for("metrics"))).text
    assert present == [1, 1]
    # the client reports OBJECT_ALREADY_EXISTS as success (0); the master counts the refused put_start
    assert p1.connector.put_codes == p2.connector.put_codes == {0: 2}  # type: ignore[union-attr]
    assert metric_plain(master_metrics, "master_put_start_failures_total") == 2
    # the consumer found the whole prompt and skipped the forward pass
    assert r.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == len(ids)
    assert metric(dm, "vllm:mooncake_store_operation_total") == 0  # V0 exported no store metrics


@pytest.mark.parametrize(("policy", "status"), [("fail", 500), ("recompute", 200)])
async def test_load_failure_policy(mooncake_json: Path, policy: str, status: int) -> None:
    # vllm/config/kv_transfer.py kv_load_failure_policy ("fail" default); scheduler.py _handle_invalid_blocks
    e = env(mooncake_json)
    kv = {"kv_load_failure_policy": policy}
    async with (
        node(STORE, "kv_producer", e) as p,
        node(STORE, "kv_consumer", e, kv=kv, sim_kv_load_fail_rate=1.0) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        await complete(c, p)
        await p.connector.drain()  # type: ignore[union-attr]
        r = await complete(c, d, max_tokens=2)
        streamed = await complete(c, d, prompt=PROMPT + " again", max_tokens=2, stream=True)
        dm = await scrape(c, d)
    assert r.status_code == status, r.text
    assert (
        metric(dm, "vllm:mooncake_store_operation_total", operation="load_get", status="partial_failure") >= 1
    )
    if policy == "fail":
        assert r.json() == {
            "error": {
                "message": "Internal server error",
                "type": "InternalServerError",
                "param": None,
                "code": 500,
            }
        }
        assert metric(dm, "vllm:request_success_total", finished_reason="error") == 2
        assert '"InternalServerError"' in streamed.text and streamed.text.endswith("data: [DONE]\n\n")
    else:
        assert len(r.json()["choices"][0]["text"]) > 0
        assert metric(dm, "vllm:request_success_total", finished_reason="error") == 0


async def test_store_unavailable_lookup_fails_soft(mooncake_json: Path) -> None:
    async with (
        node(STORE, "kv_both", env(mooncake_json), sim_kv_store_unavailable=True) as n,
        httpx.AsyncClient(timeout=15) as c,
    ):
        r = await complete(c, n)
        await n.connector.drain()  # type: ignore[union-attr]
        m = await scrape(c, n)
    assert r.status_code == 200
    assert metric(m, "vllm:mooncake_store_operation_total", operation="lookup_exists", status="error") == 1
    assert (
        metric(m, "vllm:mooncake_store_operation_failed_keys_total", operation="save_exists", status="error")
        > 0
    )


async def test_no_mooncake_config_path_fails_startup() -> None:
    with pytest.raises(ValueError, match="MOONCAKE_CONFIG_PATH"):
        async with node(STORE, "kv_both", {}):
            pass


async def test_partial_load_counts_failed_keys_and_recomputes_the_rest(mooncake_json: Path) -> None:
    e = env(mooncake_json)
    kv = {"kv_load_failure_policy": "recompute"}
    async with (
        node(STORE, "kv_producer", e) as p,
        node(STORE, "kv_consumer", e, kv=kv, sim_enable_admin=True) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        await complete(c, p)
        await p.connector.drain()  # type: ignore[union-attr]
        # switched on at run time, as a test of a live cluster would
        assert (await c.post(d.url_for("sim/faults"), json={"kv_load_partial_rate": 1.0})).status_code == 200
        r = await complete(c, d, max_tokens=2)
        dm = await scrape(c, d)
    assert r.status_code == 200
    n = r.json()["usage"]["prompt_tokens"]
    blocks = (n - 1) // 16
    labels = {"operation": "load_get", "status": "partial_failure"}
    assert metric(dm, "vllm:mooncake_store_operation_keys_total", **labels) == blocks
    assert metric(dm, "vllm:mooncake_store_operation_failed_keys_total", **labels) == blocks - blocks // 2
