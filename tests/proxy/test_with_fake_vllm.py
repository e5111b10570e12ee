"""The proxy over the fake vLLM (simulators/vllm): what a user of a real P/D pair would notice."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from kvtest.metrics.exposition import total
from kvtest.proxy import PDProxy, ProxyConfig
from simulators.vllm import FakeVLLMServer, fake_vllm_nodes

PROMPT = "Shared context #0: This is long context. " * 4 + "Question 0: Summarize the context."


@pytest.fixture
async def nodes() -> AsyncIterator[list[FakeVLLMServer]]:
    async with fake_vllm_nodes(4, sim_enable_admin=True) as n:
        yield n


def _counter(metrics: str, name: str) -> float:
    return total(metrics, name)


async def test_decode_answers_exactly_what_one_node_would(
    nodes: list[FakeVLLMServer], client: httpx.AsyncClient
) -> None:
    p, d, solo = nodes[0], nodes[1], nodes[2]
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 12, "temperature": 0}
    async with PDProxy(ProxyConfig(prefill=[p.url], decode=[d.url])) as proxy:
        via = await client.post(proxy.url_for("v1/completions"), json=body)
        streamed = await client.post(proxy.url_for("v1/completions"), json={**body, "stream": True})
    direct = await client.post(solo.url_for("v1/completions"), json=body)
    assert via.status_code == direct.status_code == 200
    assert via.json()["choices"][0]["text"] == direct.json()["choices"][0]["text"]
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1] if json.loads(e)["choices"])
    assert text == direct.json()["choices"][0]["text"]
    # prefill generated 1 token per request, decode the full 12
    pm = (await client.get(p.url_for("metrics"))).text
    dm = (await client.get(d.url_for("metrics"))).text
    assert _counter(pm, "vllm:generation_tokens_total") == 2
    assert _counter(dm, "vllm:generation_tokens_total") == 24


async def test_round_robin_spreads_over_fake_nodes(
    nodes: list[FakeVLLMServer], client: httpx.AsyncClient
) -> None:
    cfg = ProxyConfig(prefill=[nodes[0].url, nodes[1].url], decode=[nodes[2].url, nodes[3].url])
    async with PDProxy(cfg) as proxy:
        for i in range(6):
            body = {"model": "tiny", "prompt": f"{i} {PROMPT}", "max_tokens": 2}
            assert (await client.post(proxy.url_for("v1/completions"), json=body)).status_code == 200
    counts = []
    for n in nodes:
        m = (await client.get(n.url_for("metrics"))).text
        counts.append(_counter(m, "vllm:request_success_total"))
    assert counts == [3, 3, 3, 3]


async def test_chat_through_the_proxy(nodes: list[FakeVLLMServer], client: httpx.AsyncClient) -> None:
    async with PDProxy(ProxyConfig(prefill=[nodes[0].url], decode=[nodes[1].url])) as proxy:
        body = {"model": "tiny", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 5}
        r = await client.post(proxy.url_for("v1/chat/completions"), json=body)
        s = await client.post(proxy.url_for("v1/chat/completions"), json={**body, "stream": True})
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    assert s.headers["content-type"].startswith("text/event-stream")
    assert s.text.rstrip().endswith("data: [DONE]")


async def test_injected_prefill_failure_and_mid_stream_drop(
    nodes: list[FakeVLLMServer], client: httpx.AsyncClient
) -> None:
    p, d = nodes[0], nodes[1]
    async with PDProxy(ProxyConfig(prefill=[p.url], decode=[d.url])) as proxy:
        await client.post(p.url_for("sim/faults"), json={"fail_rate": 1.0, "fail_status": 503})
        r = await client.post(proxy.url_for("v1/completions"), json={"model": "tiny", "prompt": PROMPT})
        assert r.status_code == 502 and "answered 503" in r.json()["error"]["message"]
        await client.post(p.url_for("sim/faults"), json={"fail_rate": 0.0})
        await client.post(p.url_for("sim/faults"), json={"fail_status": 400, "fail_rate": 1.0})
        r = await client.post(proxy.url_for("v1/completions"), json={"model": "tiny", "prompt": PROMPT})
        assert r.status_code == 400
        await client.post(p.url_for("sim/faults"), json={"fail_rate": 0.0})
        await client.post(d.url_for("sim/faults"), json={"drop_rate": 1.0, "drop_after_tokens": 2})
        body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 8, "stream": True}
        s = await client.post(proxy.url_for("v1/completions"), json=body)
    assert s.status_code == 200
    events = [e.removeprefix("data: ") for e in s.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["error"]["code"] == 502 and re.search("mid-stream", last["error"]["message"])


async def test_unknown_model_is_the_prefill_404(
    nodes: list[FakeVLLMServer], client: httpx.AsyncClient
) -> None:
    async with PDProxy(ProxyConfig(prefill=[nodes[0].url], decode=[nodes[1].url])) as proxy:
        r = await client.post(proxy.url_for("v1/completions"), json={"model": "nope", "prompt": "x"})
    assert r.status_code == 404  # vLLM answers 404 for an unknown model; prefill 4xx passes through
    assert "nope" in r.json()["error"]["message"]
