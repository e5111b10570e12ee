"""hash_ids -> prompt token ids, deterministically, without building text.

Each 512-token Mooncake block becomes 32 windows of 16 tokens; window w of block id h is the 8 bytes of h
(little-endian), then w, then 7 filler bytes. So
- two prompts share exactly the tokens of the blocks their leading hash_ids share: a block's tokens depend
  on its id alone, and vLLM's chained block hash (parent, tokens) then shares exactly the leading blocks;
- distinct ids never give equal windows (the id is in every 16 tokens), so at any vLLM block size that
  divides 512 (16, 32, 512...) a block of one id never equals a block of another;
- a partial last block is the first `input_length mod 512` tokens of that id's block: prompts that end in
  the same partial block share its full vLLM blocks, as far as both are long;
- every token is a byte (0-255): valid in any vocabulary, the fake's byte tokenizer's included, so the
  same ids can be posted to a fake node over HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence

BLOCK_TOKENS = 512
WINDOW = 16
_FILLER = bytes((0xA5, 0x5A, 0xC3, 0x3C, 0x96, 0x69, 0x0F))
_SUFFIXES = [bytes((w,)) + _FILLER for w in range(BLOCK_TOKENS // WINDOW)]
MAX_HASH_ID = (1 << 64) - 1


def block_bytes(hash_id: int, n: int = BLOCK_TOKENS) -> bytes:
    """The first n tokens (as bytes) of block `hash_id`."""
    if not 0 <= hash_id <= MAX_HASH_ID:
        raise ValueError(f"hash_id {hash_id} is outside 0..2**64-1")
    if not 0 < n <= BLOCK_TOKENS:
        raise ValueError(f"a block holds 1..{BLOCK_TOKENS} tokens, not {n}")
    head = hash_id.to_bytes(8, "little")
    return b"".join([head + s for s in _SUFFIXES])[:n]


def prompt_bytes(hash_ids: Sequence[int], input_length: int) -> bytes:
    full, tail = divmod(input_length, BLOCK_TOKENS)
    if len(hash_ids) != full + (1 if tail else 0):
        raise ValueError(f"input_length {input_length} needs {full + (1 if tail else 0)} hash_ids")
    parts = [block_bytes(h) for h in hash_ids[:full]]
    if tail:
        parts.append(block_bytes(hash_ids[full], tail))
    return b"".join(parts)


def prompt_tokens(hash_ids: Sequence[int], input_length: int) -> list[int]:
    """The prompt's token ids: `input_length` of them, 512 per hash_id, the last block cut short."""
    return list(prompt_bytes(hash_ids, input_length))
