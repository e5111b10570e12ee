"""Hypothesis stateful test: the fake's engine vs a plain reference model of vLLM V1's prefix cache.

The reference keeps the free queue as a plain Python list of slots (each a block hash or None), head =
next to be reused, and applies vLLM's rules one by one (kv_cache_manager.get_computed_blocks: longest
prefix, capped at num_tokens - 1; block_pool: pops from the head evict, a request's blocks are freed
in reverse, cached ones to the tail and unhashed ones to the head (vLLM 0.32); cached as soon as
allocated; generated tokens fill and cache blocks, up to the last computed token). Requests run
one at a time through the real Engine (zero latency); after each, hit counters,
the set of cached blocks and the free-queue order must equal the model's.
"""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulators.vllm.config import SimConfig
from simulators.vllm.engine import Engine
from simulators.vllm.tokenizer import ByteTokenizer

ENV = {"PYTHONHASHSEED": "0"}


class RefModel:
    """Free queue as a list of slots: None, or (hash, when it was cached). Several slots may share a
    hash; lookup takes the one cached first (block_pool.get_cached_block returns the first inserted)."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.bs = block_size
        self.queue: list[tuple[bytes, int] | None] = [None] * (num_blocks - 1)  # block 0 is the null block
        self.queries = 0
        self.hits = 0
        self.seq = 0

    def _oldest(self, h: bytes) -> tuple[bytes, int] | None:
        copies = [s for s in self.queue if s is not None and s[0] == h]
        return min(copies, key=lambda s: s[1]) if copies else None

    def run(self, hashes_all: list[bytes], prompt_len: int, out_len: int) -> int:
        bs = self.bs
        prompt_hashes = hashes_all[: prompt_len // bs]
        mine: list[tuple[bytes, int] | None] = []
        for h in prompt_hashes[: (prompt_len - 1) // bs]:
            slot = self._oldest(h)
            if slot is None:
                break
            mine.append(slot)
        hit = len(mine)
        self.queries += prompt_len
        self.hits += hit * bs
        for slot in mine:  # touch: take the hit blocks out of the free queue
            self.queue.remove(slot)
        computed = prompt_len + out_len - 1  # the last sampled token's KV is never computed
        need = -(-max(prompt_len, computed) // bs) - hit
        for _ in range(need):
            self.queue.pop(0)  # evicts whatever hash that slot held
            mine.append(None)
        full = computed // bs
        for i in range(hit, min(full, len(mine))):
            mine[i] = (hashes_all[i], self.seq)
            self.seq += 1
        freed = list(reversed(mine))  # a request's blocks are freed tail first
        # vLLM 0.32 BlockPool.free_blocks: never-hittable (unhashed) blocks to the front, in that order;
        # cached ones to the back
        self.queue[:0] = [s for s in freed if s is None]
        self.queue.extend(s for s in freed if s is not None)
        return hit * bs

    def hashes(self) -> list[bytes | None]:
        return [s[0] if s else None for s in self.queue]


class PrefixCacheMachine(RuleBasedStateMachine):
    @initialize(block_size=st.sampled_from([1, 2, 4, 16]), num_blocks=st.integers(4, 24))
    def setup(self, block_size: int, num_blocks: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.bs = block_size
        cfg = SimConfig(model="tiny", block_size=block_size, num_gpu_blocks_override=num_blocks, sim_env=ENV)
        self.engine = Engine(cfg, ByteTokenizer())
        self.model = RefModel(num_blocks, block_size)
        self.capacity = (num_blocks - 1) * block_size
        self.last_hit = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.close()

    @rule(
        prefix=st.integers(0, 3),
        prefix_len=st.integers(0, 40),
        suffix=st.lists(st.integers(0, 3), max_size=12),
        max_tokens=st.integers(1, 6),
    )
    def request(self, prefix: int, prefix_len: int, suffix: list[int], max_tokens: int) -> None:
        prompt = [prefix * 10 + (i % 7) for i in range(prefix_len)] + suffix
        if not prompt or len(prompt) + max_tokens > self.capacity:
            return
        req = self.engine.new_request(prompt, max_tokens)

        async def go() -> list[int]:
            return [t async for t in self.engine.generate(req)]

        out = self.loop.run_until_complete(go())
        assert len(out) == max_tokens and req.finish_reason == "length"
        hashes_all = self.engine.hasher.hashes(prompt + out)
        expected = self.model.run(hashes_all, len(prompt), len(out))
        assert req.num_cached_tokens == expected

    @invariant()
    def counters_agree(self) -> None:
        if not hasattr(self, "engine"):
            return
        s = self.engine.kv.stats
        assert (s.queries, s.hits) == (self.model.queries, self.model.hits)

    @invariant()
    def free_queue_agrees(self) -> None:
        if not hasattr(self, "engine"):
            return
        pool = self.engine.kv.pool
        got = [pool.blocks[i].block_hash for i in pool.free_queue.block_ids()]
        assert got == self.model.hashes()
        assert self.engine.kv.usage == 0.0


PrefixCacheMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestPrefixCache = PrefixCacheMachine.TestCase
