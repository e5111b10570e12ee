"""Which node serves each replayed request: the proxy's own Router (kvtest/proxy/routing.py), fed the
completions body a client would send (the prompt's token ids), so round robin, random (seeded) and prefix
affinity pick exactly as `kvtest proxy` would. The replay's nodes are colocated (each prefill node also
decodes its requests), so only the prefill pick matters. `least_loaded` (fewest requests in flight, lowest
index on ties) is the replay's own until the proxy has one.
"""

from __future__ import annotations

from kvtest.proxy.config import ProxyConfig
from kvtest.proxy.routing import Router

# the ones the replay is tested with; any other name the proxy knows is passed to it as is
STRATEGIES = ("round_robin", "random", "prefix", "least_loaded")
REPLAY_ONLY = ("least_loaded",)


def node_url(i: int) -> str:
    return f"http://replay-node-{i}:8000"


class ReplayRouter:
    def __init__(self, nodes: int, strategy: str, seed: int = 0, prefix_tokens: int = 64) -> None:
        if strategy == "designate":
            raise ValueError("a trace designates no nodes: choose a strategy that picks them")
        self.strategy = strategy
        urls = [node_url(i) for i in range(nodes)]
        # the proxy's config refuses a name it does not know, with the list it knows
        self.router = Router(
            ProxyConfig(
                prefill=urls,
                decode=urls,
                strategy="round_robin" if strategy in REPLAY_ONLY else strategy,
                seed=seed,
                prefix_block_tokens=16,
                prefix_blocks=max(1, prefix_tokens // 16),
            )
        )
        self.index = {u: i for i, u in enumerate(self.router.config.prefill)}
        self.urls = self.router.config.prefill
        self.key_tokens = max(1, prefix_tokens // 16) * 16

    def pick(self, prompt: list[int]) -> int:
        inflight = self.router.in_flight
        if self.strategy == "least_loaded":
            best = min(range(len(self.urls)), key=lambda i: inflight[self.urls[i]])
        else:
            # the prefix key reads only the leading blocks: hand it those, not a 100k-token prompt
            node, _ = self.router.pick({"prompt": prompt[: self.key_tokens]}, None)
            best = self.index[node.url]
        inflight[self.urls[best]] += 1
        return best

    def done(self, node: int) -> None:
        self.router.in_flight[self.urls[node]] -= 1
