"""Each P/D flow, field by field, as the backends receive it (kvtest/proxy/flows/: each module cites
the vLLM proxy it follows)."""

from __future__ import annotations

import httpx

from .conftest import StartPD

BODY = {"model": "m", "prompt": "San Francisco is a", "max_tokens": 6, "temperature": 0}


async def test_store_flow_prefill_gets_max_tokens_1_and_decode_the_original(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="store")
    (p,), (d,) = pd.nodes()
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "alice"}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    assert r.status_code == 200
    [pseen], [dseen] = p.seen, d.seen
    assert pseen.body["max_tokens"] == 1
    assert pseen.body["stream"] is False  # never stream the prefill leg (a known proxy bug)
    assert "stream_options" not in pseen.body
    assert "kv_transfer_params" not in pseen.body
    assert dseen.body == body  # decode gets the original request, byte for byte in meaning
    assert pseen.headers["X-Request-Id"] == dseen.headers["X-Request-Id"]


async def test_store_flow_keeps_an_absent_max_tokens_absent_on_decode(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="store")
    (p,), (d,) = pd.nodes()
    body = {"model": "m", "prompt": "x"}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    assert r.status_code == 200
    assert "max_tokens" not in d.seen[0].body
    assert p.seen[0].body["max_tokens"] == 1


async def test_nixl_flow_fields(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="nixl")
    (p,), (d,) = pd.nodes()
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "min_tokens": 2}
    r = await client.post(pd.url_for("v1/completions"), json=body)
    assert r.status_code == 200
    sent = p.seen[0].body
    # toy_proxy_server.py send_request_to_service
    assert sent["kv_transfer_params"] == {
        "do_remote_decode": True,
        "do_remote_prefill": False,
        "remote_engine_id": None,
        "remote_block_ids": None,
        "remote_host": None,
        "remote_port": None,
    }
    assert sent["stream"] is False and sent["max_tokens"] == 1
    assert "stream_options" not in sent and "min_tokens" not in sent
    got = d.seen[0].body
    # decode: the original body plus P's kv_transfer_params verbatim
    assert got["kv_transfer_params"]["remote_block_ids"] == [1, 2, 3]
    assert got["kv_transfer_params"]["remote_engine_id"] == "engine-p0"
    assert got["kv_transfer_params"]["do_remote_prefill"] is True
    assert {k: v for k, v in got.items() if k != "kv_transfer_params"} == body


async def test_nixl_chat_sets_max_completion_tokens_1_on_prefill(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="nixl")
    (p,), (d,) = pd.nodes()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5}
    r = await client.post(pd.url_for("v1/chat/completions"), json=body)
    assert r.status_code == 200, r.text
    assert p.seen[0].path == "/v1/chat/completions" and d.seen[0].path == "/v1/chat/completions"
    assert p.seen[0].body["max_completion_tokens"] == 1 and p.seen[0].body["max_tokens"] == 1
    assert d.seen[0].body["max_completion_tokens"] == 5
    assert r.json()["object"] == "chat.completion"


async def test_nixl_prefill_that_stopped_early_lets_decode_recompute(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="nixl")
    (p,), (d,) = pd.nodes()
    p.tokens = 0  # finishes by stop before max_tokens: vLLM sends no kv_transfer_params
    p.finish_reason = "stop"
    r = await client.post(pd.url_for("v1/completions"), json=BODY)
    assert r.status_code == 200
    assert "kv_transfer_params" not in d.seen[0].body
    metrics = (await client.get(pd.url_for("metrics"))).text
    assert 'kvtest_proxy_kv_transfer_params_missing_total{finish_reason="stop"' in metrics


async def test_mooncake_flow_fields(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="mooncake")
    (p,), (d,) = pd.nodes()
    for _ in range(2):
        r = await client.post(pd.url_for("v1/completions"), json={**BODY, "stream": True})
        assert r.status_code == 200
    assert p.bootstrap_queries == 1  # /query answered once, then cached
    pbody, dbody = p.seen[0].body, d.seen[0].body
    xfer = pbody["kv_transfer_params"]["transfer_id"]
    assert xfer.startswith("xfer-")
    expected = {"do_remote_decode": True, "do_remote_prefill": False, "transfer_id": xfer}
    assert pbody["kv_transfer_params"] == expected
    assert pbody["stream"] is False and pbody["max_tokens"] == 1
    assert p.seen[0].headers["X-data-parallel-rank"] == "0"
    assert dbody["kv_transfer_params"] == {
        "do_remote_decode": False,
        "do_remote_prefill": True,
        "remote_bootstrap_addr": f"http://127.0.0.1:{p.bootstrap_port}",
        "remote_engine_id": "engine-p0",
        "remote_dp_rank": 0,
        "transfer_id": xfer,
    }
    assert dbody["stream"] is True and dbody["max_tokens"] == BODY["max_tokens"]
    assert p.seen[1].body["kv_transfer_params"]["transfer_id"] != xfer  # one id per request


async def test_mooncake_rotates_over_the_prefill_dp_ranks(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="mooncake")
    (p,), (d,) = pd.nodes()
    p.dp_size = 2
    for _ in range(4):
        assert (await client.post(pd.url_for("v1/completions"), json=BODY)).status_code == 200
    assert [s.headers["X-data-parallel-rank"] for s in p.seen] == ["0", "1", "0", "1"]
    params = [s.body["kv_transfer_params"] for s in d.seen]
    assert [x["remote_dp_rank"] for x in params] == [0, 1, 0, 1]
    assert [x["remote_engine_id"] for x in params] == ["engine-p0-dp0", "engine-p0-dp1"] * 2
