"""The mock master as a service: RPC over TCP (protocol.py), the admin HTTP server on metrics_port,
and optionally the HTTP metadata server, plus the eviction and client-monitor loops.

    async with MockMooncakeMaster(MasterConfig(rpc_port=free_port(), metrics_port=free_port())) as m:
        store = MooncakeDistributedStore()
        store.setup("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", m.rpc_addr)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from simulators.service import AsyncService

from . import metrics
from .errors import ErrorCode, MasterError
from .flags import MasterConfig
from .master import CLIENT_MONITOR_PERIOD_S, EVICTION_PERIOD_S, MasterService
from .protocol import pack, read_msg

log = logging.getLogger("mooncake.master")
_PROM = {"Content-Type": "text/plain; version=0.0.4"}


def _json(body: object, status: int = 200) -> web.Response:
    # compact like the real admin server's JSON (no spaces after separators)
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))


_RPCS = {
    "mount_segment",
    "unmount_segment",
    "ping",
    "remove_client",
    "put_start",
    "upsert_start",
    "put_end",
    "put_revoke",
    "batch_put_start",
    "batch_put_end",
    "batch_put_revoke",
    "get_replica_list",
    "batch_get_replica_list",
    "exist_key",
    "batch_exist_key",
    "remove",
    "batch_remove",
    "remove_all",
}


@web.middleware
async def _plain_not_found(request: web.Request, handler: Any) -> web.StreamResponse:
    """The real admin server answers any other path or method with a bare `404 Not Found`."""
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return web.Response(status=404, text="404 Not Found")


class MockMooncakeMaster(AsyncService):
    def __init__(
        self, cfg: MasterConfig, logger: logging.Logger | None = None, body_timeout_s: float = 60.0
    ) -> None:
        self.cfg = cfg
        # a PUT /metadata body still incomplete after this long gets 408, so a stalled client cannot
        # hold a handler for ever
        self.body_timeout_s = body_timeout_s
        self.log = logger or log
        self.service = MasterService(cfg, logger=self.log)
        self._rpc_server: asyncio.Server | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._conns: set[asyncio.StreamWriter] = set()
        self.metadata: dict[str, bytes] = {}

    @property
    def rpc_addr(self) -> str:
        host = "127.0.0.1" if self.cfg.rpc_address in ("0.0.0.0", "") else self.cfg.rpc_address
        return f"{host}:{self.cfg.rpc_port}"

    def url_for(self, *parts: str) -> str:
        host = "127.0.0.1" if self.cfg.metrics_host in ("0.0.0.0", "::", "") else self.cfg.metrics_host
        return f"http://{host}:{self.cfg.metrics_port}/" + "/".join(p.strip("/") for p in parts)

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> MockMooncakeMaster:
        self._rpc_server = await asyncio.start_server(
            self._serve_conn, self.cfg.rpc_address or "0.0.0.0", self.cfg.rpc_port
        )
        admin = web.Application(middlewares=[_plain_not_found])
        admin.router.add_get("/metrics", self._metrics)
        admin.router.add_get("/health", self._health)
        admin.router.add_get("/query_key", self._query_key)
        admin.router.add_get("/get_all_keys", self._all_keys)
        admin.router.add_get("/get_all_segments", self._all_segments)
        await self._serve_http(admin, self.cfg.metrics_host, self.cfg.metrics_port)
        if self.cfg.enable_http_metadata_server:
            meta = web.Application()
            meta.router.add_route("*", "/metadata", self._metadata)
            await self._serve_http(
                meta, self.cfg.http_metadata_server_host, self.cfg.http_metadata_server_port
            )
        self._tasks.append(asyncio.create_task(self._loop(EVICTION_PERIOD_S, self.service.eviction_tick)))
        self._tasks.append(
            asyncio.create_task(self._loop(CLIENT_MONITOR_PERIOD_S, self.service.monitor_tick))
        )
        self.log.info(
            "Master service started on port %d, metrics_port=%d, default_kv_lease_ttl=%d, eviction_ratio=%s, "
            "eviction_high_watermark_ratio=%s, client_ttl=%d, enable_http_metadata_server=%d",
            self.cfg.rpc_port, self.cfg.metrics_port, self.cfg.default_kv_lease_ttl, self.cfg.eviction_ratio,
            self.cfg.eviction_high_watermark_ratio, self.cfg.client_ttl, self.cfg.enable_http_metadata_server,
        )  # fmt: skip
        return self

    async def _serve_http(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host or "0.0.0.0", port).start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._rpc_server is not None:
            self._rpc_server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await self._rpc_server.wait_closed()
            self._rpc_server = None
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _loop(self, period: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                fn()
            except Exception:  # a bug in one tick must not stop eviction for good
                self.log.exception("background tick failed")

    # --- RPC ----------------------------------------------------------------------------------------
    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                try:
                    method, args = await read_msg(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                writer.write(pack(self.dispatch(method, args)))
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    def dispatch(self, method: str, args: list[Any]) -> list[Any]:
        if method not in _RPCS:
            return [int(ErrorCode.INVALID_PARAMS), None]
        try:
            return [0, getattr(self.service, method)(*args)]
        except MasterError as e:
            return [e.code, None]
        except (TypeError, ValueError) as e:
            self.log.error("bad request %s%r: %s", method, args, e)
            return [int(ErrorCode.INVALID_PARAMS), None]

    # --- admin HTTP (master_admin_service.cpp) ------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(self.service).encode(), headers=_PROM)

    async def _health(self, request: web.Request) -> web.Response:
        body = {
            "status": "ok",
            "role": "leader",
            "ha_state": "serving",
            "service_ready": True,
            "leader_address": None,
            "view_version": None,
        }
        return _json(body)

    async def _query_key(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        try:
            data = self.service.query_key(key)
        except MasterError as e:
            body = {"success": False, "error_code": e.code, "error_message": ErrorCode(e.code).name}
            return _json(body, status=404)
        return _json({"success": True, "data": data})

    async def _all_keys(self, request: web.Request) -> web.Response:
        text = "".join(f"{k}\n" for k in self.service.all_keys())
        return web.Response(body=text.encode(), headers=_PROM)

    async def _all_segments(self, request: web.Request) -> web.Response:
        text = "".join(f"{s}\n" for s in self.service.segments)
        return web.Response(body=text.encode(), headers=_PROM)

    # --- HTTP metadata server (GET/PUT/DELETE /metadata?key=) ----------------------------------------
    async def _metadata(self, request: web.Request) -> web.Response:
        key = request.query.get("key")
        if key is None:
            return web.Response(status=400, text="Missing key parameter")
        if request.method == "GET":
            if key not in self.metadata:
                return web.Response(status=404, text="metadata not found")
            return web.Response(body=self.metadata[key], content_type="application/json")
        if request.method == "PUT":
            try:
                self.metadata[key] = await asyncio.wait_for(request.read(), self.body_timeout_s)
            except TimeoutError:
                return web.Response(status=408, text="request body timed out")
            return web.Response(text="metadata updated")
        if request.method == "DELETE":
            if self.metadata.pop(key, None) is None:
                return web.Response(status=404, text="metadata not found")
            return web.Response(text="metadata deleted")
        return web.Response(status=405, text=json.dumps({"error": "method not allowed"}))
