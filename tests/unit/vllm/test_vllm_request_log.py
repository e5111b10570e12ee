"""--enable-log-requests: a user debugging a proxy sees what reached each node (issue 9, part 5)."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import httpx
import pytest

from kvtest.ports import free_port
from kvtest.process import ManagedProcess, http_ok
from kvtest.proxy import PDProxy, ProxyConfig
from simulators.vllm import FakeVLLMServer, SimConfig
from simulators.vllm.request_log import ACCESS_LOGGER, REQUEST_LOGGER

ROOT = Path(__file__).resolve().parents[3]
# uvicorn's access line as vLLM prints it, plus the fake's duration
ACCESS = re.compile(r'^127\.0\.0\.1:\d+ - "POST /v1/completions HTTP/1\.1" 200 OK \(\d+\.\d ms\)$')


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


async def test_nodes_log_nothing_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with FakeVLLMServer(SimConfig(port=0)) as node, httpx.AsyncClient(base_url=node.url) as c:
        assert (await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})).status_code == 200
    assert not _lines(caplog, ACCESS_LOGGER) and not _lines(caplog, REQUEST_LOGGER)


async def test_a_request_through_the_proxy_shows_on_both_nodes_under_its_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The proxy forwards X-Request-Id to both legs; vLLM names the engine request after it
    (serving.py _base_request_id: `cmpl-<X-Request-Id>-<prompt index>`), so the prefill's line and the
    decode's line carry the id the client sent, and the prefill's shows the proxy's max_tokens=1."""
    caplog.set_level(logging.INFO)
    cfg = dict(port=0, enable_log_requests=True, disable_access_log_for_endpoints="/health")
    async with (
        FakeVLLMServer(SimConfig(**cfg)) as p,
        FakeVLLMServer(SimConfig(**cfg)) as d,
        PDProxy(ProxyConfig(prefill=[p.url], decode=[d.url])) as proxy,
        httpx.AsyncClient(base_url=proxy.url) as c,
    ):
        r = await c.post(
            "/v1/completions",
            json={"prompt": "where did it go", "max_tokens": 5, "temperature": 0.5},
            headers={"X-Request-Id": "debug-42"},
        )
        assert r.status_code == 200 and r.json()["id"] == "cmpl-debug-42"
        assert (await c.get("/health")).status_code == 200
        bad = await c.post("/v1/completions", json={"prompt": "x", "max_tokens": -1})
        assert bad.status_code == 400
    received = [line for line in _lines(caplog, REQUEST_LOGGER) if "cmpl-debug-42-0" in line]
    assert len(received) == 2, received  # one line on each node
    assert all(
        line.startswith("Received request cmpl-debug-42-0: params: SamplingParams(n=1, ") for line in received
    )
    assert sorted(re.search(r"max_tokens=(\d+)", line)[1] for line in received) == ["1", "5"]  # type: ignore[index]
    assert all("temperature=0.5" in line and line.endswith("lora_request: None.") for line in received)
    access = _lines(caplog, ACCESS_LOGGER)
    # 200 on both nodes for the first request; the bad one: its prefill leg (max_tokens=1 there) passes,
    # the decode node refuses max_tokens=-1; the proxy's /health probes are left out
    assert sum(bool(ACCESS.match(line)) for line in access) == 3, access
    assert sum('"POST /v1/completions HTTP/1.1" 400 Bad Request (' in line for line in access) == 1
    assert not any("/health" in line for line in access)


def test_serve_process_prints_vllm_lines_on_stdout_with_the_flag(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "fake.log"
    proc = ManagedProcess(
        "fake-vllm",
        [
            *(sys.executable, "-m", "simulators.vllm", "serve", "tiny"),
            *("--host", "127.0.0.1", "--port", str(port), "--enable-log-requests"),
        ],
        cwd=ROOT,
        log_path=log,
    )
    try:
        proc.start()
        proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=30)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "hi", "max_tokens": 2})
        assert r.status_code == 200
    finally:
        proc.stop()
    lines = log.read_text().splitlines()
    assert any(
        line.startswith("INFO:     ") and ACCESS.match(line.removeprefix("INFO:     ")) for line in lines
    ), lines
    assert any(
        re.match(
            r"\(APIServer pid=\d+\) INFO \d\d-\d\d [\d:]+ \[request_logger\.py\] Received request cmpl-", line
        )
        for line in lines
    ), lines
