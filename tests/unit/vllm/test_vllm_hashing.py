"""Block hashes equal the ones vLLM computes.

The expected values are computed here the way vLLM's code does it, written out independently:
vllm/utils/hashing.py `sha256` = sha256(pickle.dumps(obj, HIGHEST_PROTOCOL)), `sha256_cbor` =
sha256(cbor2.dumps(obj, canonical=True)), `xxhash` = xxh3_128 over the pickle; and
vllm/v1/core/kv_cache_utils.py `init_none_hash` (hash_fn(PYTHONHASHSEED), else os.urandom(32)),
`hash_block_tokens` (hash_fn((parent or NONE_HASH, tuple(tokens), extra_keys))),
`generate_block_hash_extra_keys` (cache_salt in the first block only).
"""

from __future__ import annotations

import hashlib
import pickle

import cbor2
import pytest
import xxhash

from simulators.vllm.hashing import BlockHasher


def _pickle_sha(obj: object) -> bytes:
    return hashlib.sha256(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).digest()


def test_sha256_chain_matches_vllm_recipe() -> None:
    tokens = list(range(40))
    got = BlockHasher(16, "sha256", env={"PYTHONHASHSEED": "0"}).hashes(tokens)
    root = _pickle_sha("0")
    h0 = _pickle_sha((root, tuple(range(16)), None))
    h1 = _pickle_sha((h0, tuple(range(16, 32)), None))
    assert got == [h0, h1]  # the 8-token tail is not a full block: not hashed


def test_sha256_cbor_and_xxhash_variants() -> None:
    tokens = [5] * 4
    env = {"PYTHONHASHSEED": "42"}
    root_cbor = hashlib.sha256(cbor2.dumps("42", canonical=True)).digest()
    exp = hashlib.sha256(cbor2.dumps((root_cbor, (5, 5, 5, 5), None), canonical=True)).digest()
    assert BlockHasher(4, "sha256_cbor", env=env).hashes(tokens) == [exp]
    root_xx = xxhash.xxh3_128_digest(pickle.dumps("42", protocol=pickle.HIGHEST_PROTOCOL))
    block = pickle.dumps((root_xx, (5, 5, 5, 5), None), protocol=pickle.HIGHEST_PROTOCOL)
    exp_xx = xxhash.xxh3_128_digest(block)
    assert BlockHasher(4, "xxhash", env=env).hashes(tokens) == [exp_xx]


def test_without_pythonhashseed_each_process_gets_its_own_root() -> None:
    a = BlockHasher(4, env={}).hashes([1, 2, 3, 4])
    b = BlockHasher(4, env={}).hashes([1, 2, 3, 4])
    assert a != b  # so two instances share no keys, as the GPU notes observed
    c = BlockHasher(4, env={"PYTHONHASHSEED": "7"}).hashes([1, 2, 3, 4])
    d = BlockHasher(4, env={"PYTHONHASHSEED": "7"}).hashes([1, 2, 3, 4])
    assert c == d


def test_cache_salt_only_in_first_block() -> None:
    hasher = BlockHasher(2, env={"PYTHONHASHSEED": "0"})
    root = _pickle_sha("0")
    got = hasher.hashes([1, 2, 3, 4], cache_salt="s")
    # vLLM 0.32 tags the salt with its source (kv_cache_utils.generate_block_hash_extra_keys)
    h0 = _pickle_sha((root, (1, 2), (("cache_salt", "s"),)))
    assert got == [h0, _pickle_sha((h0, (3, 4), None))]


def test_incremental_extend_equals_one_shot() -> None:
    hasher = BlockHasher(3, env={"PYTHONHASHSEED": "1"})
    tokens = list(range(20))
    inc: list[bytes] = []
    for n in range(len(tokens) + 1):
        hasher.extend(inc, tokens[:n])
    assert inc == hasher.hashes(tokens)


def test_unknown_algorithm_refused() -> None:
    with pytest.raises(ValueError, match="Unsupported hash function"):
        BlockHasher(16, "md5")
