"""Generated benchmark prompts: ShareGPT-like lengths with a shared prefix, and sonnet-style fixed prompts.

synthetic: input and output lengths are log-normal, roughly ShareGPT's shape after vLLM's filter (median
input ~160 tokens, median output ~200, long tails, clipped to 4..1024 and a 2048 total). A share of every
prompt (`shared_prefix_ratio`) is one common prefix, so prefix caching has something to find; the rest is
unique words of a fixed vocabulary. Lengths are drawn in tokens and turned into a word count with the
tokenizer's tokens-per-word on that vocabulary; `prompt_len` is then measured, so token totals are real.

sonnet: like vLLM's `--dataset-name sonnet`: an instruction, a fixed prefix of poem lines shared by every
prompt (`prefix_len` tokens), then lines drawn at random until `input_len` tokens. Lines come from a file
(`--dataset-path`, e.g. vLLM's benchmarks/sonnet.txt) or a built-in verse.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from kvtest.workload.sharegpt import SampleRequest

Tokenize = Callable[[str], list[int]]

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "ge", "hu", "ri", "so", "ta")
BUILTIN_VERSE = """When morning light comes slowly over stone
The river keeps the secrets of the hill
And every field remembers what was sown
Though winter made the patient valley still
A lantern burns beside the open door
The traveller counts the miles he has to go
The sea returns the echoes of the shore
And in the dark the quiet embers glow
Remember how the summer evenings fell
Like amber on the orchard and the lane
The hours we kept were more than we could tell
And what was lost returns as gentle rain
So let the seasons turn and turn again
The song outlasts the singer and the pen"""


def _vocab(size: int = 4096) -> list[str]:
    rng = random.Random(1234)  # fixed: the vocabulary is part of the format, not of the run's seed
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))))
    return sorted(words)


def _lognormal_len(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(rng.lognormvariate(math.log(median), sigma))))


def synthetic(
    num_requests: int,
    tokenize: Tokenize,
    *,
    seed: int = 0,
    shared_prefix_ratio: float = 0.0,
    input_median: float = 160,
    output_median: float = 200,
    output_len: int | None = None,
) -> list[SampleRequest]:
    if not 0.0 <= shared_prefix_ratio <= 1.0:
        raise ValueError("shared_prefix_ratio must be within 0..1")
    rng = random.Random(seed)
    vocab = _vocab()
    # Lengths are drawn in tokens; words per token comes from this tokenizer on the vocabulary itself.
    probe = vocab[:256]
    tokens_per_word = max(len(tokenize(" ".join(probe))) / len(probe), 1e-6)
    prefix_words = [rng.choice(vocab) for _ in range(round(1024 / tokens_per_word) + 1)]
    out = []
    for _ in range(num_requests):
        n_in = _lognormal_len(rng, input_median, 1.0, 4, 1024)
        n_words = max(1, round(n_in / tokens_per_word))
        shared = round(n_words * shared_prefix_ratio)
        words = prefix_words[:shared] + [rng.choice(vocab) for _ in range(n_words - shared)]
        prompt = " ".join(words)
        prompt_len = len(tokenize(prompt))
        if abs(prompt_len - n_in) > 0.1 * n_in and len(words) > 1:
            # One correction: this draw's words tokenized longer or shorter than the vocabulary average.
            keep = max(1, round(len(words) * n_in / prompt_len))
            words = (words + [rng.choice(vocab) for _ in range(keep - len(words))])[:keep]
            prompt = " ".join(words)
            prompt_len = len(tokenize(prompt))
        n_out = output_len or _lognormal_len(rng, output_median, 0.9, 4, 1024)
        out.append(SampleRequest(prompt, prompt_len, max(1, min(n_out, 2048 - prompt_len))))
    return out


def sonnet(
    num_requests: int,
    tokenize: Tokenize,
    *,
    seed: int = 0,
    lines: Sequence[str] | None = None,
    input_len: int = 550,
    output_len: int = 150,
    prefix_len: int = 200,
) -> list[SampleRequest]:
    poem = [ln for ln in (lines or BUILTIN_VERSE.splitlines()) if ln.strip()]
    if not poem:
        raise ValueError("sonnet dataset needs at least one non-empty line")
    if prefix_len > input_len:
        raise ValueError("sonnet prefix_len must not exceed input_len")
    rng = random.Random(seed)
    head = "Pick as many lines as you can from these poem lines:\n"
    prefix, i = head, 0
    while len(tokenize(prefix)) < prefix_len:
        prefix += poem[i % len(poem)] + "\n"
        i += 1
    out = []
    for _ in range(num_requests):
        prompt = prefix
        while len(tokenize(prompt)) < input_len:
            prompt += rng.choice(poem) + "\n"
        out.append(SampleRequest(prompt, len(tokenize(prompt)), output_len))
    return out
