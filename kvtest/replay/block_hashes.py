"""The fake's chained block hashes of a replayed prompt, memoised per 512-token Mooncake block.

A block's vLLM hashes depend only on the hash of the block before it and on its own tokens (its hash_id
and length, tokens.py), so when the vLLM block size divides 512 the hashes of a Mooncake block are
computed once per (parent hash, hash_id, length) and reused by every prompt that repeats that prefix.
The hash function is the fake's (simulators.vllm.hashing: vLLM's hash_block_tokens with its NONE_HASH),
so the pool sees the bytes a fake node computes from the same token ids over HTTP.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from kvtest.replay.tokens import BLOCK_TOKENS
from simulators.vllm.hashing import BlockHasher, hash_block_tokens


class PromptHasher:
    def __init__(self, hasher: BlockHasher, memo_blocks: int = 16384) -> None:
        self.hasher = hasher
        self.block_size = hasher.block_size
        self.memo: OrderedDict[tuple[bytes, int, int], tuple[bytes, ...]] = OrderedDict()
        self.memo_blocks = memo_blocks
        self.memo_hits = 0
        self.memo_misses = 0

    def hashes(self, tokens: Sequence[int], hash_ids: Sequence[int] | None) -> list[bytes]:
        """The hashes of the prompt's full vLLM blocks (BlockHasher.hashes(tokens), memoised)."""
        bs = self.block_size
        if hash_ids is None or BLOCK_TOKENS % bs:
            return self.hasher.hashes(tokens)
        out: list[bytes] = []
        parent = self.hasher.root
        fn = self.hasher.hash_fn
        memo = self.memo
        n = len(tokens)
        for i, h in enumerate(hash_ids):
            start = i * BLOCK_TOKENS
            length = min(BLOCK_TOKENS, n - start)
            key = (parent, h, length)
            got = memo.get(key)
            if got is None:
                self.memo_misses += 1
                block: list[bytes] = []
                p = parent
                for s in range(start, start + length - length % bs, bs):
                    p = hash_block_tokens(fn, self.hasher.root, p, tokens[s : s + bs])
                    block.append(p)
                got = tuple(block)
                memo[key] = got
                if len(memo) > self.memo_blocks:
                    memo.popitem(last=False)
            else:
                self.memo_hits += 1
                memo.move_to_end(key)
            out.extend(got)
            if not got:
                break
            parent = got[-1]
        return out
