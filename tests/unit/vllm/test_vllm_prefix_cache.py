"""The block pool and lookup behave as vLLM V1's (sources cited in simulators/vllm/prefix_cache.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulators.vllm.hashing import BlockHasher
from simulators.vllm.prefix_cache import KVCacheManager

HASHER = BlockHasher(4, env={"PYTHONHASHSEED": "0"})


@dataclass
class Req:
    request_id: str
    tokens: list[int]
    block_hashes: list[bytes] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_preemptions: int = 0

    def __post_init__(self) -> None:
        self.block_hashes = HASHER.hashes(self.tokens)

    @property
    def num_tokens(self) -> int:
        return len(self.tokens)


def run(kv: KVCacheManager, req: Req) -> int:
    blocks, hit = kv.get_computed_blocks(req)
    assert kv.allocate_slots(req, req.num_tokens - hit, blocks) is not None
    kv.free(req.request_id)
    return hit


def test_fully_cached_prompt_hits_all_but_the_last_token_rounded_down() -> None:
    kv = KVCacheManager(64, 4)
    assert run(kv, Req("a", list(range(8)))) == 0
    # 8 tokens cached, the cap is n-1 = 7 -> one full block of 4
    assert run(kv, Req("b", list(range(8)))) == 4
    # 9 tokens: cap 8 -> both blocks
    assert run(kv, Req("c", list(range(9)))) == 8
    assert (kv.stats.queries, kv.stats.hits) == (25, 12)


def test_longest_prefix_stops_at_first_miss() -> None:
    kv = KVCacheManager(64, 4)
    run(kv, Req("a", [*list(range(12)), 99]))
    other = [*list(range(4)), 50, 51, 52, 53, *list(range(8, 12)), 99]
    assert run(kv, Req("b", other)) == 4  # block 3 matches by content but its parent differs


def test_null_block_and_usage() -> None:
    kv = KVCacheManager(5, 4)
    assert kv.pool.num_free_blocks == 4  # block 0 is vLLM's null block
    req = Req("a", list(range(8)))
    blocks, _ = kv.get_computed_blocks(req)
    kv.allocate_slots(req, 8, blocks)
    assert kv.usage == 0.5
    assert kv.allocate_slots(Req("b", list(range(100, 120))), 20) is None  # 5 blocks > 2 free
    kv.free("a")
    assert kv.usage == 0.0


def test_freed_blocks_go_to_the_tail_in_reverse_so_tail_blocks_are_evicted_first() -> None:
    kv = KVCacheManager(9, 4)
    a = Req("a", list(range(12)))  # 3 blocks: ids 1, 2, 3
    blocks, _ = kv.get_computed_blocks(a)
    kv.allocate_slots(a, 12, blocks)
    assert kv.block_ids("a") == [1, 2, 3]
    kv.free("a")
    assert kv.pool.free_queue.block_ids() == [4, 5, 6, 7, 8, 3, 2, 1]
    # 6 fresh blocks: takes 4..8 then evicts block 3 (a's tail), so a's first two blocks still hit
    b = Req("b", list(range(100, 124)))
    kv.allocate_slots(b, 24, [])
    kv.free("b")
    assert run(kv, Req("c", [*list(range(12)), 7])) == 8


def test_blocks_are_cached_as_soon_as_allocated() -> None:
    kv = KVCacheManager(64, 4)
    a = Req("a", list(range(8)))
    blocks, _ = kv.get_computed_blocks(a)
    kv.allocate_slots(a, 8, blocks)
    # a is still running: a concurrent identical prompt already hits (vLLM caches at allocation)
    b = Req("b", [*list(range(8)), 1])
    _, hit = kv.get_computed_blocks(b)
    assert hit == 8


def test_prefix_caching_disabled_never_hits_and_counts_nothing() -> None:
    kv = KVCacheManager(64, 4, enable_caching=False)
    run(kv, Req("a", list(range(8))))
    assert run(kv, Req("b", list(range(8)))) == 0
    assert kv.stats.queries == 0


def test_unhashed_blocks_go_to_the_head_to_be_reused_first() -> None:
    # vLLM 0.32 block_pool.py BlockPool.free_blocks: a block with no hash can never be hit, so it is
    # prepended (reused first); cached blocks are appended (LRU)
    kv = KVCacheManager(9, 4)
    a = Req("a", list(range(10)))  # blocks 1, 2 full (hashed), block 3 holds 2 tokens (no hash)
    blocks, _ = kv.get_computed_blocks(a)
    kv.allocate_slots(a, 10, blocks)
    kv.free("a")
    assert kv.pool.free_queue.block_ids() == [3, 4, 5, 6, 7, 8, 2, 1]
