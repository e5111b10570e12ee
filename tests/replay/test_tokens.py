"""hash_ids -> token ids: the sharing a Mooncake trace states is the sharing the fake's block hashes see."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kvtest.replay.block_hashes import PromptHasher
from kvtest.replay.tokens import BLOCK_TOKENS, prompt_tokens
from simulators.vllm.hashing import BlockHasher

ENV = {"PYTHONHASHSEED": "0"}
ids_st = st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=4)
# small ids collide often between the two prompts, so shared prefixes are common
small_ids = st.lists(st.integers(0, 5), min_size=1, max_size=4)


def _length(ids: list[int], tail: int) -> int:
    return (len(ids) - 1) * BLOCK_TOKENS + tail


def _leading_shared(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@settings(max_examples=60)
@given(
    a=small_ids,
    b=small_ids,
    ta=st.integers(1, 512),
    tb=st.integers(1, 512),
    bs=st.sampled_from([16, 32, 512]),
)
def test_shared_blocks_are_exactly_the_shared_leading_hash_ids(
    a: list[int], b: list[int], ta: int, tb: int, bs: int
) -> None:
    pa, pb = prompt_tokens(a, _length(a, ta)), prompt_tokens(b, _length(b, tb))
    hasher = BlockHasher(bs, "sha256", ENV)
    ha, hb = hasher.hashes(pa), hasher.hashes(pb)
    shared = _leading_shared(ha, hb)
    k = _leading_shared(a, b)
    # tokens agree exactly through the k shared hash blocks (each cut to the shorter prompt's length) ...
    common = min(len(pa), len(pb), k * BLOCK_TOKENS)
    if k == min(len(a), len(b)):
        assert pa[:common] == pb[:common]
    # ... so vLLM's chained hashes share every full block inside them and none after
    assert shared == common // bs
    assert set(ha[shared:]).isdisjoint(hb[shared:])


@given(ids=ids_st, tail=st.integers(1, 512))
def test_lengths_and_vocabulary(ids: list[int], tail: int) -> None:
    n = _length(ids, tail)
    toks = prompt_tokens(ids, n)
    assert len(toks) == n
    assert all(0 <= t < 256 for t in toks)  # valid for the fake's byte tokenizer (and any vocabulary)


@given(x=st.integers(0, 2**64 - 1), y=st.integers(0, 2**64 - 1), bs=st.sampled_from([16, 32, 512]))
def test_distinct_ids_never_share_a_block(x: int, y: int, bs: int) -> None:
    if x == y:
        return
    bx = prompt_tokens([x], BLOCK_TOKENS)
    by = prompt_tokens([y], BLOCK_TOKENS)
    windows_x = {tuple(bx[i : i + bs]) for i in range(0, BLOCK_TOKENS, bs)}
    windows_y = {tuple(by[i : i + bs]) for i in range(0, BLOCK_TOKENS, bs)}
    assert windows_x.isdisjoint(windows_y)


@settings(max_examples=40)
@given(
    prompts=st.lists(st.tuples(small_ids, st.integers(1, 512)), min_size=1, max_size=6),
    bs=st.sampled_from([16, 32, 512]),
)
def test_memoised_hashes_equal_the_fakes(prompts: list[tuple[list[int], int]], bs: int) -> None:
    hasher = BlockHasher(bs, "sha256", ENV)
    memo = PromptHasher(BlockHasher(bs, "sha256", ENV), memo_blocks=3)
    for ids, tail in prompts:
        toks = prompt_tokens(ids, _length(ids, tail))
        assert memo.hashes(toks, ids) == hasher.hashes(toks)


def test_a_wrong_length_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="needs 2 hash_ids"):
        prompt_tokens([1], 600)
