"""Node selection: designation first, then the configured strategy for whichever half was not
designated. The strategies (the seed's Designate / RR / Random, plus prefix affinity and kv_aware)
are looked up by name in kvtest/proxy/strategies/.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kvtest.proxy.config import Node, ProxyConfig, make_node
from kvtest.proxy.designation import Designation
from kvtest.proxy.errors import ProxyError
from kvtest.proxy.strategies import STRATEGIES

# where they lived before strategies/ existed; the prefix strategy owns them now
from kvtest.proxy.strategies.prefix import prefix_key, prompt_text, rendezvous_order

__all__ = ["Router", "prefix_key", "prompt_text", "rendezvous_order"]

if TYPE_CHECKING:
    from kvtest.proxy.kv_aware import KVAware


class Router:
    def __init__(self, config: ProxyConfig):
        self.config = config
        self.prefill = [
            make_node("prefill", url, config.bootstrap_port_for(i)) for i, url in enumerate(config.prefill)
        ]
        self.decode = [make_node("decode", url) for url in config.decode]
        self._by_hostport = {
            "prefill": {n.hostport: n for n in self.prefill},
            "decode": {n.hostport: n for n in self.decode},
        }
        self._adhoc: dict[tuple[str, str], Node] = {}
        self._rr = {"prefill": 0, "decode": 0}
        # In-flight requests per node URL (the server increments and decrements around each leg).
        self.in_flight: dict[str, int] = {n.url: 0 for n in (*self.prefill, *self.decode)}
        self.strategy = STRATEGIES[config.strategy](self)
        # kv_aware has a lifecycle (its KV-event subscribers) and metrics, which the proxy runs
        self.kv_aware = cast("KVAware", self.strategy) if config.strategy == "kv_aware" else None

    # -- designation ---------------------------------------------------------------------------------
    def resolve(self, role: str, hostport: str) -> Node:
        node = self._by_hostport[role].get(hostport)
        if node is not None:
            return node
        if not self.config.allow_any_designation:
            known = ", ".join(self._by_hostport[role]) or "none"
            raise ProxyError(
                403, f"designated {role} node {hostport} is not configured (configured: {known})"
            )
        key = (role, hostport)
        if key not in self._adhoc:
            bootstrap = self.config.bootstrap_port[0] if role == "prefill" else None
            self._adhoc[key] = make_node(role, f"http://{hostport}", bootstrap)
            self.in_flight.setdefault(self._adhoc[key].url, 0)
        return self._adhoc[key]

    # -- strategies ----------------------------------------------------------------------------------
    def pick(self, body: dict[str, Any], designation: Designation | None) -> tuple[Node, Node]:
        prefill = decode = None
        if designation is not None:
            if designation.prefill:
                prefill = self.resolve("prefill", designation.prefill)
            if designation.decode:
                decode = self.resolve("decode", designation.decode)
        if prefill is None:
            prefill = self.strategy.prefill(body)
        if decode is None:
            decode = self.strategy.decode(body)
        return prefill, decode

    def round_robin(self, role: str) -> Node:
        """The next node of `role`'s cycle (prefill and decode cycle independently)."""
        nodes = self.prefill if role == "prefill" else self.decode
        index = self._rr[role]
        self._rr[role] = index + 1
        return nodes[index % len(nodes)]
