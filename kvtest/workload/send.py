"""Post requests to an OpenAI completions endpoint (a proxy or a node) and time each one.

    results = await send_all("http://127.0.0.1:8000", dataset.read("d.jsonl"), concurrency=1)

Streaming is on by default so time to first token is measured where the client sees it: the first SSE
event that carries choices (as vLLM's benchmark client counts it). Usage comes from the final chunk
(`stream_options.include_usage`). A request fails on a non-2xx status, an `error` event inside the
stream, a body that is not the expected JSON, or a transport error; the result says which.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kvtest.workload.dataset import DatasetRequest


@dataclass
class RequestResult:
    index: int
    ok: bool
    status: int | None
    error: str | None = None
    ttft_s: float | None = None
    e2e_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    prefill: str | None = None
    decode: str | None = None
    text: str = ""
    # Arrival of each token chunk after the first, relative to the previous one (vLLM's ITL list).
    itl_s: list[float] = field(default_factory=list)
    # Which pass over the dataset this was (1 = cold cache); the report draws runs side by side.
    run: int = 1

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("text")
        return json.dumps(d)


def _usage(res: RequestResult, usage: Mapping[str, Any] | None) -> None:
    if not usage:
        return
    res.prompt_tokens = usage.get("prompt_tokens", res.prompt_tokens)
    res.completion_tokens = usage.get("completion_tokens", res.completion_tokens)
    details = usage.get("prompt_tokens_details") or {}
    if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
        res.cached_tokens = details["cached_tokens"]


def _chunk_text(obj: Mapping[str, Any]) -> str:
    parts = []
    for choice in obj.get("choices") or []:
        if "text" in choice:
            parts.append(choice.get("text") or "")
        else:
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


async def send_one(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    *,
    index: int = 0,
    stream: bool = True,
) -> RequestResult:
    """POST one completions body; never raises for request-level failures."""
    res = RequestResult(index=index, ok=False, status=None)
    payload = dict(body)
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    chunks = 0
    try:
        if not stream:
            resp = await client.post(url, json=payload)
            res.status = resp.status_code
            if resp.status_code // 100 != 2:
                res.error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            else:
                obj = resp.json()
                if not isinstance(obj, dict) or "choices" not in obj:
                    res.error = f"unexpected body: {resp.text[:200]}"
                else:
                    res.text = _chunk_text(obj)
                    _usage(res, obj.get("usage"))
                    res.ok = True
        else:
            async with client.stream("POST", url, json=payload) as resp:
                res.status = resp.status_code
                if resp.status_code // 100 != 2:
                    raw = (await resp.aread()).decode(errors="replace")
                    res.error = f"HTTP {resp.status_code}: {raw[:200]}"
                else:
                    last = start
                    done = False
                    async for line in resp.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        obj = json.loads(data)
                        if "error" in obj:
                            err = obj["error"]
                            res.error = (
                                f"error event: {err.get('message', err) if isinstance(err, dict) else err}"
                            )
                            break
                        now = time.perf_counter()
                        # Like vLLM's benchmark client: any chunk with choices is a token event (even with
                        # empty text); the usage-only chunk at the end has none.
                        if obj.get("choices"):
                            text = _chunk_text(obj)
                            chunks += 1
                            if res.ttft_s is None:
                                res.ttft_s = now - start
                            else:
                                res.itl_s.append(now - last)
                            last = now
                            res.text += text
                        _usage(res, obj.get("usage"))
                    if res.error is None and not done:
                        res.error = "stream ended without [DONE]"
                    res.ok = res.error is None
    except (httpx.HTTPError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
        res.ok = False
    res.e2e_s = time.perf_counter() - start
    if res.ok and res.completion_tokens is None and stream:
        res.completion_tokens = chunks
    return res


async def send_all(
    base_url: str,
    requests: Sequence[DatasetRequest | Mapping[str, Any]],
    *,
    concurrency: int = 1,
    stream: bool = True,
    timeout_s: float = 600.0,
    on_done: Callable[[RequestResult], None] | None = None,
    path: str = "/v1/completions",
    run: int = 1,
) -> list[RequestResult]:
    """Send every request (at most `concurrency` in flight, started in dataset order); results in order."""
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    url = base_url.rstrip("/") + path
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits) as client:

        async def one(i: int, req: DatasetRequest | Mapping[str, Any]) -> RequestResult:
            body = req.body() if isinstance(req, DatasetRequest) else dict(req)
            async with sem:
                res = await send_one(client, url, body, index=i, stream=stream)
            res.run = run
            if isinstance(req, DatasetRequest):
                res.prefill, res.decode = req.prefill, req.decode
            if on_done is not None:
                on_done(res)
            return res

        if concurrency == 1:
            # Strict dataset order: the expectation model counts on each node seeing requests in sequence.
            return [await one(i, r) for i, r in enumerate(requests)]
        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(requests))))


def write_results(path: str | Path, results: Sequence[RequestResult]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(r.to_json() + "\n" for r in results), encoding="utf-8")
    return p


def read_results(path: str | Path) -> list[RequestResult]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.append(RequestResult(**json.loads(line)))
    return out
