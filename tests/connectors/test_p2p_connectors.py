"""NixlConnector and MooncakeConnector between two fake nodes, driven leg by leg as a proxy would
(kvtest/proxy/flows/); the sources each rule comes from are cited in the connector modules."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from .nodes import PROMPT, complete, metric, node, scrape, until

NIXL = {"VLLM_NIXL_SIDE_CHANNEL_PORT": "0"}
MOONCAKE = {"VLLM_MOONCAKE_BOOTSTRAP_PORT": "0"}
PREFILL_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}


async def test_nixl_params_only_after_a_finished_prefill_and_decode_reads_them() -> None:
    async with (
        node("NixlConnector", "kv_producer", NIXL) as p,
        node("NixlConnector", "kv_consumer", NIXL) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        r = await complete(c, p, kv_transfer_params=PREFILL_PARAMS)
        params = r.json()["kv_transfer_params"]
        assert params["do_remote_prefill"] is True and params["do_remote_decode"] is False
        assert params["remote_engine_id"] == p.connector.engine_id  # type: ignore[union-attr]
        assert params["remote_port"] == p.connector.side.port  # type: ignore[union-attr]
        assert len(params["remote_block_ids"]) == -(-r.json()["usage"]["prompt_tokens"] // 16)
        assert p.engine.delayed_free  # blocks held until the decode reads them
        got = await complete(c, d, max_tokens=3, kv_transfer_params=params)
        assert got.status_code == 200 and got.json()["kv_transfer_params"] is None
        assert not p.engine.delayed_free
        # a decode without params recomputes: no external hits, local compute
        plain = await complete(c, d, prompt=PROMPT + " other", max_tokens=2)
        dm = await scrape(c, d)
        # a request without do_remote_decode gets no params back
        assert (await complete(c, p, prompt="no params")).json()["kv_transfer_params"] is None
    n = r.json()["usage"]["prompt_tokens"]
    assert plain.status_code == 200
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == n
    assert metric(dm, "vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == n


async def test_nixl_held_blocks_freed_by_the_abort_timeout_then_decode_fails() -> None:
    env = NIXL | {"VLLM_NIXL_ABORT_REQUEST_TIMEOUT": "0.05"}
    async with (
        node("NixlConnector", "kv_producer", env) as p,
        node("NixlConnector", "kv_consumer", env) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        params = (await complete(c, p, kv_transfer_params=PREFILL_PARAMS)).json()["kv_transfer_params"]
        await until(lambda: not p.engine.delayed_free)
        assert not p.engine.delayed_free and p.connector.expired == 1  # type: ignore[union-attr]
        late = await complete(c, d, max_tokens=2, kv_transfer_params=params)
    # kv_load_failure_policy defaults to "fail" (vllm/config/kv_transfer.py): 500 to the client
    assert late.status_code == 500
    assert late.json()["error"]["type"] == "InternalServerError"


async def test_mooncake_bootstrap_query_shape_and_push_on_transfer_id() -> None:
    async with (
        node("MooncakeConnector", "kv_producer", MOONCAKE) as p,
        node("MooncakeConnector", "kv_consumer", MOONCAKE) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        boot = p.connector.side.url  # type: ignore[union-attr]
        q = (await c.get(f"{boot}/query")).json()
        assert set(q) == {"0"} and set(q["0"]) == {"engine_id", "worker_addr"}
        assert q["0"]["worker_addr"]["0"]["0"].rsplit(":", 1)[1] == str(p.connector.side.port)  # type: ignore[union-attr]
        tid = f"xfer-{uuid.uuid4()}"
        prefill = {"do_remote_decode": True, "do_remote_prefill": False, "transfer_id": tid}
        decode = {
            "do_remote_decode": False,
            "do_remote_prefill": True,
            "remote_bootstrap_addr": boot,
            "remote_engine_id": q["0"]["engine_id"],
            "transfer_id": tid,
        }
        # the decode leg starts first and waits on the transfer id
        dec = asyncio.create_task(complete(c, d, max_tokens=3, kv_transfer_params=decode))
        await asyncio.sleep(0.05)
        assert not dec.done()
        pre = await complete(c, p, kv_transfer_params=prefill)
        got = await dec
        dm = await scrape(c, d)
    assert pre.json()["kv_transfer_params"] is None  # this connector returns no params
    assert got.status_code == 200
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == pre.json()["usage"]["prompt_tokens"]
    assert not p.engine.delayed_free


async def test_mooncake_no_transfer_when_prefill_did_not_finish_by_length_and_bootstrap_failure() -> None:
    kv = {"kv_load_failure_policy": "recompute"}
    async with (
        node("MooncakeConnector", "kv_producer", MOONCAKE, sim_enable_admin=True, sim_itl_ms=20) as p,
        node("MooncakeConnector", "kv_consumer", MOONCAKE, kv=kv) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        boot = p.connector.side.url  # type: ignore[union-attr]
        tid = "xfer-aborted"
        decode = {"do_remote_prefill": True, "remote_bootstrap_addr": boot, "transfer_id": tid}
        dec = asyncio.create_task(complete(c, d, max_tokens=2, kv_transfer_params=decode))
        # the prefill leg is aborted by its client before it finishes: nothing is pushed
        pre = asyncio.create_task(
            complete(c, p, max_tokens=50, kv_transfer_params={"do_remote_decode": True, "transfer_id": tid})
        )
        await until(lambda: p.engine.num_running > 0)
        pre.cancel()
        got = await asyncio.wait_for(dec, 10)
        # a bootstrap server that fails /query: the decode cannot find the prefill
        await c.post(p.url_for("sim/faults"), json={"kv_bootstrap_fail": True})
        assert (await c.get(f"{boot}/query")).status_code == 500
        again = {**decode, "transfer_id": "xfer-2"}
        got2 = await complete(c, d, prompt=PROMPT + " 2", max_tokens=2, kv_transfer_params=again)
    # kv_load_failure_policy=recompute: both decodes answer, computing the prompt themselves
    assert got.status_code == 200 and got2.status_code == 200
    assert not p.engine.delayed_free
