"""Node selection: designation first, then the strategy for whichever half was not designated.

Strategies (the seed's Designate / RR / Random, plus prefix affinity):
- round_robin: independent prefill and decode cycles. Picks happen synchronously on the event loop, so
  under any concurrency the per-node counts differ by at most 1.
- random: `random.Random(seed)`, one stream for both roles, so a run is reproducible from its seed.
- prefix: the request's leading blocks hash to a prefill node by rendezvous hashing (stable when nodes
  come and go); a node whose in-flight count is above `prefix_load_factor` x the mean is passed over for
  the next one in its rendezvous order ("consistent hashing with bounded loads"). Decode: round robin.
- designate: requests are expected to designate; a missing half is filled round robin.
- kv_aware: the longest prefix cached on a prefill node, from the nodes' KV events (kv_aware.py).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kvtest.proxy.config import Node, ProxyConfig, make_node
from kvtest.proxy.designation import Designation
from kvtest.proxy.errors import ProxyError

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
        self._random = random.Random(config.seed)
        # In-flight requests per node URL (the server increments and decrements around each leg).
        self.in_flight: dict[str, int] = {n.url: 0 for n in (*self.prefill, *self.decode)}
        self.kv_aware: KVAware | None = None
        if config.strategy == "kv_aware":
            from kvtest.proxy.kv_aware import KVAware

            self.kv_aware = KVAware(self)

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
        strategy = self.config.strategy
        if prefill is None:
            if strategy == "random":
                prefill = self._random.choice(self.prefill)
            elif strategy == "prefix":
                prefill = self._prefix_pick(body)
            elif self.kv_aware is not None:
                prefill = self.kv_aware.prefill(body)
            else:
                prefill = self._round_robin("prefill", self.prefill)
        if decode is None:
            if strategy == "random":
                decode = self._random.choice(self.decode)
            else:
                decode = self._round_robin("decode", self.decode)
        return prefill, decode

    def round_robin(self, role: str) -> Node:
        return self._round_robin(role, self.prefill if role == "prefill" else self.decode)

    def _round_robin(self, role: str, nodes: Sequence[Node]) -> Node:
        index = self._rr[role]
        self._rr[role] = index + 1
        return nodes[index % len(nodes)]

    def _prefix_pick(self, body: dict[str, Any]) -> Node:
        key = prefix_key(body, self.config)
        if key is None:  # shorter than one block: nothing to be affine to
            return self._round_robin("prefill", self.prefill)
        order = rendezvous_order(key, self.prefill)
        loads = [self.in_flight.get(n.url, 0) for n in self.prefill]
        cap = math.ceil(self.config.prefix_load_factor * (sum(loads) + 1) / len(self.prefill))
        for node in order:
            if self.in_flight.get(node.url, 0) < cap:
                return node
        return order[0]


def prompt_text(body: dict[str, Any]) -> str | list[int] | None:
    """The text (or token ids) whose prefix a prefill node caches: completions' prompt, or chat messages."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        first = prompt[0]
        if isinstance(first, int):
            return [t for t in prompt if isinstance(t, int)]
        if isinstance(first, str):
            return first
        if isinstance(first, list):  # batch of token-id prompts: the first one decides
            return [t for t in first if isinstance(t, int)]
    messages = body.get("messages")
    if isinstance(messages, list):
        parts: list[str] = []
        for m in messages:
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            parts.append(f"{m.get('role', '')}\x00{content if content is not None else ''}\x01")
        return "".join(parts)
    return None


def prefix_key(body: dict[str, Any], config: ProxyConfig) -> bytes | None:
    """Bytes of the first `prefix_blocks` FULL blocks (only full blocks are cached, as in vLLM), or None."""
    text = prompt_text(body)
    if isinstance(text, str):
        full = len(text) // config.prefix_block_chars
        n = min(full, config.prefix_blocks) * config.prefix_block_chars
        return text[:n].encode() if n else None
    if isinstance(text, list):
        full = len(text) // config.prefix_block_tokens
        n = min(full, config.prefix_blocks) * config.prefix_block_tokens
        return b"t" + b",".join(str(t).encode() for t in text[:n]) if n else None
    return None


def rendezvous_order(key: bytes, nodes: Sequence[Node]) -> list[Node]:
    def score(node: Node) -> bytes:
        return hashlib.blake2b(key + b"|" + node.url.encode(), digest_size=8).digest()

    return sorted(nodes, key=score, reverse=True)
