"""The fake's output plan (simulators/vllm/tokenizer.py plan_output) for a prompt of byte tokens, from its
bytes: plan_output hashes the prompt as int64s (array("q")), which costs milliseconds for a 12k-token
list; a byte token's int64 is that byte and seven zeros (little-endian), written by one slice assignment.
Same digest, same seed, same choices: tests/replay/test_output_plan.py holds them equal."""

from __future__ import annotations

import hashlib
import random
import sys

from simulators.vllm.tokenizer import Tokenizer


def plan_from_bytes(tok: Tokenizer, seed: int, prompt: bytes, n: int, sample_index: int = 0) -> list[int]:
    if sys.byteorder != "little":  # array("q") is native-endian: only little-endian is laid out here
        from simulators.vllm.tokenizer import plan_output

        return plan_output(tok, seed, list(prompt), n, sample_index)
    buf = bytearray(8 * len(prompt))
    buf[0::8] = prompt
    h = hashlib.blake2b(buf, digest_size=16, key=f"{seed}:{sample_index}".encode())
    rng = random.Random(int.from_bytes(h.digest(), "little"))
    return rng.choices(tok.output_vocab, k=n)
