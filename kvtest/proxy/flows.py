"""What each leg is sent, per P/D flow, field by field (shared/notes/vllm.md, "P/D flows").

- store (the seed's proxy_server.py; V0 and V1 MooncakeStoreConnector, ExampleConnector): prefill gets the
  request with max_tokens=1 and its body is drained; decode gets the original request and finds the KV in
  the store. Nothing passes between the legs. Unlike the seed, the prefill leg is never streamed (the seed
  forwarded the client's stream:true to prefill, one of the known proxy bugs).
- nixl (vLLM tests/v1/kv_connector/nixl_integration/toy_proxy_server.py, send_request_to_service): prefill
  gets kv_transfer_params {do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null,
  remote_block_ids: null, remote_host: null, remote_port: null}, stream=false, max_tokens=1
  (max_completion_tokens=1 when present), no stream_options, no min_tokens/min_completion_tokens. Its
  response's kv_transfer_params go to decode verbatim, with the original body.
- mooncake (vLLM examples/online_serving/disaggregated_serving/mooncake_connector/
  mooncake_connector_proxy.py): GET the prefill node's bootstrap /query, then send both legs
  concurrently with one transfer_id: prefill as above but kv_transfer_params {do_remote_decode: true,
  do_remote_prefill: false, transfer_id} and header X-data-parallel-rank; decode the original body with
  {do_remote_decode: false, do_remote_prefill: true, remote_bootstrap_addr, remote_engine_id,
  remote_dp_rank, transfer_id} (remote_dp_rank as vLLM's proxy sends it; D reads it with default 0).
  (The shared transfer_id is vLLM's TransferId, "KV transfer coordination ID (shared by P/D)", in
  vllm/distributed/kv_transfer/kv_connector/v1/mooncake/mooncake_connector.py.)
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from kvtest.proxy.errors import ProxyError


def _prefill_common(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["stream"] = False
    out["max_tokens"] = 1
    if "max_completion_tokens" in out:
        out["max_completion_tokens"] = 1
    out.pop("stream_options", None)
    return out


def store_prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    return _prefill_common(body)


def store_decode_body(body: dict[str, Any]) -> dict[str, Any]:
    # The original request untouched: an absent max_tokens stays absent (never turned into 0).
    return body


def nixl_prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    out = _prefill_common(body)
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


def prefill_finish_reason(prefill_response: dict[str, Any]) -> str | None:
    choices = prefill_response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def new_transfer_id() -> str:
    return f"xfer-{uuid.uuid4()}"


def mooncake_prefill_body(body: dict[str, Any], transfer_id: str) -> dict[str, Any]:
    out = _prefill_common(body)
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
