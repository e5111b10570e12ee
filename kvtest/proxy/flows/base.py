"""What a P/D flow is: how one request becomes a prefill leg and a decode leg (what each is sent, in
which order, what passes between them). The proxy gives a flow its leg primitives (`Legs`); the flow
decides the bodies and the choreography.

Every flow's prefill leg is the client's request with max_tokens=1 (max_completion_tokens=1 when
present), stream=false and no stream_options (`prefill_common`): the seed forwarded the client's
stream:true to prefill, one of its known proxy bugs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from kvtest.proxy.config import Node
    from kvtest.proxy.metrics import ProxyMetrics


class Legs(Protocol):
    """What PDProxy offers a flow."""

    metrics: ProxyMetrics

    async def prefill_leg(
        self, node: Node, endpoint: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        """POST the prefill leg; its JSON answer (a ProxyError for any failure)."""
        ...

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
        """POST the decode leg and relay its answer to the client (streamed or whole)."""
        ...

    async def bootstrap_engines(self, node: Node) -> dict[int, str]:
        """dp_rank -> engine_id from the prefill node's MooncakeConnector bootstrap server (cached)."""
        ...

    def keep_in_background(self, task: asyncio.Task[Any]) -> None:
        """Let a leg finish after the client has its answer; the proxy cancels it on stop."""
        ...


class Flow(Protocol):
    """Built once per proxy as `Flow()`; `forward` runs once per request."""

    def __init__(self) -> None: ...

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
    ) -> web.StreamResponse: ...


def prefill_common(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["stream"] = False
    out["max_tokens"] = 1
    if "max_completion_tokens" in out:
        out["max_completion_tokens"] = 1
    out.pop("stream_options", None)
    return out


def prefill_finish_reason(prefill_response: dict[str, Any]) -> str | None:
    choices = prefill_response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None
