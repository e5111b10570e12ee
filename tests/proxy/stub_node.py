"""A tiny scriptable vLLM stand-in for the proxy's fault tests: faults a real vLLM cannot be made to produce.

    async with StubNode() as node:
        node.mode = "die_mid_stream"
        ...

It answers /v1/completions and /v1/chat/completions in vLLM's shapes (non-streaming JSON; SSE chunks then
`data: [DONE]`), /health, and, when `bootstrap=True`, a MooncakeConnector bootstrap `/query` on a second
port. It records every request body and headers, and every request whose client went away (`aborted`).
The full fake vLLM (simulators/vllm) replaces it for behaviour a real vLLM has.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kvtest.service import AsyncService

MODES = (
    "ok",  # answer normally
    "status",  # answer `status` with a vLLM-style error body
    "slow",  # sleep `delay` before the headers
    "hang_mid_stream",  # send `events_before_fault` events, then nothing
    "die_mid_stream",  # send `events_before_fault` events, then cut the connection
    "die_before_headers",  # cut the connection without answering
    "no_done",  # stream ends cleanly without [DONE]
    "garbage",  # 200 with a body that is not JSON / not SSE
    "empty",  # 200 with an empty body
    "no_kv_params",  # NIXL prefill that omits kv_transfer_params although it finished by length
)


@dataclass
class Seen:
    path: str
    body: dict[str, Any]
    headers: Mapping[str, str]  # case-insensitive, as received
    peer: tuple[str, int] | None = None  # the client's (the proxy's) address and port
    at: float = field(default_factory=time.monotonic)


class StubNode(AsyncService):
    def __init__(
        self, *, bootstrap: bool = False, engine_id: str = "engine-0", tokens: int = 4, dp_size: int = 1
    ):
        self.mode = "ok"
        self.status = 500
        self.delay = 0.0
        self.events_before_fault = 2
        self.tokens = tokens
        self.finish_reason = "length"
        self.health_status = 200
        self.bootstrap = bootstrap
        self.engine_id = engine_id
        self.dp_size = dp_size
        self.query_status = 200
        self.seen: list[Seen] = []
        self.aborted: list[str] = []
        self.bootstrap_queries = 0
        self._runner: web.AppRunner | None = None
        self._boot_runner: web.AppRunner | None = None
        self.port = 0
        self.bootstrap_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    async def start(self) -> StubNode:
        app = web.Application()
        app.router.add_post("/v1/completions", self._generate)
        app.router.add_post("/v1/chat/completions", self._generate)
        app.router.add_get("/health", self._health)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.bootstrap:
            boot = web.Application()
            boot.router.add_get("/query", self._query)
            self._boot_runner = web.AppRunner(boot, access_log=None)
            await self._boot_runner.setup()
            bsite = web.TCPSite(self._boot_runner, "127.0.0.1", 0)
            await bsite.start()
            self.bootstrap_port = bsite._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for runner in (self._runner, self._boot_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._boot_runner = None

    # -- handlers ------------------------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=self.health_status)

    async def _query(self, request: web.Request) -> web.Response:
        self.bootstrap_queries += 1
        if self.query_status != 200:
            return web.json_response({"detail": "bootstrap not ready"}, status=self.query_status)
        # vLLM MooncakeBootstrapServer.query: dict[dp_rank, EngineEntry]
        ranks = {
            str(r): {"engine_id": f"{self.engine_id}-dp{r}" if self.dp_size > 1 else self.engine_id,
                     "worker_addr": {"0": {"0": "127.0.0.1:1"}}}
            for r in range(self.dp_size)
        }  # fmt: skip
        return web.json_response(ranks)

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(Seen(request.path, body, request.headers.copy(), peer))
        req_id = request.headers.get("X-Request-Id", "")
        try:
            return await self._answer(request, body)
        except asyncio.CancelledError:
            self.aborted.append(req_id)
            raise

    async def _answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        mode = self.mode
        if mode == "slow" or self.delay:
            await asyncio.sleep(self.delay)
        if mode == "status":
            # vLLM's ErrorResponse (vllm/entrypoints/openai/protocol.py)
            message = f"stub error {self.status}"
            err = {"error": {"message": message, "type": "BadRequestError", "code": self.status}}
            return web.json_response(err, status=self.status)
        if mode == "die_before_headers":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(10)
        if mode == "garbage":
            return web.Response(body=b"<html>not json</html>", content_type="text/html")
        if mode == "empty":
            return web.Response(body=b"", content_type="application/json")
        chat = request.path.endswith("chat/completions")
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 16
        n = min(self.tokens, int(limit))
        finish = "length" if n >= int(limit) else self.finish_reason
        if body.get("stream") is True:
            return await self._stream(request, body, chat, n, finish)
        text = "".join(f"t{i} " for i in range(n))
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        answer: dict[str, Any] = {
            "id": "cmpl-stub",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [choice],
            "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n},
        }
        params = body.get("kv_transfer_params") or {}
        # vLLM NixlConnector.request_finished: params go back only when P finished by length.
        if params.get("do_remote_decode") and finish == "length" and mode != "no_kv_params":
            answer["kv_transfer_params"] = {
                "do_remote_prefill": True,
                "do_remote_decode": False,
                "remote_block_ids": [1, 2, 3],
                "remote_engine_id": self.engine_id,
                "remote_request_id": "req-stub",
                "remote_host": "127.0.0.1",
                "remote_port": 5600,
                "tp_size": 1,
            }
        return web.json_response(answer)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], chat: bool, n: int, finish: str
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for i in range(n):
            if self.mode in ("hang_mid_stream", "die_mid_stream") and i == self.events_before_fault:
                if self.mode == "die_mid_stream":
                    # Half an event, then the connection goes.
                    await resp.write(b'data: {"id": "cmpl-stub", "choi')
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await asyncio.sleep(3600)
            delta: dict[str, Any] = (
                {"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}
                if chat
                else {"index": 0, "text": f"t{i} ", "finish_reason": None}
            )
            if i == n - 1:
                delta["finish_reason"] = finish
            event = {
                "id": "cmpl-stub",
                "object": "chat.completion.chunk" if chat else "text_completion",
                "choices": [delta],
            }
            await resp.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        if self.mode != "no_done":
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
