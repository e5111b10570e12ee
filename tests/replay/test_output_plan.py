"""The replay's output plan from prompt bytes is the fake's plan_output, token for token."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvtest.replay.output_plan import plan_from_bytes
from simulators.vllm.tokenizer import ByteTokenizer, plan_output


@given(prompt=st.binary(min_size=1, max_size=3000), seed=st.integers(0, 2**31), n=st.integers(1, 40))
def test_equal_to_plan_output(prompt: bytes, seed: int, n: int) -> None:
    tok = ByteTokenizer()
    assert plan_from_bytes(tok, seed, prompt, n) == plan_output(tok, seed, list(prompt), n)
