"""`errors`: OpenAI compatibility as vLLM's own server behaves. The statuses a router must pass through are
taken from the reference node (one fake vLLM) for the same request, not from kvtest's conventions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from kvtest.conformance.backends import RecordedNode
from kvtest.conformance.check import Context, check
from kvtest.conformance.wire import short


async def _post(ctx: Context, body: dict[str, Any]) -> httpx.Response:
    try:
        return await ctx.client.post(ctx.url("v1/completions"), json=body)
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within {ctx.bound_s:.0f}s: the router hangs") from None


@check("errors", "a backend's 4xx reaches the client with the same status and a body")
async def backend_4xx_passed_through(ctx: Context) -> str:
    cases: dict[str, dict[str, Any]] = {
        "unknown model": {"model": "kvtest-no-such-model"},
        "negative temperature": {"temperature": -1.0},
        "prompt longer than the context": {"prompt": "many words " * 1500},
    }
    seen = []
    for name, extra in cases.items():
        body = ctx.body(ctx.marker()) | extra
        ref = await ctx.client.post(ctx.backends.reference.url_for("v1/completions"), json=body)
        assert 400 <= ref.status_code < 500, f"{name}: the reference node answered {short(ref)}"
        r = await _post(ctx, body)
        assert r.status_code == ref.status_code and r.content, (
            f"{name}: vLLM answers {ref.status_code}, the router {short(r)}"
        )
        seen.append(str(r.status_code))
    return "statuses " + ", ".join(seen)


@check("errors", "malformed JSON gets a 4xx whose body is JSON")
async def malformed_json_is_4xx_json(ctx: Context) -> str:
    try:
        r = await ctx.client.post(
            ctx.url("v1/completions"),
            content=b'{"model": "x", "prompt": ',
            headers={"Content-Type": "application/json"},
        )
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within {ctx.bound_s:.0f}s: the router hangs") from None
    assert 400 <= r.status_code < 500, short(r)
    try:
        json.loads(r.content)
    except ValueError:
        raise AssertionError(f"the 4xx body is not JSON: {short(r)}") from None
    return f"{r.status_code} with a JSON body"


def _is_error_answer(r: httpx.Response, stream: bool) -> str | None:
    """Why r is not an acceptable answer to a failed backend, None when it is."""
    if not r.content:
        return f"status {r.status_code} with an empty body"
    if r.status_code >= 500:
        return None
    if r.status_code == 200 and stream and '"error"' in r.text:
        return None  # an error event inside an SSE stream the router had already started
    return f"not an error: {short(r)}"


@asynccontextmanager
async def _dark(node: RecordedNode) -> AsyncIterator[None]:
    await node.go_dark()
    try:
        yield
    finally:
        await node.come_back()


async def _dead_node(ctx: Context, node: RecordedNode) -> str:
    out = []
    async with _dark(node):
        for stream in (False, True):
            r = await _post(ctx, ctx.body(ctx.marker(), stream=stream))
            why = _is_error_answer(r, stream)
            assert why is None, f"stream={stream}: {why}"
            out.append(str(r.status_code))
    return "answers " + " / ".join(out) + " (non-streamed / streamed)"


@check("errors", "a prefill node that refuses connections gives a 5xx with a body, never a hang")
async def dead_prefill_is_5xx(ctx: Context) -> str:
    return await _dead_node(ctx, ctx.backends.prefill)


@check("errors", "a decode node that refuses connections gives a 5xx with a body, never a hang")
async def dead_decode_is_5xx(ctx: Context) -> str:
    return await _dead_node(ctx, ctx.backends.decode)


@check("errors", "a prefill node answering 503 gives the client a 5xx with a body, never a 200 without one")
async def prefill_5xx_is_5xx(ctx: Context) -> str:
    node = ctx.backends.prefill
    node.faults.update({"fail_rate": 1.0, "fail_status": 503})
    try:
        r = await _post(ctx, ctx.body(ctx.marker()))
    finally:
        node.faults.update({"fail_rate": 0.0})
    why = _is_error_answer(r, False)
    assert why is None, why
    return f"answers {r.status_code}"
