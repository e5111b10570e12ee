"""Block hashing exactly as vLLM V1 does it.

Mirrors vllm/utils/hashing.py (sha256, sha256_cbor, xxhash, xxhash_cbor) and
vllm/v1/core/kv_cache_utils.py (init_none_hash, hash_block_tokens, get_request_block_hasher):
a block's hash is hash_fn((parent_hash or NONE_HASH, tuple(block_token_ids), extra_keys)), only full
blocks are hashed, and NONE_HASH is hash_fn(PYTHONHASHSEED) when that variable is set, else 32 random
bytes (so two processes only agree on keys when they share PYTHONHASHSEED).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any

HashFn = Callable[[Any], bytes]


def sha256(obj: Any) -> bytes:
    return hashlib.sha256(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).digest()


def sha256_cbor(obj: Any) -> bytes:
    import cbor2  # imported lazily: only this algorithm needs it

    return hashlib.sha256(cbor2.dumps(obj, canonical=True)).digest()


def xxhash(obj: Any) -> bytes:
    import xxhash as _xxhash

    return _xxhash.xxh3_128_digest(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def xxhash_cbor(obj: Any) -> bytes:
    import cbor2
    import xxhash as _xxhash

    return _xxhash.xxh3_128_digest(cbor2.dumps(obj, canonical=True))


HASH_FUNCTIONS: dict[str, HashFn] = {
    "sha256": sha256,
    "sha256_cbor": sha256_cbor,
    "xxhash": xxhash,
    "xxhash_cbor": xxhash_cbor,
}


def hash_fn_by_name(name: str) -> HashFn:
    try:
        return HASH_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"Unsupported hash function: {name}") from None


def none_hash(hash_fn: HashFn, env: dict[str, str] | None = None) -> bytes:
    """The parent hash of every first block (vLLM's init_none_hash)."""
    seed = (os.environ if env is None else env).get("PYTHONHASHSEED")
    if seed is None:
        return os.urandom(32)
    return hash_fn(seed)


def hash_block_tokens(
    hash_fn: HashFn,
    root: bytes,
    parent: bytes | None,
    block_token_ids: Sequence[int],
    extra_keys: tuple[Any, ...] | None = None,
) -> bytes:
    # vLLM tests `if not parent_block_hash`, so an empty parent also falls back to NONE_HASH.
    return hash_fn((parent or root, tuple(block_token_ids), extra_keys))


class BlockHasher:
    """Computes the chained hashes of a token sequence's full blocks, incrementally.

    `extend(hashes, token_ids)` appends hashes for the full blocks of `token_ids` not yet hashed, the
    way vLLM's request_block_hasher runs each time tokens are appended to a request. `cache_salt`
    goes into the first block's extra keys only, tagged with its source as vLLM 0.32's
    generate_block_hash_extra_keys does (`(("cache_salt", salt),)`; before 0.32: `(salt,)`).
    """

    def __init__(self, block_size: int, algo: str = "sha256", env: dict[str, str] | None = None) -> None:
        self.block_size = block_size
        self.algo = algo
        self.hash_fn = hash_fn_by_name(algo)
        self.root = none_hash(self.hash_fn, env)

    def extend(self, hashes: list[bytes], token_ids: Sequence[int], cache_salt: str | None = None) -> None:
        bs = self.block_size
        start = len(hashes) * bs
        n = len(token_ids)
        fn = self.hash_fn
        parent = hashes[-1] if hashes else self.root
        while start + bs <= n:
            extra = (("cache_salt", cache_salt),) if (cache_salt and start == 0) else None
            parent = fn((parent, tuple(token_ids[start : start + bs]), extra))
            hashes.append(parent)
            start += bs

    def hashes(self, token_ids: Sequence[int], cache_salt: str | None = None) -> list[bytes]:
        out: list[bytes] = []
        self.extend(out, token_ids, cache_salt)
        return out
