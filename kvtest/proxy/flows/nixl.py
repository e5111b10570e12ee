"""nixl (vLLM tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, send_request_to_service):
prefill gets kv_transfer_params {do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null,
remote_block_ids: null, remote_host: null, remote_port: null}, stream=false, max_tokens=1
(max_completion_tokens=1 when present), no stream_options, no min_tokens/min_completion_tokens. Its
response's kv_transfer_params go to decode verbatim, with the original body."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from kvtest.proxy.errors import ProxyError
from kvtest.proxy.flows.base import Legs, prefill_common, prefill_finish_reason

if TYPE_CHECKING:
    from aiohttp import web

    from kvtest.proxy.config import Node


def nixl_prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    out = prefill_common(body)
    # Not supported on P (toy_proxy_server.py pops them and gives them back to D).
    out.pop("min_tokens", None)
    out.pop("min_completion_tokens", None)
    out["kv_transfer_params"] = {
        "do_remote_decode": True,
        "do_remote_prefill": False,
        "remote_engine_id": None,
        "remote_block_ids": None,
        "remote_host": None,
        "remote_port": None,
    }
    return out


def nixl_decode_body(body: dict[str, Any], prefill_response: dict[str, Any]) -> dict[str, Any] | None:
    """Decode's body with the prefill's kv_transfer_params, or None when the prefill returned none."""
    params = prefill_response.get("kv_transfer_params")
    if not params:
        return None
    out = dict(body)
    out["kv_transfer_params"] = copy.deepcopy(params)
    return out


class NixlFlow:
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
        answer = await legs.prefill_leg(prefill, endpoint, nixl_prefill_body(body), headers)
        decode_body = nixl_decode_body(body, answer)
        if decode_body is None:
            reason = prefill_finish_reason(answer)
            legs.metrics.kv_params_missing.labels(prefill.url, reason or "none").inc()
            if reason == "length":
                # vLLM attaches kv_transfer_params whenever P finished by length; their absence means P
                # is not a NIXL producer, and D would silently recompute the whole prompt.
                raise ProxyError(
                    502,
                    f"prefill node {prefill.url} finished by length but returned no kv_transfer_params "
                    "(is it running with --kv-transfer-config NixlConnector?)",
                    leg="prefill",
                )
            # Finished by stop: nothing to transfer; D recomputes, as vLLM does (counted, not silent).
            decode_body = body
        return await legs.decode_leg(request, decode, endpoint, decode_body, headers, stream)
