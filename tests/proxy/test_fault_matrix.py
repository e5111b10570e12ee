"""The fault matrix (issue 4): for each fault, the status, the OpenAI-style body and a time bound.

Rules under test: prefill 4xx -> that status and decode is not called; prefill 5xx/refused/timeout ->
502/504; decode errors before the first byte -> their status; a decode failure mid-stream -> 200 SSE that
ends with a valid-JSON error event and [DONE]. Never a 200 with an empty or null body, never a hang.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from .conftest import PD, StartPD
from .stub_node import StubNode

BODY: dict[str, Any] = {"model": "m", "prompt": "San Francisco is a", "max_tokens": 8}


def _prefill(pd: PD) -> StubNode:
    return pd.nodes()[0][0]


def _decode(pd: PD) -> StubNode:
    return pd.nodes()[1][0]


@dataclass
class Case:
    name: str
    arrange: Callable[[PD], Any]  # may return an awaitable
    status: int
    message: str  # substring of error.message ("" for a success)
    stream: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    decode_called: bool | None = None
    # what the proxy must NOT wait for: its read timeout (READ_TIMEOUT_S), or, where a 0.3 s read
    # timeout is the fault under test, the node's reply (SLOW_NODE_S away). Load adds seconds at
    # most; a proxy that waited would reach the bound. (It was 1.5-3 s of wall clock: a loaded
    # 2-core machine can take that long for any request.)
    bound_s: float = 60.0
    mid_stream: bool = False  # 200 SSE whose last JSON event is an error with this status


def status(node: Callable[[PD], StubNode], code: int) -> Callable[[PD], None]:
    def arrange(pd: PD) -> None:
        n = node(pd)
        n.mode, n.status = "status", code

    return arrange


def mode(node: Callable[[PD], StubNode], name: str, **attrs: Any) -> Callable[[PD], None]:
    def arrange(pd: PD) -> None:
        n = node(pd)
        n.mode = name
        for k, v in attrs.items():
            setattr(n, k, v)

    return arrange


def stopped(node: Callable[[PD], StubNode]) -> Callable[[PD], Any]:
    return lambda pd: node(pd).stop()


FAST = {"read_timeout": 0.3}
READ_TIMEOUT_S = 60.0  # every case without FAST
SLOW_NODE_S = 30.0  # a FAST case's node answers (if ever) after this

CASES = [
    Case(
        "prefill 400 -> 400, decode not called",
        status(_prefill, 400),
        400,
        "stub error 400",
        decode_called=False,
    ),
    Case("prefill 422 -> 422", status(_prefill, 422), 422, "prefill node", decode_called=False),
    Case("prefill 500 -> 502", status(_prefill, 500), 502, "answered 500", decode_called=False),
    Case("prefill 503 -> 502", status(_prefill, 503), 502, "answered 503", decode_called=False),
    Case("prefill refused -> 502", stopped(_prefill), 502, "unreachable", decode_called=False),
    Case(
        "prefill read timeout -> 504",
        mode(_prefill, "slow", delay=SLOW_NODE_S),
        504,
        "read timeout",
        config=FAST,
        decode_called=False,
        bound_s=SLOW_NODE_S,
    ),
    Case(
        "prefill garbage 200 -> 502", mode(_prefill, "garbage"), 502, "not a JSON object", decode_called=False
    ),
    Case("prefill empty 200 -> 502", mode(_prefill, "empty"), 502, "not a JSON object", decode_called=False),
    Case(
        "prefill drops the connection -> 502",
        mode(_prefill, "die_before_headers"),
        502,
        "prefill node",
        decode_called=False,
    ),
    Case(
        "slow prefill within the timeout -> 200",
        mode(_prefill, "slow", delay=0.3),
        200,
        "",
        decode_called=True,
    ),
    Case("decode 400 -> 400", status(_decode, 400), 400, "stub error 400", decode_called=True),
    Case("decode 500 -> 500", status(_decode, 500), 500, "decode node", decode_called=True),
    Case("decode 503 (streaming) -> 503", status(_decode, 503), 503, "decode node", stream=True),
    Case("decode refused -> 502", stopped(_decode), 502, "unreachable"),
    Case(
        "decode timeout before first byte -> 504",
        mode(_decode, "slow", delay=SLOW_NODE_S),
        504,
        "read timeout",
        stream=True,
        config=FAST,
        bound_s=SLOW_NODE_S,
    ),
    Case("decode garbage 200 -> 502", mode(_decode, "garbage"), 502, "not a JSON object", decode_called=True),
    Case("decode empty 200 -> 502", mode(_decode, "empty"), 502, "empty body", decode_called=True),
    Case(
        "decode drops the connection before headers -> 502",
        mode(_decode, "die_before_headers"),
        502,
        "decode node",
        stream=True,
    ),
    Case(
        "decode dies mid-stream -> error event",
        mode(_decode, "die_mid_stream", tokens=6),
        502,
        "mid-stream",
        stream=True,
        mid_stream=True,
    ),
    Case(
        "decode hangs mid-stream -> error event",
        mode(_decode, "hang_mid_stream", tokens=6),
        504,
        "mid-stream",
        stream=True,
        config=FAST,
        mid_stream=True,
        bound_s=SLOW_NODE_S,
    ),
    Case(
        "decode stream without [DONE] -> error event",
        mode(_decode, "no_done"),
        502,
        "without [DONE]",
        stream=True,
        mid_stream=True,
    ),
    Case(
        "nixl prefill omits kv_transfer_params -> 502",
        mode(_prefill, "no_kv_params"),
        502,
        "no kv_transfer_params",
        config={"flow": "nixl"},
        decode_called=False,
    ),
    Case(
        "mooncake bootstrap /query 500 -> 502",
        mode(_prefill, "ok", query_status=500),
        502,
        "bootstrap",
        config={"flow": "mooncake"},
        decode_called=False,
    ),
    Case(
        "mooncake bootstrap /query 404 -> 502 (not the client's fault)",
        mode(_prefill, "ok", query_status=404),
        502,
        "bootstrap",
        config={"flow": "mooncake"},
        decode_called=False,
    ),
    Case(
        "mooncake bootstrap refused -> 502",
        mode(_prefill, "ok"),
        502,
        "unreachable",
        config={"flow": "mooncake", "bootstrap_port": [9]},  # nothing listens on 127.0.0.1:9
        decode_called=False,
    ),
    Case(
        "mooncake prefill 400 -> 400",
        status(_prefill, 400),
        400,
        "stub error 400",
        config={"flow": "mooncake"},
    ),
    Case(
        "mooncake prefill 500 -> 502", status(_prefill, 500), 502, "answered 500", config={"flow": "mooncake"}
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fault(case: Case, start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, **{"read_timeout": READ_TIMEOUT_S, **case.config})
    pd.nodes()
    if case.name.startswith("mooncake prefill"):
        _decode(pd).delay = 0.5  # the concurrent decode leg is still waiting when prefill fails
    result = case.arrange(pd)
    if result is not None:
        await result
    start = time.monotonic()
    r = await client.post(
        pd.url_for("v1/completions"), json={**BODY, "stream": case.stream}, timeout=case.bound_s + 30
    )
    elapsed = time.monotonic() - start
    assert elapsed < case.bound_s, f"{case.name}: took {elapsed:.2f}s"
    assert r.content, "never an empty body"
    if case.mid_stream:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e.removeprefix("data: ") for e in r.text.split("\n\n") if e]
        assert events[-1] == "[DONE]"
        payloads = [json.loads(e) for e in events[:-1]]  # every event, the error included, is valid JSON
        assert payloads[0]["choices"][0]["text"] == "t0 "
        error = payloads[-1]["error"]
        assert error["code"] == case.status and case.message in error["message"]
        return
    assert r.status_code == case.status, r.text
    if case.status == 200:
        assert r.json()["choices"]
    else:
        assert r.headers["content-type"].startswith("application/json")
        error = r.json()["error"]
        assert case.message in error["message"], error
        assert error["code"] == case.status
        assert error["type"]
    if case.decode_called is not None:
        assert bool(_decode(pd).seen) == case.decode_called
