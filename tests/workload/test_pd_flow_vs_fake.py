"""The seed's experiment loop end to end on simulators: dataset -> proxy (store flow) -> fake nodes ->
/metrics deltas, checked against the expectation model's P/D flow (prefill sees max_tokens=1)."""

from __future__ import annotations

import pytest

from kvtest.expect import ClusterModel, builtin_tokenize
from kvtest.metrics.scrape import delta, scrape_all
from kvtest.proxy import PDProxy, ProxyConfig
from kvtest.workload.dataset import DatasetSpec, build
from kvtest.workload.send import send_all
from simulators.vllm import fake_vllm_nodes


@pytest.mark.parametrize(
    ("strategy", "batch"), [("Designate", 1), ("RR", 1), ("Random", 1), ("Designate", 10)]
)
async def test_two_runs_through_the_proxy_match_the_model_on_every_node(strategy, batch):
    async with fake_vllm_nodes(4, model="tiny", block_size=16, sim_metrics="both") as nodes:
        hostports = [n.url.removeprefix("http://") for n in nodes]
        prefill, decode = hostports[:2], hostports[2:]
        cfg = ProxyConfig(prefill=prefill, decode=decode, strategy="designate", flow="store")
        async with PDProxy(cfg) as proxy:
            spec = DatasetSpec(
                strategy=strategy, request_num=10, prefill=prefill, decode=decode, model="tiny",
                seed=4, max_tokens=5, context_len=5, same_prefix_batch=batch,
            )  # fmt: skip
            requests = build(spec)
            before = await scrape_all(hostports)
            model = ClusterModel(builtin_tokenize, block_size=16, flow="pd")
            for _ in range(2):  # the seed ran its script twice
                results = await send_all(proxy.url, requests)
                assert all(r.ok for r in results), [r.error for r in results if not r.ok]
                model.run(requests)
            after = await scrape_all(hostports)
    expected = model.counters()
    for hp in hostports:
        got = delta(before[hp], after[hp])
        exp = expected.get(hp)
        want = (exp.requests, exp.queries, exp.hits) if exp else (0, 0, 0)
        assert (got.requests, got.queries, got.hits) == want, hp
        assert got.v0_hit_rate == pytest.approx(exp.v0_hit_rate if exp else 0.0, abs=1e-9), hp
    if strategy == "Designate":
        assert set(expected) == {prefill[0], decode[0]}  # the other nodes never saw a request


@pytest.mark.parametrize(("strategy", "batch"), [("RR", 1), ("Designate", 10)])
async def test_store_connector_external_counters_match_the_model(tmp_path, strategy, batch):
    """connector="store": every node runs MooncakeStoreConnector against one mock master with a common
    PYTHONHASHSEED; puts finish before the prefill answers (the default put delay 0) so the model's
    "the puts landed" assumption holds. The prefill nodes look the store up too (vLLM's enable_lookup)."""
    import json

    from kvtest.services.mooncake_master import MooncakeMaster

    master = MooncakeMaster("mock", log_dir=tmp_path, in_process=True)
    master.start()
    try:
        mc = tmp_path / "mooncake.json"
        mc.write_text(json.dumps({"master_server_address": master.rpc_addr, "global_segment_size": "16MB"}))
        env = {"MOONCAKE_CONFIG_PATH": str(mc), "PYTHONHASHSEED": "0"}
        kv = {"kv_connector": "MooncakeStoreConnector", "kv_role": "kv_both"}
        async with fake_vllm_nodes(
            4,
            model="tiny",
            block_size=16,
            sim_env=env,
            kv_transfer_config=kv,
        ) as nodes:
            hostports = [n.url.removeprefix("http://") for n in nodes]
            prefill, decode = hostports[:2], hostports[2:]
            cfg = ProxyConfig(prefill=prefill, decode=decode, strategy="designate", flow="store")
            async with PDProxy(cfg) as proxy:
                spec = DatasetSpec(
                    strategy=strategy, request_num=10, prefill=prefill, decode=decode, model="tiny",
                    seed=5, max_tokens=5, context_len=40, same_prefix_batch=batch,
                )  # fmt: skip
                requests = build(spec)
                before = await scrape_all(hostports)
                model = ClusterModel(builtin_tokenize, block_size=16, flow="pd", connector="store")
                for _ in range(2):
                    results = await send_all(proxy.url, requests)
                    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
                    model.run(requests)
                after = await scrape_all(hostports)
    finally:
        master.stop()
    expected = model.counters()
    assert sum(e.external_hits for e in expected.values()) > 0  # the store really supplied blocks
    for hp in hostports:
        got = delta(before[hp], after[hp])
        exp = expected.get(hp)
        want = (
            (exp.requests, exp.queries, exp.hits, exp.external_queries, exp.external_hits)
            if exp
            else (0,) * 5
        )
        assert (got.requests, got.queries, got.hits, got.external_queries, got.external_hits) == want, hp
