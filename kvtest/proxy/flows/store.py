"""store (the seed's proxy_server.py; V0 and V1 MooncakeStoreConnector, ExampleConnector): prefill gets
the request with max_tokens=1 and its body is drained; decode gets the original request and finds the KV
in the store. Nothing passes between the legs. Unlike the seed, the prefill leg is never streamed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvtest.proxy.flows.base import Legs, prefill_common

if TYPE_CHECKING:
    from aiohttp import web

    from kvtest.proxy.config import Node


def store_prefill_body(body: dict[str, Any]) -> dict[str, Any]:
    return prefill_common(body)


def store_decode_body(body: dict[str, Any]) -> dict[str, Any]:
    # The original request untouched: an absent max_tokens stays absent (never turned into 0).
    return body


class StoreFlow:
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
        await legs.prefill_leg(prefill, endpoint, store_prefill_body(body), headers)
        return await legs.decode_leg(request, decode, endpoint, store_decode_body(body), headers, stream)
