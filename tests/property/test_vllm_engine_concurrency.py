"""Concurrent requests on a small pool (preemptions, waiting, aborts): the engine never leaks or
double-frees a block, every request ends, and the cache index stays consistent with the blocks."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.vllm.config import SimConfig
from simulators.vllm.engine import Engine
from simulators.vllm.tokenizer import ByteTokenizer

request_st = st.tuples(
    st.integers(0, 2),  # shared-prefix family
    st.integers(1, 24),  # prompt length
    st.integers(1, 8),  # max_tokens
    st.integers(0, 20),  # arrival delay, virtual ms
    st.booleans(),  # the client gives up after its first token
)


@settings(max_examples=40, deadline=None)
@given(
    block_size=st.sampled_from([2, 4]),
    num_blocks=st.integers(8, 20),
    max_num_seqs=st.integers(1, 4),
    reqs=st.lists(request_st, min_size=1, max_size=8),
)
def test_engine_keeps_the_pool_consistent(
    block_size: int, num_blocks: int, max_num_seqs: int, reqs: list[tuple[int, int, int, int, bool]]
) -> None:
    cfg = SimConfig(
        block_size=block_size,
        num_gpu_blocks_override=num_blocks,
        max_num_seqs=max_num_seqs,
        sim_virtual_clock=True,
        sim_ttft_ms_per_token=0.5,
        sim_itl_ms=1,
        sim_env={"PYTHONHASHSEED": "0"},
    )
    engine = Engine(cfg, ByteTokenizer())
    capacity = (num_blocks - 1) * block_size

    async def one(family: int, n: int, max_tokens: int, delay: int, give_up: bool) -> None:
        await engine.clock.sleep(delay / 1000)
        prompt = [family * 10 + i % 5 for i in range(n)]
        req = engine.new_request(prompt, min(max_tokens, capacity - n))
        gen = engine.generate(req)
        try:
            async for _ in gen:
                if give_up:
                    break
        finally:
            await gen.aclose()
        assert req.finish_reason in ("length", "abort")

    async def run() -> None:
        await asyncio.gather(*(one(*r) for r in reqs if r[1] < capacity))

    asyncio.run(run())
    kv = engine.kv
    pool = kv.pool
    assert engine.num_running == 0 and engine.num_waiting == 0
    assert len(pool.free_queue) == num_blocks - 1 and kv.usage == 0.0
    assert all(b.ref_cnt == 0 for b in pool.blocks[1:]) and not kv.req_blocks
    cached = list(pool.cached_items())
    for h, blocks in cached:
        assert blocks and all(b.block_hash == h for b in blocks)
    assert sum(len(v) for _, v in cached) == sum(b.block_hash is not None for b in pool.blocks)
    m = engine.metrics
    done = sum(1 for r in reqs if r[1] < capacity)
    assert m.request_success["length"] + m.request_success["abort"] == done
