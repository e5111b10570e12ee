"""ShareGPT prompts, sampled the way vLLM's benchmark does (vllm/benchmarks/datasets.py ShareGPTDataset).

Keep entries with at least two turns; shuffle with the seed; take turn 0 as the prompt and turn 1's token
count as the output length (or a fixed --sharegpt-output-len); drop pairs that fail is_valid_sequence
(prompt or output shorter than 4 tokens, prompt longer than 1024, prompt + output longer than 2048; the
output minimum is skipped when the output length is fixed); if too few remain, oversample with
random.choice on the same seeded generator (maybe_oversample_requests).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SampleRequest:
    prompt: str
    prompt_len: int
    expected_output_len: int


def is_valid_sequence(
    prompt_len: int,
    output_len: int,
    *,
    min_len: int = 4,
    max_prompt_len: int = 1024,
    max_total_len: int = 2048,
    skip_min_output_len_check: bool = False,
) -> bool:
    too_short = prompt_len < min_len or (not skip_min_output_len_check and output_len < min_len)
    return not (too_short or prompt_len > max_prompt_len or prompt_len + output_len > max_total_len)


def load(path: str | Path) -> list[dict[str, object]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{path}: a ShareGPT file is a JSON list of {{'conversations': [...]}} entries")
    return [e for e in data if isinstance(e, dict) and len(e.get("conversations") or []) >= 2]


def sample(
    entries: list[dict[str, object]],
    num_requests: int,
    tokenize: Callable[[str], list[int]],
    *,
    seed: int = 0,
    output_len: int | None = None,
) -> list[SampleRequest]:
    rng = random.Random(seed)
    entries = list(entries)
    rng.shuffle(entries)
    out: list[SampleRequest] = []
    for entry in entries:
        if len(out) >= num_requests:
            break
        turns = entry["conversations"]
        assert isinstance(turns, list)
        prompt, completion = str(turns[0]["value"]), str(turns[1]["value"])
        prompt_len = len(tokenize(prompt))
        new_output_len = len(tokenize(completion)) if output_len is None else output_len
        if not is_valid_sequence(
            prompt_len, new_output_len, skip_min_output_len_check=output_len is not None
        ):
            continue
        out.append(SampleRequest(prompt, prompt_len, new_output_len))
    if out and len(out) < num_requests:
        # vLLM's maybe_oversample_requests: random.choice per missing request, on the same seeded state
        out += [rng.choice(out) for _ in range(num_requests - len(out))]
    return out
