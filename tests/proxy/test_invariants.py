"""Whatever the two nodes do, the answer is a status with a body: never a 200 that is empty, null or
broken SSE, never a hang. Every (prefill fault, decode fault, stream) combination, for each flow."""

from __future__ import annotations

import itertools
import json
import time

import httpx
import pytest

from .conftest import StartPD
from .stub_node import StubNode

PREFILL_FAULTS = ["ok", "status:400", "status:500", "garbage", "empty", "die_before_headers", "no_kv_params"]
DECODE_FAULTS = ["ok", "status:400", "status:503", "garbage", "empty", "die_before_headers", "die_mid_stream",
                 "no_done"]  # fmt: skip


def _apply(node: StubNode, fault: str) -> None:
    node.mode, _, code = fault.partition(":")
    node.status = int(code or 500)
    node.tokens = 5


def _check(r: httpx.Response, stream: bool) -> None:
    assert r.content, "empty body"
    if r.status_code != 200:
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == r.status_code
        return
    if not stream:
        assert isinstance(r.json(), dict) and r.json().get("choices")
        return
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    for e in events[:-1]:
        assert isinstance(json.loads(e.removeprefix("data: ")), dict)


@pytest.mark.parametrize("flow", ["store", "nixl", "mooncake"])
async def test_no_fault_combination_breaks_the_contract(
    start_pd: StartPD, client: httpx.AsyncClient, flow: str
) -> None:
    # no combination may make the proxy wait out its read timeout: a long one (60 s) is the bound, so
    # that a loaded machine's slow seconds never reach it (a 3 s wall-clock bound did)
    read_timeout = 60.0
    pd = await start_pd(n_prefill=1, n_decode=1, flow=flow, read_timeout=read_timeout)
    (p,), (d,) = pd.nodes()
    for pf, df, stream in itertools.product(PREFILL_FAULTS, DECODE_FAULTS, (False, True)):
        _apply(p, pf)
        _apply(d, df)
        start = time.monotonic()
        body = {"model": "m", "prompt": "p", "max_tokens": 5, "stream": stream}
        r = await client.post(pd.url_for("v1/completions"), json=body, timeout=read_timeout + 30)
        assert time.monotonic() - start < read_timeout, (pf, df, stream)
        try:
            _check(r, stream)
        except AssertionError as exc:
            raise AssertionError(f"prefill={pf} decode={df} stream={stream}: {exc}\n{r.text}") from None
