"""Reading a trace: Mooncake's FAST'25 format, or kvtest's own JSONL datasets.

Mooncake (FAST25-release/traces): one JSON object per line with `timestamp` (ms since the trace's start),
`input_length`, `output_length` and `hash_ids` (one id per 512-token block of the prompt, the last block
possibly partial). A kvtest dataset line (`kvtest dataset`) is an OpenAI completions body: `prompt` (text,
tokenised by the fake's byte tokenizer: one token per UTF-8 byte, what bare model names use) or a list of
token ids, and `max_tokens`; it has no timestamps, so its requests arrive `--interval-ms` apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MOONCAKE_BLOCK_TOKENS = 512


class TraceError(ValueError):
    """A trace line that cannot be replayed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    index: int  # position in the trace: ties at one instant are served in this order
    arrival_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] | None = None  # Mooncake traces
    prompt_token_ids: tuple[int, ...] | None = None  # kvtest datasets


def _int(obj: dict[str, object], key: str, where: str, minimum: int) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise TraceError(f"{where}: {key!r} must be an integer >= {minimum}, not {v!r}")
    return v


def parse_line(line: str, index: int, where: str, interval_ms: float) -> TraceRequest:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise TraceError(f"{where}: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise TraceError(f"{where}: expected a JSON object")
    if "hash_ids" in obj:
        ids = obj["hash_ids"]
        if not isinstance(ids, list) or not all(isinstance(h, int) and h >= 0 for h in ids):
            raise TraceError(f"{where}: 'hash_ids' must be a list of non-negative integers")
        n_in = _int(obj, "input_length", where, 1)
        blocks = -(-n_in // MOONCAKE_BLOCK_TOKENS)
        if len(ids) != blocks:
            raise TraceError(
                f"{where}: input_length {n_in} needs {blocks} hash_ids (one per 512 tokens), got {len(ids)}"
            )
        ts = obj.get("timestamp")
        if not isinstance(ts, int | float) or ts < 0:
            raise TraceError(f"{where}: 'timestamp' (ms) must be a non-negative number, not {ts!r}")
        return TraceRequest(index, float(ts), n_in, _int(obj, "output_length", where, 1), tuple(ids))
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        tokens = tuple(prompt.encode())
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and t >= 0 for t in prompt):
        tokens = tuple(prompt)
    else:
        raise TraceError(f"{where}: neither a Mooncake line (hash_ids) nor a dataset line (prompt)")
    if not tokens:
        raise TraceError(f"{where}: empty prompt")
    ts = obj.get("timestamp")
    arrival = float(ts) if isinstance(ts, int | float) else index * interval_ms
    out = _int(obj, "max_tokens", where, 1) if "max_tokens" in obj else 16
    return TraceRequest(index, arrival, len(tokens), out, None, tokens)


def load_trace(path: str | Path, limit: int | None = None, interval_ms: float = 0.0) -> list[TraceRequest]:
    """Every request of the file (the first `limit`), in arrival order (stable for equal times)."""
    p = Path(path)
    if not p.is_file():
        raise TraceError(f"{p}: no such trace file")
    out: list[TraceRequest] = []
    with p.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(parse_line(line, len(out), f"{p}:{lineno}", interval_ms))
    if not out:
        raise TraceError(f"{p}: no requests")
    out.sort(key=lambda r: (r.arrival_ms, r.index))
    return out
