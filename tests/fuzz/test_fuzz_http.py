"""Every HTTP surface answers bad input with a 4xx, never a 5xx, never a hang (issue 9, part 4).

The default run sends a few hundred derandomized cases per surface. `pytest -m slow tests/fuzz` sends
KVTEST_FUZZ_EXAMPLES (default 10,000) per surface and prints the count and the status histogram.
A failure prints the request that caused it (hypothesis shrinks it first).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from .strategies import requests
from .surfaces import Surfaces, surfaces
from .wire import FuzzRequest

SURFACES = ["vllm", "proxy", "master-admin", "metadata"]
DEFAULT_EXAMPLES = 250


@pytest.fixture(scope="module")
def servers() -> Iterator[Surfaces]:
    with surfaces() as s:
        yield s


def _fuzz(servers: Surfaces, name: str, examples: int) -> None:
    surface = servers.by_name[name]

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate, Phase.shrink],  # no explicit/replayed examples: the same cases every run
        suppress_health_check=list(HealthCheck),
    )
    @given(req=requests(surface.routes))
    def case(req: FuzzRequest) -> None:
        out = surface.hit(req)
        problem = surface.problem(req, out)
        assert problem is None, f"{name}: {req.describe()}\n  -> {problem}"

    case()


@pytest.mark.parametrize("name", SURFACES)
def test_bad_input_gets_a_4xx_never_a_5xx_or_a_hang(servers: Surfaces, name: str) -> None:
    _fuzz(servers, name, DEFAULT_EXAMPLES)
    surface = servers.by_name[name]
    print(surface.summary())
    # the cases reached the server's refusals and its successes, not only one of them
    assert any(400 <= int(k) < 500 for k in surface.histogram if k.isdigit()), surface.summary()
    assert any(200 <= int(k) < 300 for k in surface.histogram if k.isdigit()), surface.summary()


def _slow_selected(config: pytest.Config) -> bool:
    return re.search(r"(?<!not )\bslow\b", str(config.getoption("markexpr") or "")) is not None


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", SURFACES)
def test_ten_thousand_bad_requests_per_surface(
    servers: Surfaces, name: str, request: pytest.FixtureRequest
) -> None:
    """Minutes long, so it runs only when asked for: `pytest -m slow tests/fuzz -s` (-n 4: in parallel)."""
    if not _slow_selected(request.config):
        pytest.skip("runs only with -m slow (10,000 requests per surface)")
    examples = int(os.environ.get("KVTEST_FUZZ_EXAMPLES", "10000"))
    surface = servers.by_name[name]
    before = surface.count
    surface.histogram.clear()
    surface.progress_every = 1000
    _fuzz(servers, name, examples)
    print(surface.summary())
    assert surface.count - before >= examples
    assert (
        not any(k.isdigit() and int(k) >= 500 for k in surface.histogram) and "hang" not in surface.histogram
    )


# Cases the fuzzer found or is built to find, pinned so that they are sent on every run.
STALLED = FuzzRequest(
    "POST", "/v1/completions", (("Content-Type", "application/json"),), b'{"prompt": "x"}', "stall", 5
)


@pytest.mark.parametrize(
    ("name", "target"), [("vllm", None), ("proxy", None), ("metadata", "/metadata?key=k")]
)
def test_a_stalled_body_gets_408_not_a_hang(servers: Surfaces, name: str, target: str | None) -> None:
    surface = servers.by_name[name]
    req = STALLED if target is None else FuzzRequest("PUT", target, (), b"0123456789", "stall", 5)
    out = surface.hit(req)
    assert out.label == "408", (out, out.body)


@pytest.mark.parametrize("name", ["vllm", "proxy"])
def test_a_body_cut_short_ends_the_connection_quietly(servers: Surfaces, name: str) -> None:
    """The client closes its side mid-body: aiohttp drops the connection (as uvicorn drops the request);
    the handler's 400 goes nowhere, and nothing is answered 5xx or logged as a server error."""
    surface = servers.by_name[name]
    req = FuzzRequest(
        "POST", "/v1/completions", (("Content-Type", "application/json"),), b'{"prompt": "x"}', "cut", 5
    )
    out = surface.hit(req)
    assert out.label in ("closed", "400"), (out, out.body)
    ok = surface.hit(FuzzRequest("GET", "/metrics", (), b""))
    assert ok.label == "200"


def test_proxy_streams_when_stream_is_a_string_true(servers: Surfaces) -> None:
    """vLLM takes "stream": "true" as true (pydantic's lax bool) and answers SSE; the proxy relayed that
    answer as a 502 ("not a JSON object") until it read the field the same way."""
    body = b'{"model": "tiny", "prompt": "hello", "max_tokens": 3, "stream": "true"}'
    req = FuzzRequest("POST", "/v1/completions", (("Content-Type", "application/json"),), body)
    out = servers.by_name["proxy"].hit(req)
    assert out.label == "200" and out.body.rstrip().endswith(b"data: [DONE]"), (out, out.body)
