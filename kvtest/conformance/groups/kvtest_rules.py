"""`kvtest`: rules kvtest's proxy keeps beyond what vLLM's server does (skipped by default for other
routers): OpenAI-shaped errors with code == status everywhere, the prefill leg never streamed, the
client's request otherwise untouched, one request id on both legs."""

from __future__ import annotations

import httpx

from kvtest.conformance.check import Context, check
from kvtest.conformance.groups.pd import pd_legs, post
from kvtest.conformance.wire import json_body, short


def _openai_error(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, f"want {status}: {short(r)}"
    assert r.headers.get("content-type", "").startswith("application/json"), short(r)
    error = json_body(r).get("error")
    assert isinstance(error, dict), f"no error object: {short(r)}"
    assert error.get("message") and error.get("type") and error.get("code") == status, f"error {error}"


@check("kvtest", "every malformed body is a 400 with an OpenAI error object whose code is the status")
async def bad_json_is_openai_400(ctx: Context) -> str:
    raws = [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"a string"', b"null"]
    for raw in raws:
        r = await ctx.client.post(
            ctx.url("v1/completions"), content=raw, headers={"Content-Type": "application/json"}
        )
        try:
            _openai_error(r, 400)
        except AssertionError as e:
            raise AssertionError(f"body {raw!r}: {e}") from None
    return f"{len(raws)} bodies"


@check("kvtest", "an unknown route is a JSON 404 and GET on /v1/completions a JSON 405")
async def json_404_and_405(ctx: Context) -> str:
    _openai_error(await ctx.client.post(ctx.url("v1/nothing"), json={}), 404)
    _openai_error(await ctx.client.get(ctx.url("v1/completions")), 405)
    return "404, 405"


@check("kvtest", "the prefill leg is never streamed; the decode leg gets the client's stream options")
async def prefill_leg_not_streamed(ctx: Context) -> str:
    marker = ctx.marker()
    r = await post(ctx, ctx.body(marker, stream=True, stream_options={"include_usage": True}))
    assert r.status_code == 200, short(r)
    (p, *_), (d, *_) = pd_legs(ctx, marker)
    assert p.body.get("stream") is False and "stream_options" not in p.body, f"prefill leg {p.body}"
    assert d.body.get("stream") is True and d.body.get("stream_options"), f"decode leg {d.body}"
    return "prefill stream=false"


@check("kvtest", "a request without max_tokens reaches decode without one (not 0, not 1)")
async def absent_max_tokens_stays_absent(ctx: Context) -> str:
    marker = ctx.marker()
    body = ctx.body(marker)
    del body["max_tokens"]
    r = await post(ctx, body)
    assert r.status_code == 200, short(r)
    (p, *_), (d, *_) = pd_legs(ctx, marker)
    assert p.body.get("max_tokens") == 1 and "max_tokens" not in d.body, f"prefill {p.body}, decode {d.body}"
    return "absent on decode"


@check("kvtest", "both legs of one request carry the same X-Request-Id")
async def one_request_id_on_both_legs(ctx: Context) -> str:
    marker = ctx.marker()
    assert (await post(ctx, ctx.body(marker))).status_code == 200
    (p, *_), (d, *_) = pd_legs(ctx, marker)
    pid = {k.lower(): v for k, v in p.headers.items()}.get("x-request-id")
    did = {k.lower(): v for k, v in d.headers.items()}.get("x-request-id")
    assert pid and pid == did, f"prefill X-Request-Id {pid!r}, decode {did!r}"
    return pid
