"""Reading what came over the wire: SSE streams, OpenAI error bodies, Prometheus counters."""

from __future__ import annotations

import json
from typing import Any

import httpx

from kvtest.metrics.exposition import total


def sse_events(text: str) -> list[str]:
    """The data payloads of an SSE body; AssertionError when it is not `data: ...` events ending in [DONE]."""
    events = [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]
    assert events, "empty event stream"
    payloads = []
    for e in events:
        assert e.startswith("data:"), f"not an SSE data event: {e[:80]!r}"
        payloads.append(e.removeprefix("data:").strip())
    assert payloads[-1] == "[DONE]", f"stream does not end with data: [DONE] (last: {payloads[-1][:80]!r})"
    return payloads[:-1]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    chunks = []
    for p in sse_events(text):
        try:
            chunk = json.loads(p)
        except ValueError:
            raise AssertionError(f"an SSE event is not JSON: {p[:80]!r}") from None
        assert isinstance(chunk, dict), f"an SSE event is not a JSON object: {p[:80]!r}"
        chunks.append(chunk)
    return chunks


def stream_text(text: str) -> str:
    out = []
    for c in sse_chunks(text):
        assert "error" not in c, f"error event in the stream: {c['error']}"
        for choice in c.get("choices") or []:
            out.append(choice.get("text") or (choice.get("delta") or {}).get("content") or "")
    return "".join(out)


def json_body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"body is not JSON: {r.text[:120]!r}") from None


def counter(metrics: str, name: str) -> float:
    """Sum of a counter over all its label sets."""
    return total(metrics, name)


def short(r: httpx.Response) -> str:
    return f"{r.status_code} {r.headers.get('content-type', '-')} {r.text[:100]!r}"
