"""What a routing strategy is: it picks the prefill and the decode node for a request that did not
designate them. The router owns the nodes and the shared state a strategy may read (in-flight counts
per node URL, the config, a round-robin cycle per role)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kvtest.proxy.config import Node
    from kvtest.proxy.routing import Router


class Strategy(Protocol):
    """Built once per proxy as `Strategy(router)`; the picks run synchronously on the event loop."""

    def __init__(self, router: Router) -> None: ...

    def prefill(self, body: dict[str, Any]) -> Node: ...

    def decode(self, body: dict[str, Any]) -> Node: ...
