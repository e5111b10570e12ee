"""PDProxy: the seed's proxy_server.py made correct (aiohttp app, one pooled client session).

    async with PDProxy(ProxyConfig(prefill=[p.url], decode=[d.url], flow="store")) as proxy:
        httpx.post(proxy.url_for("v1", "completions"), json={"model": "m", "prompt": "hi", "max_tokens": 4})

Routes: POST /v1/completions, POST /v1/chat/completions, GET /health, /status, /metrics.
Every failure is a status with an OpenAI-style JSON body (errors.py); a decode stream that breaks after
its first event ends with a JSON error event and `data: [DONE]` (sse.py). A client that disconnects
cancels the handler (handler_cancellation=True), which closes both backend connections, and vLLM aborts
a request whose connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kvtest.proxy import sse
from kvtest.proxy.config import Node, ProxyConfig
from kvtest.proxy.designation import parse_designation
from kvtest.proxy.errors import ProxyError, backend_message, error_body, leg_http_error
from kvtest.proxy.flows import FLOWS
from kvtest.proxy.flows.mooncake import parse_bootstrap_query
from kvtest.proxy.metrics import ProxyMetrics
from kvtest.proxy.routing import Router
from kvtest.service import AsyncService

log = logging.getLogger("kvtest.proxy")

# A decode "stream" that sends this much without one event boundary is not SSE.
_MAX_PENDING_EVENT = 4 * 1024 * 1024
_JSON = "application/json"


class PDProxy(AsyncService):
    def __init__(self, config: ProxyConfig):
        self.config = config
        self.router = Router(config)
        self.flow = FLOWS[config.flow]()
        self.metrics = ProxyMetrics()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = config.port
        self._bootstrap: dict[str, dict[int, str]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._started = 0.0
        key = os.environ.get("OPENAI_API_KEY")
        self._default_auth = f"Bearer {key}" if key else None

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self._port}"

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes, middlewares=[_json_http_errors])
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/health", self._health)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self) -> PDProxy:
        cfg = self.config
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=cfg.connect_timeout,
            sock_connect=cfg.connect_timeout,
            sock_read=cfg.read_timeout,
        )
        # One pooled session for every leg; no per-host connection cap (the backends queue, not us).
        self._session = aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=0, limit_per_host=0)
        )
        # handler_cancellation: a client that leaves cancels its handler, which closes both legs.
        # shutdown_timeout: stop() gives open streams this grace (aiohttp waits it twice), then cuts them.
        self._runner = web.AppRunner(
            self.build_app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        if self.router.kv_aware is not None:
            await self.router.kv_aware.start()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._started = time.time()
        return self

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.router.kv_aware is not None:
            await self.router.kv_aware.stop()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "PDProxy not started"
        return self._session

    # -- request handling ----------------------------------------------------------------------------
    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "/v1/completions")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "/v1/chat/completions")

    async def _handle(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        req_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        try:
            body = await self._read_json(request)
            designation = parse_designation(body.get("user"))
            prefill, decode = self.router.pick(body, designation)
            headers = self._leg_headers(request, req_id)
            # as vLLM reads it (pydantic's lax bool): "true", 1, "on"... stream too, and D answers SSE
            stream = _lax_true(body.get("stream"))
            resp = await self.flow.forward(self, request, endpoint, body, prefill, decode, headers, stream)
            status = resp.status
            return resp
        except ProxyError as exc:
            status = exc.status
            return exc.response({"X-Request-Id": req_id})
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499  # client went away (nginx's code for it); a cut body ends here too
            raise
        except Exception as exc:  # a proxy bug must still answer a status and a JSON body
            log.exception("proxy error on %s", endpoint)
            return ProxyError(500, f"proxy internal error: {exc!r}").response({"X-Request-Id": req_id})
        finally:
            self.metrics.request_done(endpoint, status, time.perf_counter() - start)

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ProxyError(
                413, f"request body of {request.content_length} bytes exceeds the {limit}-byte limit"
            )
        try:
            raw = await asyncio.wait_for(request.read(), self.config.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            raise ProxyError(413, f"request body exceeds the {limit}-byte limit") from None
        except TimeoutError:
            raise ProxyError(
                408, f"the request body did not arrive within {self.config.body_timeout:g}s"
            ) from None
        except ConnectionResetError:
            raise ProxyError(400, "the request body ended before its Content-Length") from None
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProxyError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ProxyError(400, f"request body must be a JSON object, got {type(body).__name__}")
        return body

    def _leg_headers(self, request: web.Request, req_id: str) -> dict[str, str]:
        headers = {"Content-Type": _JSON, "X-Request-Id": req_id}
        auth = request.headers.get("Authorization") or self._default_auth
        if auth:
            headers["Authorization"] = auth
        return headers

    # -- what a flow is given (flows/base.py Legs) -----------------------------------------------------
    def keep_in_background(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(_forget(self._background))

    async def bootstrap_engines(self, node: Node) -> dict[int, str]:
        cached = self._bootstrap.get(node.url)
        if cached is not None:
            return cached
        url = node.bootstrap_url + "/query"
        try:
            async with self.session.get(url) as r:
                raw = await r.read()
                if r.status != 200:
                    # Any bootstrap failure is the deployment's, never the client's: always 502.
                    message, _ = backend_message(raw)
                    raise ProxyError(
                        502, f"prefill bootstrap {url} answered {r.status}: {message}", leg="prefill"
                    )
            data = json.loads(raw)
        except ProxyError:
            self.metrics.leg_errors.labels("prefill", node.url, "bootstrap").inc()
            raise
        except (ValueError, UnicodeDecodeError):
            self.metrics.leg_errors.labels("prefill", node.url, "bootstrap").inc()
            raise ProxyError(
                502, f"bootstrap {url} answered a body that is not JSON", leg="prefill"
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            self.metrics.leg_errors.labels("prefill", node.url, "bootstrap").inc()
            _, error = _transport_error("prefill bootstrap", url, exc)
            raise error from None
        engines = parse_bootstrap_query(data)
        self._bootstrap[node.url] = engines
        return engines

    # -- legs ----------------------------------------------------------------------------------------
    def _enter(self, leg: str, node: Node) -> None:
        self.router.in_flight[node.url] = self.router.in_flight.get(node.url, 0) + 1
        self.metrics.leg_started(leg, node.url)

    def _leave(self, leg: str, node: Node, outcome: str, start: float) -> None:
        self.router.in_flight[node.url] -= 1
        self.metrics.leg_done(leg, node.url, outcome, time.perf_counter() - start)

    async def prefill_leg(
        self, node: Node, endpoint: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        url = node.url + endpoint
        start = time.perf_counter()
        outcome = "ok"
        self._enter("prefill", node)
        try:
            async with self.session.post(url, data=json.dumps(body).encode(), headers=headers) as r:
                raw = await r.read()
                status = r.status
            if status >= 400:
                outcome = f"http_{status // 100}xx"
                raise leg_http_error("prefill", node.url, status, raw)
            try:
                answer = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                answer = None
            if not isinstance(answer, dict):
                outcome = "invalid"
                raise ProxyError(
                    502,
                    f"prefill node {node.url} answered {status} with a body that is not a JSON object: "
                    f"{raw[:120]!r}",
                    leg="prefill",
                )
            return answer
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome, error = _transport_error("prefill", node.url, exc)
            self._bootstrap.pop(node.url, None)  # a node that went away may come back with a new engine id
            raise error from None
        except asyncio.CancelledError:
            outcome = "aborted"
            raise
        finally:
            self._leave("prefill", node, outcome, start)

    async def decode_leg(
        self,
        request: web.Request,
        node: Node,
        endpoint: str,
        body: dict[str, Any],
        headers: dict[str, str],
        stream: bool,
        prefill_task: asyncio.Future[dict[str, Any]] | None = None,
    ) -> web.StreamResponse:
        start = time.perf_counter()
        outcome = "ok"
        self._enter("decode", node)
        try:
            opening_coro = self._open_decode(node, endpoint, body, headers, stream)
            try:
                if prefill_task is None:  # sequential flows: no task needed
                    r, first = await opening_coro
                else:
                    r, first = await self._race_prefill(opening_coro, prefill_task)
            except ProxyError as exc:
                outcome = "aborted" if exc.leg == "prefill" else _outcome_of(exc)
                raise
            req_id = headers["X-Request-Id"]
            if not stream:
                return web.Response(
                    status=r.status, body=first, content_type=_JSON, headers={"X-Request-Id": req_id}
                )
            clean = False
            try:
                resp, outcome = await self._relay(request, node, r, first, req_id)
                clean = outcome == "ok"
            finally:
                # A stream read to its end goes back to the pool (keep-alive); anything else is cut,
                # which is how the backend learns to abort.
                r.release() if clean else r.close()
            return resp
        except asyncio.CancelledError:
            outcome = "aborted"
            raise
        finally:
            self._leave("decode", node, outcome, start)

    async def _race_prefill(
        self, opening_coro: Any, prefill_task: asyncio.Future[dict[str, Any]]
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Concurrent legs: a prefill failure before decode's first event decides the answer."""
        opening = asyncio.ensure_future(opening_coro)
        pending: set[asyncio.Future[Any]] = {opening, prefill_task}
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            opening.cancel()  # asyncio.wait leaves its futures running; the client is gone
            await asyncio.gather(opening, return_exceptions=True)
            raise
        failed = prefill_task.done() and not prefill_task.cancelled() and prefill_task.exception()
        if not opening.done() and failed:
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            raise failed
        return await opening

    async def _open_decode(
        self, node: Node, endpoint: str, body: dict[str, Any], headers: dict[str, str], stream: bool
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        """Send the decode request and read up to its first whole event (stream) or its whole body.

        Everything that can fail here fails before the client has a byte, so it becomes a status.
        """
        try:
            r = await self.session.post(node.url + endpoint, data=json.dumps(body).encode(), headers=headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error("decode", node.url, exc)[1] from None
        try:
            if r.status >= 400:
                raise leg_http_error("decode", node.url, r.status, await r.read())
            if not stream:
                raw = await r.read()
                try:
                    parsed = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    parsed = None
                if not isinstance(parsed, dict):
                    what = (
                        "an empty body"
                        if not raw.strip()
                        else f"a body that is not a JSON object: {raw[:120]!r}"
                    )
                    raise ProxyError(
                        502, f"decode node {node.url} answered {r.status} with {what}", leg="decode"
                    )
                r.release()
                return r, raw
            events = sse.EventBuffer()
            first = b""
            while not first:
                chunk = await r.content.readany()
                if not chunk:
                    raise ProxyError(
                        502, f"decode node {node.url} ended its stream before the first event", leg="decode"
                    )
                first = events.feed(chunk)
                if len(events.pending) > _MAX_PENDING_EVENT:
                    raise ProxyError(502, f"decode node {node.url} is not sending SSE events", leg="decode")
            r._kvtest_events = events  # type: ignore[attr-defined]
            return r, first
        except (TimeoutError, aiohttp.ClientError) as exc:
            r.close()
            raise _transport_error("decode", node.url, exc)[1] from None
        except BaseException:
            r.close()
            raise

    async def _relay(
        self, request: web.Request, node: Node, r: aiohttp.ClientResponse, first: bytes, req_id: str
    ) -> tuple[web.StreamResponse, str]:
        """Relay decode's SSE stream from its first whole event on; returns the response and the outcome."""
        events: sse.EventBuffer = r._kvtest_events  # type: ignore[attr-defined]
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": sse.CONTENT_TYPE, "Cache-Control": "no-cache", "X-Request-Id": req_id},
        )
        try:
            await resp.prepare(request)
            await resp.write(first)
            outcome = "ok"
            tail = b""
            while True:
                try:
                    chunk = await r.content.readany()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    outcome, error = _transport_error("decode", node.url, exc)
                    tail = sse.error_event(error.status, error.message + " (mid-stream)") + sse.DONE
                    break
                if not chunk:
                    if not events.done:
                        outcome = "truncated"
                        tail = (
                            sse.error_event(502, f"decode node {node.url} ended its stream without [DONE]")
                            + sse.DONE
                        )
                    elif events.pending:
                        tail = events.pending
                    break
                whole = events.feed(chunk)
                if whole:
                    await resp.write(whole)
            if tail:
                await resp.write(tail)
            await resp.write_eof()
            return resp, outcome
        except ConnectionResetError:  # the client went away mid-stream; closing r aborts decode
            return resp, "client_gone"

    # -- health, status, metrics ---------------------------------------------------------------------
    async def _probe(self, node: Node) -> str:
        timeout = aiohttp.ClientTimeout(total=self.config.health_timeout)
        try:
            async with self.session.get(node.url + "/health", timeout=timeout) as r:
                await r.read()
                return "ok" if r.status == 200 else f"status {r.status}"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return f"unreachable: {type(exc).__name__}"

    async def _health(self, request: web.Request) -> web.Response:
        """200 while at least one prefill and one decode node answer their /health; 503 otherwise."""
        nodes = [*self.router.prefill, *self.router.decode]
        states = await asyncio.gather(*(self._probe(n) for n in nodes))
        report: dict[str, dict[str, str]] = {"prefill": {}, "decode": {}}
        for node, state in zip(nodes, states, strict=True):
            report[node.role][node.url] = state
        ok = all(any(s == "ok" for s in report[role].values()) for role in ("prefill", "decode"))
        body = {"status": "ok" if ok else "unavailable", **report}
        if not ok:
            down = [
                role for role in ("prefill", "decode") if not any(s == "ok" for s in report[role].values())
            ]
            body["error"] = error_body(503, f"no healthy {' or '.join(down)} node")["error"]
        return web.json_response(body, status=200 if ok else 503)

    async def _status(self, request: web.Request) -> web.Response:
        def node_info(node: Node) -> dict[str, Any]:
            return {
                "url": node.url,
                "hostport": node.hostport,
                "in_flight": self.router.in_flight.get(node.url, 0),
            }

        return web.json_response(
            {
                "strategy": self.config.strategy,
                "flow": self.config.flow,
                "seed": self.config.seed,
                "allow_any_designation": self.config.allow_any_designation,
                "uptime_s": round(time.time() - self._started, 3),
                "prefill": [node_info(n) for n in self.router.prefill],
                "decode": [node_info(n) for n in self.router.decode],
                "timeouts": {"connect": self.config.connect_timeout, "read": self.config.read_timeout},
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        if self.router.kv_aware is not None:
            body += ("\n".join(self.router.kv_aware.metrics_lines()) + "\n").encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def _json_http_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own 404/405/413 answers are plain text; make them OpenAI-style JSON too."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = f"{request.method} {request.path}: {exc.reason}"
        return web.Response(
            status=exc.status, body=json.dumps(error_body(exc.status, message)).encode(), content_type=_JSON
        )


_TRUE_WORDS = {"true", "1", "yes", "on", "t", "y"}


def _lax_true(value: object) -> bool:
    """pydantic's lax boolean: what a vLLM node takes as true for `stream`."""
    if isinstance(value, str):
        return value.lower() in _TRUE_WORDS
    return value is True or (type(value) is int and value == 1)


def _transport_error(leg: str, url: str, exc: BaseException) -> tuple[str, ProxyError]:
    """Outcome label and proxy error for a connection-level failure: refused -> 502, timeouts -> 504."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "timeout", ProxyError(504, f"{leg} node {url}: connect timed out", leg=leg)
    if isinstance(exc, TimeoutError):
        return "timeout", ProxyError(504, f"{leg} node {url}: no data within the read timeout", leg=leg)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused", ProxyError(502, f"{leg} node {url} is unreachable: {exc.os_error}", leg=leg)
    return "broken", ProxyError(502, f"{leg} node {url} failed: {exc!r}", leg=leg)


def _outcome_of(exc: ProxyError) -> str:
    return "timeout" if exc.status == 504 else ("http_4xx" if exc.status < 500 else "error")


def _forget(tasks: set[asyncio.Task[Any]]) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done
