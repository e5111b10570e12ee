"""Client disconnects, /health, /status, /metrics, and the `kvtest proxy` command."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kvtest.ports import free_port
from kvtest.process import ManagedProcess
from kvtest.readiness import HttpProbe, wait_ready_async

from .conftest import StartPD

BODY = {"model": "m", "prompt": "San Francisco is a", "max_tokens": 8}


# A cap on waiting for something the proxy does at once (an abort, a forward): it returns as soon as
# that happens, so this only bounds a hang (3 s of wall clock did not survive a loaded machine).
EVENT_CAP_S = 60.0
# A node that "is still working" when the client walks away: longer than any load can delay the
# walking away; teardown cancels it, so nothing waits this long.
BUSY_NODE_S = 120.0


async def _eventually(check: Callable[[], bool], within: float = EVENT_CAP_S) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.01)


async def _abandon(
    client: httpx.AsyncClient, url: str, body: dict[str, object], reached: Callable[[], bool]
) -> None:
    """Send, wait until the request has `reached` the nodes, then walk away. (Walking away after a
    fixed 0.2 s raced the proxy: on a loaded machine it had not forwarded yet, and no node saw it.)"""
    task = asyncio.ensure_future(client.post(url, json=body))
    await _eventually(reached)
    task.cancel()  # httpx closes the connection
    await asyncio.gather(task, return_exceptions=True)


async def test_disconnect_during_prefill_aborts_it_and_never_calls_decode(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1)
    (p,), (d,) = pd.nodes()
    p.delay = BUSY_NODE_S
    await _abandon(client, pd.url_for("v1/completions"), BODY, reached=lambda: len(p.seen) == 1)
    await _eventually(lambda: len(p.aborted) == 1)
    await asyncio.sleep(0.1)
    assert not d.seen


async def test_disconnect_mid_stream_aborts_decode(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1)
    (_,), (d,) = pd.nodes()
    d.mode, d.tokens = "hang_mid_stream", 6
    async with client.stream("POST", pd.url_for("v1/completions"), json={**BODY, "stream": True}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                break  # got the first event; now walk away
    await _eventually(lambda: len(d.aborted) == 1)
    metrics = (await client.get(pd.url_for("metrics"))).text
    assert "kvtest_proxy_leg_in_flight" in metrics


async def test_disconnect_aborts_both_concurrent_mooncake_legs(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1, flow="mooncake")
    (p,), (d,) = pd.nodes()
    p.delay = d.delay = BUSY_NODE_S
    await _abandon(client, pd.url_for("v1/completions"), {**BODY, "stream": True},
                   reached=lambda: len(p.seen) == 1 and len(d.seen) == 1)  # fmt: skip
    await _eventually(lambda: len(p.aborted) == 1 and len(d.aborted) == 1)
    assert p.aborted[0] == d.aborted[0]  # the same request (X-Request-Id) on both legs


async def test_health_follows_the_backends(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=2, n_decode=1)
    prefill, (d,) = pd.nodes()
    r = await client.get(pd.url_for("health"))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    prefill[0].health_status = 503  # one prefill down: still serving
    r = await client.get(pd.url_for("health"))
    assert r.status_code == 200
    assert r.json()["prefill"][prefill[0].url] == "status 503"
    await d.stop()  # no decode left
    r = await client.get(pd.url_for("health"))
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable" and body["error"]["code"] == 503
    assert body["decode"][d.url].startswith("unreachable")


async def test_status_lists_nodes_and_config(start_pd: StartPD, client: httpx.AsyncClient) -> None:
    pd = await start_pd(n_prefill=2, n_decode=1, strategy="prefix", flow="nixl", seed=3)
    prefill, _ = pd.nodes()
    body = (await client.get(pd.url_for("status"))).json()
    assert body["strategy"] == "prefix" and body["flow"] == "nixl" and body["seed"] == 3
    assert [n["url"] for n in body["prefill"]] == [n.url for n in prefill]
    assert all(n["in_flight"] == 0 for n in body["prefill"])


async def test_metrics_count_requests_errors_and_latency_per_node_and_leg(
    start_pd: StartPD, client: httpx.AsyncClient
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1)
    (p,), (d,) = pd.nodes()
    for _ in range(3):
        assert (await client.post(pd.url_for("v1/completions"), json=BODY)).status_code == 200
    p.mode, p.status = "status", 500
    assert (await client.post(pd.url_for("v1/completions"), json=BODY)).status_code == 502
    r = await client.get(pd.url_for("metrics"))
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'kvtest_proxy_requests_total{endpoint="/v1/completions",status="200"} 3.0' in text
    assert 'kvtest_proxy_requests_total{endpoint="/v1/completions",status="502"} 1.0' in text
    assert f'kvtest_proxy_leg_requests_total{{leg="prefill",node="{p.url}",outcome="ok"}} 3.0' in text
    assert f'kvtest_proxy_leg_errors_total{{kind="http_5xx",leg="prefill",node="{p.url}"}} 1.0' in text or (
        f'kvtest_proxy_leg_errors_total{{leg="prefill",node="{p.url}",kind="http_5xx"}} 1.0' in text
    )
    assert f'kvtest_proxy_leg_duration_seconds_count{{leg="decode",node="{d.url}"}} 3.0' in text
    assert 'kvtest_proxy_request_duration_seconds_count{endpoint="/v1/completions"} 4.0' in text


def test_cli_rejects_a_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    from kvtest.proxy.cli import main

    assert main(["--prefill", "http://127.0.0.1", "--decode", "http://127.0.0.1:1"]) == 2
    assert "needs a host and a port" in capsys.readouterr().err


async def test_kvtest_proxy_command_serves(
    start_pd: StartPD, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1)
    (p,), (d,) = pd.nodes()
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "kvtest",
        "proxy",
        "--port",
        str(port),
        "--prefill",
        p.url,
        "--decode",
        d.url,
    ]
    proc = ManagedProcess("proxy", argv, log_path=tmp_path / "proxy.log")
    try:
        proc.start()
        # the stub nodes serve on this loop: the waiter probes from a worker thread meanwhile
        await wait_ready_async(proc, [HttpProbe(f"http://127.0.0.1:{port}/health")], 20)
        r = await client.post(f"http://127.0.0.1:{port}/v1/completions", json=BODY)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == "t0 t1 t2 t3 "
    finally:
        proc.stop()


@pytest.mark.parametrize("stream", [False, True])
async def test_one_pooled_session_reuses_backend_connections(
    start_pd: StartPD, client: httpx.AsyncClient, stream: bool
) -> None:
    pd = await start_pd(n_prefill=1, n_decode=1)
    (p,), (d,) = pd.nodes()
    for _ in range(8):
        r = await client.post(pd.url_for("v1/completions"), json={**BODY, "stream": stream})
        assert r.status_code == 200
    # Sequential requests: one keep-alive connection per backend, not one per request.
    assert len({s.peer for s in p.seen}) == 1
    assert len({s.peer for s in d.seen}) == 1


async def test_stop_does_not_wait_for_a_stream_that_never_ends(start_pd: StartPD) -> None:
    # a stop that waited for the stream would wait for the proxy's read timeout: that is the bound
    # (far above what load adds; 5 s of wall clock was not)
    read_timeout = 120.0
    pd = await start_pd(n_prefill=1, n_decode=1, read_timeout=read_timeout)
    (_,), (d,) = pd.nodes()
    d.mode, d.tokens = "hang_mid_stream", 6
    assert pd.proxy is not None
    url = pd.url_for("v1/completions")
    async with (
        httpx.AsyncClient(timeout=read_timeout + 30) as c,
        c.stream("POST", url, json={**BODY, "stream": True}) as r,
    ):
        assert r.status_code == 200
        start = time.monotonic()
        await pd.proxy.stop()
        assert time.monotonic() - start < read_timeout / 2
