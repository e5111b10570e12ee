"""Decode in aggregate (one event per block boundary) gives the counters of one event per output token.

The pools are small so that decode steps run out of blocks and preempt, the case where a victim must be
brought up to the steps it had done; the test checks that this happened."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kvtest.replay.simulation import ReplayConfig, replay
from kvtest.replay.trace import load_trace

TRACE = Path(__file__).parents[2] / "fixtures" / "traces" / "mooncake_synthetic_trace.jsonl"


def _everything(r):  # type: ignore[no-untyped-def]
    return [(n.counters(), n.queue_s, n.ttft_s) for n in r.nodes], r.rejected, r.simulated_s, r.store


@pytest.mark.parametrize(
    "cfg",
    [
        ReplayConfig(nodes=2, cache_tokens=20_000, itl_ms=30.0, strategy="round_robin"),
        ReplayConfig(nodes=2, cache_tokens=20_000, block_size=32, strategy="prefix", store_tokens=200_000),
        ReplayConfig(nodes=2, cache_tokens=40_000, strategy="least_loaded", max_num_seqs=4, itl_ms=0.0),
        ReplayConfig(nodes=3, cache_tokens=20_000, strategy="kv_aware"),
    ],
    ids=["rr", "prefix+store", "least-loaded-itl0", "kv-aware"],
)
def test_aggregate_equals_token_by_token(cfg: ReplayConfig) -> None:
    trace = load_trace(TRACE, limit=120)
    fast = replay(trace, cfg)
    slow = replay(trace, replace(cfg, aggregate_decode=False))
    assert _everything(fast) == _everything(slow)
    assert sum(n.generation_tokens for n in fast.nodes) > 1000
    if cfg.itl_ms:
        assert fast.total().preemptions > 0, "the pools were meant to be small enough to preempt"
