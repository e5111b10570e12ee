"""Request validation and designation: these run against any proxy (`--proxy-url`), they need no backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from .conftest import PD, StartPD

MALFORMED_USERS = [
    "prefill=127.0.0.1",  # no port
    "prefill=127.0.0.1:notaport",
    "prefill=127.0.0.1:70000",  # port out of range
    "prefill=:8100",  # no host
    "prefill=127.0.0.1:8100;;decode=127.0.0.1:8200",  # empty part
    "prefill=127.0.0.1:8100;prefill=127.0.0.1:8101",  # twice
    "prefil=127.0.0.1:8100",  # unknown key
    "prefill 127.0.0.1:8100",  # no '='
    "decode=bad host:8200",
    "prefill=127.0.0.1:8100;decode",
]


def _assert_openai_error(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["type"] and error["code"] == status
    return error


def _needs_known_limit(pd: PD) -> None:
    if pd.proxy is None:
        pytest.skip("the body-size limit of an external proxy is not known")


@pytest.mark.parametrize("user", MALFORMED_USERS)
async def test_malformed_designation_is_400(pd: PD, client: httpx.AsyncClient, user: str) -> None:
    r = await client.post(pd.url_for("v1/completions"), json={"model": "m", "prompt": "x", "user": user})
    error = _assert_openai_error(r, 400)
    assert "designation" in str(error["message"])


async def test_non_string_user_is_400(pd: PD, client: httpx.AsyncClient) -> None:
    r = await client.post(pd.url_for("v1/completions"), json={"model": "m", "prompt": "x", "user": 7})
    _assert_openai_error(r, 400)


async def test_undesignated_node_is_403(pd: PD, client: httpx.AsyncClient) -> None:
    # TEST-NET-1 address: never a configured node, never reachable. 403 must come before any connection.
    body = {"model": "m", "prompt": "x", "user": "prefill=192.0.2.1:8100;decode=192.0.2.1:8200"}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    error = _assert_openai_error(r, 403)
    assert "192.0.2.1:8100" in str(error["message"])


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[1, 2]", b'"a string"', b"null"])
async def test_invalid_json_is_400(pd: PD, client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(
        pd.url_for("v1/completions"), content=raw, headers={"Content-Type": "application/json"}
    )
    _assert_openai_error(r, 400)


async def test_invalid_json_on_chat_is_400(pd: PD, client: httpx.AsyncClient) -> None:
    r = await client.post(
        pd.url_for("v1/chat/completions"), content=b"{", headers={"Content-Type": "application/json"}
    )
    _assert_openai_error(r, 400)


async def test_unknown_route_is_json_404(pd: PD, client: httpx.AsyncClient) -> None:
    r = await client.post(pd.url_for("v1/nothing"), json={})
    _assert_openai_error(r, 404)


async def test_get_on_completions_is_json_405(pd: PD, client: httpx.AsyncClient) -> None:
    r = await client.get(pd.url_for("v1/completions"))
    _assert_openai_error(r, 405)


async def test_huge_body_is_413(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(max_body_bytes=64 * 1024)
    _needs_known_limit(pd)
    body = {"model": "m", "prompt": "x" * (128 * 1024)}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    _assert_openai_error(r, 413)
    assert pd.prefill is not None
    assert not pd.prefill[0].seen and not pd.prefill[1].seen


async def test_huge_chunked_body_is_413(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(max_body_bytes=64 * 1024)
    _needs_known_limit(pd)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "m", "prompt": "'
        for _ in range(32):
            yield b"x" * 8192
        yield b'"}'

    r = await client.post(
        pd.url_for("v1/completions"), content=chunks(), headers={"Content-Type": "application/json"}
    )
    _assert_openai_error(r, 413)
