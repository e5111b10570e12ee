"""The replay's KV events: each node's block pool reports straight into the kv_aware index.

Over HTTP the proxy hears a node's BlockStored / BlockRemoved / AllBlocksCleared through ZMQ
(kvtest/proxy/kv_aware.py); in the replay the same pool operations (simulators/vllm/prefix_cache.py)
call this recorder, which applies them to one KVIndex at once. So the index is what a subscriber with
no network delay would hold: the replay's kv_aware is the policy at its best, not its transport.
Hashes stay the pool's bytes (the proxy keys on vLLM's 64-bit ints; the index does not care).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kvtest.proxy.kv_aware import KVIndex
from simulators.vllm.kv_events import KVEventRecorder


class IndexFeed(KVEventRecorder):
    wants_token_ids = False

    def __init__(self, index: KVIndex, node: str) -> None:
        super().__init__(int_hashes=False)
        self.index = index
        self.node = node

    def stored(
        self,
        hashes: Sequence[bytes],
        parent: bytes | None,
        token_ids: list[int],
        block_size: int,
        extra_keys: list[tuple[Any, ...] | None],
    ) -> None:
        self.index.store(self.node, hashes)

    def removed(self, block_hash: bytes) -> None:
        self.index.remove(self.node, block_hash)

    def cleared(self) -> None:
        self.index.clear(self.node)
