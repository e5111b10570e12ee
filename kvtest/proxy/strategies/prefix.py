"""prefix: the request's leading blocks hash to a prefill node by rendezvous hashing (stable when nodes
come and go); a node whose in-flight count is above `prefix_load_factor` x the mean is passed over for
the next one in its rendezvous order ("consistent hashing with bounded loads"). Decode: round robin."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvtest.proxy.config import Node, ProxyConfig
    from kvtest.proxy.routing import Router


class PrefixAffinity:
    def __init__(self, router: Router) -> None:
        self.router = router

    def prefill(self, body: dict[str, Any]) -> Node:
        router = self.router
        key = prefix_key(body, router.config)
        if key is None:  # shorter than one block: nothing to be affine to
            return router.round_robin("prefill")
        order = rendezvous_order(key, router.prefill)
        loads = [router.in_flight.get(n.url, 0) for n in router.prefill]
        cap = math.ceil(router.config.prefix_load_factor * (sum(loads) + 1) / len(router.prefill))
        for node in order:
            if router.in_flight.get(node.url, 0) < cap:
                return node
        return order[0]

    def decode(self, body: dict[str, Any]) -> Node:
        return self.router.round_robin("decode")


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
