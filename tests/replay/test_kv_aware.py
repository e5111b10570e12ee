"""kv_aware in the replay: the proxy's pick (kvtest.proxy.kv_aware.choose) over an index that the nodes'
block pools feed as they cache and evict (kvtest/replay/kv_index_feed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvtest.replay.simulation import ReplayConfig, Simulation, replay
from kvtest.replay.trace import TraceRequest, load_trace

TRACE = Path(__file__).parents[2] / "fixtures" / "traces" / "mooncake_synthetic_trace.jsonl"
TENANTS, TURNS = 4, 5


def conversations() -> list[TraceRequest]:
    """4 tenants, 5 turns each, one at a time: turn k of tenant t is the 4 + 2k Mooncake blocks
    t*1000, t*1000+1, ...; every turn repeats the previous turn's prompt and adds two blocks."""
    out = []
    for k in range(TURNS):
        for t in range(TENANTS):
            i = len(out)
            blocks = 4 + 2 * k
            out.append(
                TraceRequest(i, i * 10_000.0, 512 * blocks, 8, tuple(t * 1000 + j for j in range(blocks)))
            )
    return out


# hand-computed: turn k >= 1 finds turn k-1's prompt (2 + 2k blocks of 512 tokens) cached where it ran
ALL_TURNS_HOME = TENANTS * sum(512 * (2 + 2 * k) for k in range(1, TURNS))


def test_every_conversation_returns_to_the_node_that_holds_it() -> None:
    cfg = ReplayConfig(nodes=3, cache_tokens=200_000)  # 3 nodes, 4 tenants: round robin scatters them
    kv = replay(conversations(), ReplayConfig(**{**cfg.__dict__, "strategy": "kv_aware"}))
    rr = replay(conversations(), cfg)
    assert kv.total().local_hit_tokens == ALL_TURNS_HOME == 57_344
    assert all(n.requests % TURNS == 0 for n in kv.nodes), [n.requests for n in kv.nodes]
    assert rr.total().local_hit_tokens < ALL_TURNS_HOME


@pytest.mark.parametrize("block_size", [16, 32])
def test_the_index_holds_exactly_what_each_pool_caches(block_size: int) -> None:
    """After a replay with eviction, block hash -> {node: copies} equals the pools' own cache."""
    sim = Simulation(
        load_trace(TRACE, limit=150),
        ReplayConfig(nodes=3, strategy="kv_aware", cache_tokens=30_000, block_size=block_size),
    )
    r = sim.run()
    index = sim.router.kv_index
    assert index is not None
    for i, e in enumerate(sim.engines):
        url = sim.router.urls[i]
        pool = {h: len(blocks) for h, blocks in e.kv.pool.cached_items()}
        held = {h: per[url] for h, per in index.copies.items() if url in per}
        assert held == pool
        assert index.blocks[url] == sum(pool.values())
    # small pools: blocks were evicted, so removals reached the index too
    assert r.total().prefix_cache_queries > 30_000 * 3
    assert sum(n.requests for n in r.nodes) + r.rejected == 150
