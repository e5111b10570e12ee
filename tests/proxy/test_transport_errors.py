"""Transport failures that real sockets cannot produce on demand, mocked with aioresponses.

aioresponses patches aiohttp's ClientSession, i.e. only the proxy's backend legs; the test talks to the
proxy with httpx over a real socket.
"""

from __future__ import annotations

import re

import aiohttp
import httpx
import pytest
from aioresponses import aioresponses

from kvtest.proxy import PDProxy, ProxyConfig
from kvtest.proxy.errors import backend_message

from .stub_node import StubNode

P, D = "http://10.255.0.1:8100", "http://10.255.0.2:8200"
BODY = {"model": "m", "prompt": "x", "max_tokens": 3}


@pytest.fixture
async def proxy() -> PDProxy:
    async with PDProxy(ProxyConfig(prefill=[P], decode=[D])) as p:
        yield p  # type: ignore[misc]


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (aiohttp.ConnectionTimeoutError(), 504, "connect timed out"),
        (aiohttp.SocketTimeoutError(), 504, "read timeout"),
        (aiohttp.ServerDisconnectedError(), 502, "ServerDisconnectedError"),
        (aiohttp.ClientPayloadError("truncated"), 502, "ClientPayloadError"),
    ],
)
async def test_prefill_transport_failures(proxy: PDProxy, exc: Exception, status: int, words: str) -> None:
    with aioresponses(passthrough_unmatched=False) as mocked:
        mocked.post(re.compile(rf"^{P}/"), exception=exc)
        async with httpx.AsyncClient() as client:
            r = await client.post(proxy.url_for("v1/completions"), json=BODY)
    assert r.status_code == status
    error = r.json()["error"]
    assert words in error["message"] and error["code"] == status
    decode_calls = [k for k in mocked.requests if str(k[1]).startswith(D)]
    assert not decode_calls


async def test_decode_transport_failure_before_first_byte() -> None:
    # aioresponses 0.7.9 cannot build a mocked 200 on aiohttp 3.14 (ClientResponse needs stream_writer),
    # so the prefill leg is a real StubNode, let through.
    async with StubNode() as prefill, PDProxy(ProxyConfig(prefill=[prefill.url], decode=[D])) as proxy:
        with aioresponses(passthrough=[prefill.url]) as mocked:
            mocked.post(re.compile(rf"^{D}/"), exception=aiohttp.ConnectionTimeoutError())
            async with httpx.AsyncClient() as client:
                r = await client.post(proxy.url_for("v1/completions"), json=BODY)
        assert len(prefill.seen) == 1
    assert r.status_code == 504
    assert "decode node" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"error": {"message": "too long", "type": "BadRequestError"}}', "too long"),
        (b'{"object": "error", "message": "old shape", "type": "x"}', "old shape"),
        (b'{"detail": "Not Found"}', "Not Found"),
        (b"Internal Server Error", "Internal Server Error"),
        (b"", "<empty body>"),
    ],
)
def test_backend_message_reads_every_vllm_error_shape(raw: bytes, message: str) -> None:
    assert backend_message(raw)[0] == message
