"""`pd`: what every P/D router must do. Each check sends its own request, marked in the prompt, and reads
the legs the nodes saw (kvtest.conformance.backends.LegLog) and the decode's counters."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from kvtest.conformance.backends import BLOCK_SIZE, Leg, RecordedNode
from kvtest.conformance.check import Context, check
from kvtest.conformance.wire import counter, json_body, short, sse_chunks, stream_text


async def post(ctx: Context, body: dict[str, Any], path: str = "v1/completions") -> httpx.Response:
    return await ctx.client.post(ctx.url(path), json=body)


def pd_legs(ctx: Context, marker: str) -> tuple[list[Leg], list[Leg]]:
    legs = ctx.legs(marker)
    return [g for g in legs if g.node == "prefill"], [g for g in legs if g.node == "decode"]


async def reference_text(ctx: Context, body: dict[str, Any]) -> str:
    """What one vLLM node answers for the same request (the fake is deterministic)."""
    plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    r = await ctx.client.post(ctx.backends.reference.url_for("v1/completions"), json=plain)
    assert r.status_code == 200, f"reference node: {short(r)}"
    return str(r.json()["choices"][0]["text"])


async def scrape(ctx: Context, node: RecordedNode) -> str:
    return (await ctx.client.get(node.url_for("metrics"))).text


@check("pd", "exactly one prefill leg and one decode leg, prefill first (concurrent for mooncake)")
async def one_prefill_then_one_decode(ctx: Context) -> str:
    marker = ctx.marker()
    r = await post(ctx, ctx.body(marker))
    assert r.status_code == 200, short(r)
    p, d = pd_legs(ctx, marker)
    assert len(p) == 1 and len(d) == 1, f"{len(p)} prefill leg(s), {len(d)} decode leg(s); want 1 and 1"
    if ctx.backends.flow.ordered:
        assert p[0].ended is not None and p[0].ended <= d[0].started, (
            "the decode leg started before the prefill leg ended"
        )
        return "prefill then decode"
    return "one leg each (this flow may send both at once)"


@check("pd", "the prefill leg is limited to one token, with the KV parameters the flow needs")
async def prefill_leg_limited(ctx: Context) -> str:
    marker = ctx.marker()
    r = await post(ctx, ctx.body(marker))
    assert r.status_code == 200, short(r)
    p, d = pd_legs(ctx, marker)
    assert p and d, f"{len(p)} prefill leg(s), {len(d)} decode leg(s)"
    pb, db = p[0].body, d[0].body
    assert pb.get("max_tokens") == 1, f"prefill leg max_tokens={pb.get('max_tokens')!r}, want 1"
    assert db.get("max_tokens") == 8, f"decode leg max_tokens={db.get('max_tokens')!r}, want the client's 8"
    flow = ctx.backends.flow.name
    pk, dk = pb.get("kv_transfer_params") or {}, db.get("kv_transfer_params") or {}
    if flow in ("nixl", "mooncake"):
        assert pk.get("do_remote_decode") is True, f"prefill kv_transfer_params={pk}"
        assert dk.get("do_remote_prefill") is True, f"decode kv_transfer_params={dk}"
    if flow == "mooncake":
        assert pk.get("transfer_id") and pk.get("transfer_id") == dk.get("transfer_id"), (
            f"transfer_id differs: prefill {pk.get('transfer_id')!r}, decode {dk.get('transfer_id')!r}"
        )
    return f"prefill max_tokens=1, kv_transfer_params={sorted(pk) or 'none'}"


@check("pd", "KV moved: the decode's external prefix-cache hits equal what the flow promises")
async def kv_moved(ctx: Context) -> str:
    b = ctx.backends
    marker = ctx.marker()
    before = counter(await scrape(ctx, b.decode), "vllm:external_prefix_cache_hits_total")
    keys_before = await b.master_key_count(ctx.client)
    r = await post(ctx, ctx.body(marker))
    assert r.status_code == 200, short(r)
    n = int(json_body(r)["usage"]["prompt_tokens"])
    hits = counter(await scrape(ctx, b.decode), "vllm:external_prefix_cache_hits_total") - before
    want = b.flow.expected_hits(n, BLOCK_SIZE)
    assert hits == want, (
        f"decode loaded {hits:.0f} of {n} prompt tokens from the prefill; the flow promises {want}"
    )
    detail = f"decode external hits {hits:.0f} = {want} of {n} prompt tokens"
    if b.master is not None:
        keys = await b.master_key_count(ctx.client) - keys_before
        blocks = want // BLOCK_SIZE
        assert keys == blocks, f"the master gained {keys} objects for {blocks} blocks (want one copy each)"
        detail += f"; master holds {keys} objects for {blocks} blocks"
    return detail


@check("pd", "a non-streamed answer is the JSON one vLLM node gives, every token of it")
async def json_answer_complete(ctx: Context) -> str:
    marker = ctx.marker()
    body = ctx.body(marker)
    r = await post(ctx, body)
    assert r.status_code == 200, short(r)
    assert r.headers.get("content-type", "").startswith("application/json"), short(r)
    got = json_body(r)
    text = got["choices"][0]["text"]
    want = await reference_text(ctx, body)
    assert text == want, f"text {text!r}, one node answers {want!r}"
    assert got.get("usage", {}).get("completion_tokens") == body["max_tokens"], f"usage {got.get('usage')}"
    return f"{len(text)} chars, usage {got['usage']['completion_tokens']} tokens"


@check("pd", "a streamed answer is well-formed SSE ending in [DONE], the same text one node gives")
async def stream_answer_complete(ctx: Context) -> str:
    marker = ctx.marker()
    body = ctx.body(marker, stream=True, stream_options={"include_usage": True})
    r = await post(ctx, body)
    assert r.status_code == 200, short(r)
    assert r.headers.get("content-type", "").startswith("text/event-stream"), short(r)
    text = stream_text(r.text)
    want = await reference_text(ctx, body)
    assert text == want, f"streamed {text!r}, one node answers {want!r}"
    usage = [c["usage"] for c in sse_chunks(r.text) if c.get("usage")]
    assert usage and usage[-1]["completion_tokens"] == body["max_tokens"], f"usage chunks {usage}"
    return f"{len(sse_chunks(r.text))} events, text matches"


async def _until(cond: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


@check("pd", "a client that disconnects stops both legs (during prefill and during the decode stream)")
async def disconnect_stops_both_legs(ctx: Context) -> str:
    b = ctx.backends
    bound = ctx.bound_s
    # 1. during the prefill: the prefill node holds the request until it is cancelled
    marker = ctx.marker()
    b.prefill.faults.update({"delay_ms": bound * 3 * 1000})
    try:
        task = asyncio.create_task(post(ctx, ctx.body(marker)))
        assert await _until(lambda: pd_legs(ctx, marker)[0], bound), "the prefill leg never arrived"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stopped = await _until(lambda: all(g.ended is not None for g in ctx.legs(marker)), bound)
    finally:
        b.prefill.faults.update({"delay_ms": 0})
    assert stopped, f"a leg still ran {bound:.0f}s after the client left during the prefill"
    # 2. during the decode stream: a slow decode, the client reads one event and leaves
    marker = ctx.marker()
    b.decode.set_itl_ms(bound * 1000 / 100)  # 500 tokens would take 5x the bound
    try:
        body = ctx.body(marker, stream=True, max_tokens=500)
        async with ctx.client.stream("POST", ctx.url("v1/completions"), json=body) as r:
            assert r.status_code == 200, f"status {r.status_code}"
            async for _ in r.aiter_bytes():
                break
        stopped = await _until(lambda: all(g.ended is not None for g in ctx.legs(marker)), bound)
        running = [g.node for g in ctx.legs(marker) if g.ended is None]
    finally:
        b.decode.set_itl_ms(0)
    assert pd_legs(ctx, marker)[1], "no decode leg"
    assert stopped, f"{', '.join(running)} leg(s) still generating {bound:.0f}s after the client left"
    return "both legs ended after each disconnect"
