"""The seed's prefix-caching dataset (test_prefix_caching.py), reproducible.

One JSON object per line, keys in the seed's order::

    {"model": M, "max_tokens": 100, "prompt": "Shared context #0: This is long context. ... Question 0:
     Summarize the context.", "user": "prefill=10.0.13.1:8101;decode=10.0.14.1:8200"}

The proxy reads the `user` field to pick the prefill and decode node. Strategies (the seed's three):
Random (seeded choice per request), Designate (the first --prefill / --decode given), RR (round robin over
prefill; decode random by default, as the seed's README says its decode was when prefill was RR).

Every random choice comes from `random.Random(seed)`, and the file is written with fixed key order and
separators, so the same spec gives a byte-identical file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Strategy = Literal["Random", "Designate", "RR"]
STRATEGIES: tuple[Strategy, ...] = ("Random", "Designate", "RR")
CONTEXT_SENTENCE = "This is long context. "


@dataclass(frozen=True)
class DatasetRequest:
    """One line of the dataset: an OpenAI completions body plus the seed's routing field."""

    model: str
    max_tokens: int
    prompt: str
    user: str

    @property
    def prefill(self) -> str | None:
        return parse_user(self.user).get("prefill")

    @property
    def decode(self) -> str | None:
        return parse_user(self.user).get("decode")

    def body(self) -> dict[str, object]:
        return {"model": self.model, "max_tokens": self.max_tokens, "prompt": self.prompt, "user": self.user}

    def to_json(self) -> str:
        # ensure_ascii and ", " / ": " separators: what json.dumps(dict) printed in the seed's script.
        return json.dumps(self.body())

    @classmethod
    def from_obj(cls, obj: dict[str, object]) -> DatasetRequest:
        missing = [k for k in ("model", "max_tokens", "prompt") if k not in obj]
        if missing:
            raise ValueError(f"dataset line lacks {', '.join(missing)}")
        max_tokens = obj["max_tokens"]
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        return cls(str(obj["model"]), max_tokens, str(obj["prompt"]), str(obj.get("user", "")))


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that determines a dataset; the same spec always yields the same bytes."""

    strategy: Strategy
    request_num: int
    prefill: Sequence[str]
    decode: Sequence[str]
    model: str = "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"
    seed: int = 0
    max_tokens: int = 100
    # How many times the context sentence repeats (the seed: 20).
    context_len: int = 20
    # Consecutive requests that share one context ("Shared context #c") but ask their own question.
    requests_per_context: int = 1
    # Consecutive requests that are byte-identical (same context and question): the seed's "same prefix" test.
    same_prefix_batch: int = 1
    # Decode choice under RR: "random" (what the seed did) or "rr".
    rr_decode: Literal["random", "rr"] = "random"
    first_index: int = 0
    # Put in front of every prompt (even the first block differs): contexts nobody sent before, for a
    # long-running deployment whose caches still hold an earlier run's contexts. "" = the seed's prompts.
    salt: str = ""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.request_num < 0:
            raise ValueError("request_num must be >= 0")
        if not self.prefill or not self.decode:
            raise ValueError("need at least one --prefill and one --decode node")
        for name in ("context_len", "requests_per_context", "same_prefix_batch", "max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


def parse_user(user: str) -> dict[str, str]:
    """'prefill=H:P;decode=H:P' -> {'prefill': 'H:P', 'decode': 'H:P'} (unknown keys kept, blanks skipped)."""
    out: dict[str, str] = {}
    for part in user.split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def make_prompt(context: int, question: int, context_len: int, salt: str = "") -> str:
    context_text = CONTEXT_SENTENCE * context_len
    prompt = f"Shared context #{context}: {context_text}Question {question}: Summarize the context."
    return f"[run {salt}] {prompt}" if salt else prompt


def build(spec: DatasetSpec) -> list[DatasetRequest]:
    rng = random.Random(spec.seed)
    out: list[DatasetRequest] = []
    for i in range(spec.request_num):
        question = spec.first_index + i // spec.same_prefix_batch
        context = spec.first_index + (i // spec.same_prefix_batch) // spec.requests_per_context
        if spec.strategy == "Random":
            prefill, decode = rng.choice(list(spec.prefill)), rng.choice(list(spec.decode))
        elif spec.strategy == "Designate":
            prefill, decode = spec.prefill[0], spec.decode[0]
        else:
            prefill = spec.prefill[i % len(spec.prefill)]
            decode = (
                spec.decode[i % len(spec.decode)] if spec.rr_decode == "rr" else rng.choice(list(spec.decode))
            )
        out.append(
            DatasetRequest(
                model=spec.model,
                max_tokens=spec.max_tokens,
                prompt=make_prompt(context, question, spec.context_len, spec.salt),
                user=f"prefill={prefill};decode={decode}",
            )
        )
    return out


def dumps(requests: Iterable[DatasetRequest]) -> str:
    return "".join(r.to_json() + "\n" for r in requests)


def write(path: str | Path, requests: Iterable[DatasetRequest]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(requests), encoding="utf-8")
    return p


def loads(text: str, *, source: str = "<dataset>") -> list[DatasetRequest]:
    out: list[DatasetRequest] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            out.append(DatasetRequest.from_obj(obj))
        except ValueError as exc:
            raise ValueError(f"{source}:{lineno}: {exc}") from None
    return out


def read(path: str | Path) -> list[DatasetRequest]:
    p = Path(path)
    return loads(p.read_text(encoding="utf-8"), source=str(p))
