"""The replay's no-HTTP path is the fake itself: the same trace posted over HTTP to in-process fake vLLM
nodes (token-id prompts, routed by the same Router) leaves every node with the counters the replay
reports. One request at a time, so both paths see the same order."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from kvtest.replay.routing import ReplayRouter
from kvtest.replay.simulation import ReplayConfig, replay
from kvtest.replay.tokens import prompt_tokens
from kvtest.replay.trace import load_trace
from simulators.vllm.server import fake_vllm_nodes

TRACE = Path(__file__).parents[2] / "fixtures" / "traces" / "mooncake_conversation_trace.jsonl"


@pytest.mark.parametrize("strategy", ["round_robin", "prefix"])
async def test_http_and_replay_give_identical_node_counters(strategy: str) -> None:
    # 30 requests, 5 output tokens each, far apart: each ends before the next arrives
    trace = [replace(t, arrival_ms=100_000.0 * t.index, output_length=min(t.output_length, 5))
             for t in load_trace(TRACE, limit=30)]  # fmt: skip
    zero = {"prefill_base_ms": 0, "ttft_ms_per_token": 0, "itl_ms": 0, "external_ms_per_token": 0}
    cfg = ReplayConfig(nodes=3, strategy=strategy, cache_tokens=48_000, **zero)  # type: ignore[arg-type]
    sim = cfg.sim_config()
    result = replay(trace, cfg)
    assert result.rejected > 0 and result.total().local_hit_tokens > 0  # both paths get exercised

    router = ReplayRouter(cfg.nodes, strategy, cfg.seed, cfg.prefix_tokens)
    async with (
        fake_vllm_nodes(
            cfg.nodes,
            block_size=cfg.block_size,
            num_gpu_blocks_override=sim.num_gpu_blocks_override,
            max_model_len=sim.max_model_len,
            seed=cfg.seed,
            sim_env=sim.sim_env,
        ) as nodes,
        httpx.AsyncClient(timeout=60) as client,
    ):
        rejected = 0
        for t in trace:
            assert t.hash_ids is not None
            prompt = prompt_tokens(t.hash_ids, t.input_length)
            body = {"model": "tiny", "prompt": prompt, "max_tokens": t.output_length}
            if t.input_length >= sim.resolved_max_model_len():
                resp = await client.post(nodes[0].url_for("v1/completions"), json=body)
                assert resp.status_code == 400, resp.text
                rejected += 1
                continue
            i = router.pick(prompt)
            resp = await client.post(nodes[i].url_for("v1/completions"), json=body)
            router.done(i)
            assert resp.status_code == 200, resp.text
        assert rejected == result.rejected
        for node, got in zip(nodes, result.nodes, strict=True):
            e = node.engine
            src = e.metrics.prompt_tokens_by_source
            http = {
                "requests": sum(e.metrics.request_success.values()),
                "prompt_tokens": e.metrics.prompt_tokens,
                "local_hit_tokens": src["local_cache_hit"],
                "computed_tokens": src["local_compute"],
                "prefix_cache_queries": e.kv.stats.queries,
                "prefix_cache_hits": e.kv.stats.hits,
                "preemptions": e.metrics.num_preemptions,
                "generation_tokens": e.metrics.generation_tokens,
            }
            assert http == {k: got.counters()[k] for k in http}
