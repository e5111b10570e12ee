"""A shared Mooncake store of a given capacity, as MooncakeStoreConnector (V1) sees it, for the replay.

The connector's semantics (simulators/vllm/connectors/store.py, after vLLM's store/worker.py and
store/scheduler.py): one key per FULL block of the prompt (the block hash names it; every node of one
model has the same key prefix, so the hash alone is the key here); lookup = longest present prefix of the
prompt's keys, cut back to align(num_tokens - 1) when it covers the whole prompt (the n-1 cap); a hit
beyond the local prefix cache is loaded (an external hit); after the first prefill the producer puts
the keys the store lacks (batch_is_exist, then put: one copy, the first put wins).

The store's (simulators/mooncake/master.py, after master_service.cpp): objects of one size (a block), so
capacity is a block count; a read (the load's get) renews an object's lease, and eviction drops the
objects with the oldest leases, `eviction_ratio` (5%) of them at a time, when a put finds no room, and
down to the high watermark (90%) when usage passes it. The master's eviction thread runs every 10 ms; on
the replay's clock a put and the eviction it triggers happen at one instant, so no put is lost.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from simulators.vllm.kv_connector import NoKVConnector
from simulators.vllm.request import SimRequest

EVICTION_RATIO = 0.05
HIGH_WATERMARK = 0.90


@dataclass(slots=True)
class StoreStats:
    lookups: int = 0
    lookup_hit_blocks: int = 0
    loads: int = 0
    loaded_blocks: int = 0
    puts: int = 0  # keys put
    put_skipped: int = 0  # keys already there (first put wins)
    evictions: int = 0  # eviction passes
    evicted_blocks: int = 0


class SharedStore:
    """Block keys with LRU-by-lease order; capacity in blocks (None: unbounded)."""

    def __init__(self, capacity_blocks: int | None) -> None:
        if capacity_blocks is not None and capacity_blocks < 1:
            raise ValueError("a shared store holds at least one block")
        self.capacity = capacity_blocks
        self.keys: OrderedDict[bytes, None] = OrderedDict()  # head: oldest lease
        self.stats = StoreStats()

    def __len__(self) -> int:
        return len(self.keys)

    def present_prefix(self, hashes: list[bytes]) -> int:
        n = 0
        keys = self.keys
        for h in hashes:
            if h not in keys:
                break
            n += 1
        return n

    def load(self, hashes: list[bytes]) -> None:
        """A get renews the lease of each key it reads."""
        keys = self.keys
        for h in hashes:
            keys.move_to_end(h)
        self.stats.loads += 1
        self.stats.loaded_blocks += len(hashes)

    def _evict(self, fraction: float) -> None:
        n = min(len(self.keys), max(1, math.ceil(len(self.keys) * fraction)))
        for _ in range(n):
            self.keys.popitem(last=False)
        self.stats.evictions += 1
        self.stats.evicted_blocks += n

    def put(self, hashes: list[bytes]) -> None:
        keys = self.keys
        cap = self.capacity
        for h in hashes:
            if h in keys:
                self.stats.put_skipped += 1
                continue
            if cap is not None and len(keys) >= cap:
                self._evict(EVICTION_RATIO)
            keys[h] = None
            self.stats.puts += 1
        if cap is not None and len(keys) > HIGH_WATERMARK * cap:
            used = len(keys) / cap
            self._evict(max(EVICTION_RATIO, used - HIGH_WATERMARK + EVICTION_RATIO))


class SharedStoreConnector(NoKVConnector):
    """One node's MooncakeStoreConnector (kv_both) on a SharedStore: the engine's KVConnector hooks, plus
        and the save (after its first prefill) the replay calls.

    The fake's V1 connector looks up in an async prepare() before the request waits; on the replay's clock
    a request can wait long enough for the store to evict what that early lookup saw, so the lookup is made
    where vLLM's scheduler asks for it, when the request is about to be scheduled."""

    def __init__(self, store: SharedStore, block_size: int) -> None:
        self.store = store
        self.block_size = block_size

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        """The store's longest present prefix beyond the local hits, looked up when the scheduler
        considers the request (each time it does, as vLLM's scheduler asks its connector)."""
        bs = self.block_size
        st = self.store.stats
        st.lookups += 1
        if request.num_tokens < bs:
            return 0
        n = self.store.present_prefix(request.block_hashes[: request.num_prompt_tokens // bs])
        st.lookup_hit_blocks += n
        hit = n * bs
        if hit >= request.num_tokens:
            hit = min(hit, (request.num_tokens - 1) // bs * bs)
        return max(0, hit - num_local_computed_tokens)

    def update_state_after_alloc(
        self, request: SimRequest, block_ids: list[int], num_external_tokens: int
    ) -> None:
        if num_external_tokens:
            bs = self.block_size
            first = request.num_local_cached_tokens // bs
            last = (request.num_local_cached_tokens + num_external_tokens) // bs
            self.store.load(request.block_hashes[first:last])

    def save(self, req: SimRequest) -> None:
        if req.output_token_ids or req.num_preemptions:
            return
        self.store.put(req.block_hashes[: req.num_prompt_tokens // self.block_size])

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        return False, None
