"""mooncake (vLLM examples/online_serving/disaggregated_serving/mooncake_connector/
mooncake_connector_proxy.py): GET the prefill node's bootstrap /query, then send both legs concurrently
with one transfer_id: prefill as the other flows' but kv_transfer_params {do_remote_decode: true,
do_remote_prefill: false, transfer_id} and header X-data-parallel-rank; decode the original body with
{do_remote_decode: false, do_remote_prefill: true, remote_bootstrap_addr, remote_engine_id,
remote_dp_rank, transfer_id} (remote_dp_rank as vLLM's proxy sends it; D reads it with default 0).
(The shared transfer_id is vLLM's TransferId, "KV transfer coordination ID (shared by P/D)", in
vllm/distributed/kv_transfer/kv_connector/v1/mooncake/mooncake_connector.py.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from kvtest.proxy.errors import ProxyError
from kvtest.proxy.flows.base import Legs, prefill_common

if TYPE_CHECKING:
    from aiohttp import web

    from kvtest.proxy.config import Node


def new_transfer_id() -> str:
    return f"xfer-{uuid.uuid4()}"


def mooncake_prefill_body(body: dict[str, Any], transfer_id: str) -> dict[str, Any]:
    out = prefill_common(body)
    out["kv_transfer_params"] = {
        "do_remote_decode": True,
        "do_remote_prefill": False,
        "transfer_id": transfer_id,
    }
    return out


def mooncake_decode_body(
    body: dict[str, Any], bootstrap_addr: str, engine_id: str, transfer_id: str, dp_rank: int = 0
) -> dict[str, Any]:
    out = dict(body)
    out["kv_transfer_params"] = {
        "do_remote_decode": False,
        "do_remote_prefill": True,
        "remote_bootstrap_addr": bootstrap_addr,
        "remote_engine_id": engine_id,
        "remote_dp_rank": dp_rank,
        "transfer_id": transfer_id,
    }
    return out


def parse_bootstrap_query(data: object) -> dict[int, str]:
    """dp_rank -> engine_id from a bootstrap server's /query answer.

    vLLM's MooncakeBootstrapServer.query returns `dict[int, EngineEntry]`, i.e.
    {"0": {"engine_id": ..., "worker_addr": {tp_rank: {pp_rank: addr}}}} (mooncake_utils.py).
    """
    if not isinstance(data, dict) or not data:
        raise ProxyError(502, f"bootstrap /query answered no engines: {str(data)[:200]}", leg="prefill")
    ranks: dict[int, str] = {}
    for rank, entry in data.items():
        try:
            ranks[int(rank)] = str(entry["engine_id"])
        except (TypeError, ValueError, KeyError):
            raise ProxyError(
                502,
                f"bootstrap /query answer is not {{dp_rank: {{engine_id, ...}}}}: {str(data)[:200]}",
                leg="prefill",
            ) from None
    return ranks


class MooncakeFlow:
    def __init__(self) -> None:
        # per prefill URL: which of its data-parallel ranks gets the next request (round robin)
        self._rank_turn: dict[str, int] = {}

    async def forward(
        self,
        legs: Legs,
        request: web.Request,
        endpoint: str,
        body: dict[str, Any],
        prefill: Node,
        decode: Node,
        headers: dict[str, str],
        stream: bool,
    ) -> web.StreamResponse:
        engines = await legs.bootstrap_engines(prefill)
        ranks = sorted(engines)
        turn = self._rank_turn.get(prefill.url, 0)
        self._rank_turn[prefill.url] = turn + 1
        rank = ranks[turn % len(ranks)]
        transfer_id = new_transfer_id()
        prefill_body = mooncake_prefill_body(body, transfer_id)
        decode_body = mooncake_decode_body(body, prefill.bootstrap_url, engines[rank], transfer_id, rank)
        prefill_headers = {**headers, "X-data-parallel-rank": str(rank)}
        prefill_task = asyncio.ensure_future(
            legs.prefill_leg(prefill, endpoint, prefill_body, prefill_headers)
        )
        try:
            resp = await legs.decode_leg(
                request, decode, endpoint, decode_body, headers, stream, prefill_task
            )
        except BaseException:
            prefill_task.cancel()  # decode failed or the client left: P must not hold its blocks for nobody
            await asyncio.gather(prefill_task, return_exceptions=True)
            raise
        if not prefill_task.done():
            # The client has its answer; let P's leg finish in the background (its outcome is in /metrics).
            legs.keep_in_background(prefill_task)
        else:
            prefill_task.exception()  # retrieve it, so asyncio does not warn
        return resp
