"""round_robin: independent prefill and decode cycles. Picks happen synchronously on the event loop,
so under any concurrency the per-node counts differ by at most 1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvtest.proxy.config import Node
    from kvtest.proxy.routing import Router


class RoundRobin:
    def __init__(self, router: Router) -> None:
        self.router = router

    def prefill(self, body: dict[str, Any]) -> Node:
        return self.router.round_robin("prefill")

    def decode(self, body: dict[str, Any]) -> Node:
        return self.router.round_robin("decode")
