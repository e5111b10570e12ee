"""Request validation kvtest's proxy does before any backend is involved. The designation, bad-JSON,
404/405 rules are conformance checks (kvtest/conformance/groups: designate, kvtest) run for every flow
by tests/conformance; what is left here needs the in-process proxy (its body limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from .conftest import PD, StartPD


def _assert_openai_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] and error["code"] == status
    return error


async def test_invalid_json_on_chat_is_400(pd: PD, client: httpx.AsyncClient) -> None:
    r = await client.post(
        pd.url_for("v1/chat/completions"), content=b"{", headers={"Content-Type": "application/json"}
    )
    _assert_openai_error(r, 400)


async def test_huge_body_is_413(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(max_body_bytes=64 * 1024)
    body = {"model": "m", "prompt": "x" * (128 * 1024)}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    _assert_openai_error(r, 413)
    assert not pd.prefill[0].seen and not pd.prefill[1].seen


async def test_huge_chunked_body_is_413(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(max_body_bytes=64 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "prompt": "'
        for _ in range(32):
            yield b"x" * 8192
        yield b'"}'

    r = await client.post(
        pd.url_for("v1/completions"), content=chunks(), headers={"Content-Type": "application/json"}
    )
    _assert_openai_error(r, 413)
