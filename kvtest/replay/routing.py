"""Which node serves each replayed request: the proxy's own Router (kvtest/proxy/routing.py), fed the
completions body a client would send (the prompt's token ids), so round robin, random (seeded) and prefix
affinity pick exactly as `kvtest proxy` would. The replay's nodes are colocated (each prefill node also
decodes its requests), so only the prefill pick matters. `least_loaded` (fewest requests in flight, lowest
index on ties) is the replay's own until the proxy has one. `kv_aware` is the proxy's pick
(kvtest.proxy.kv_aware.choose) over an index the nodes' block pools feed directly (kv_index_feed.py)
instead of through ZMQ.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvtest.proxy.config import ProxyConfig
from kvtest.proxy.kv_aware import KVIndex, choose
from kvtest.proxy.routing import Router

# the ones the replay is tested with; any other name the proxy knows is passed to it as is
STRATEGIES = ("round_robin", "random", "prefix", "least_loaded", "kv_aware")
# picked here, not by the proxy's Router: least_loaded has no proxy strategy, and the proxy's kv_aware
# subscribes to ZMQ endpoints the replay's nodes do not have
REPLAY_PICKS = ("least_loaded", "kv_aware")


def node_url(i: int) -> str:
    return f"http://replay-node-{i}:8000"


class ReplayRouter:
    def __init__(
        self, nodes: int, strategy: str, seed: int = 0, prefix_tokens: int = 64, block_size: int = 16
    ) -> None:
        if strategy == "designate":
            raise ValueError("a trace designates no nodes: choose a strategy that picks them")
        self.strategy = strategy
        urls = [node_url(i) for i in range(nodes)]
        # the proxy's config refuses a name it does not know, with the list it knows
        self.router = Router(
            ProxyConfig(
                prefill=urls,
                decode=urls,
                strategy="round_robin" if strategy in REPLAY_PICKS else strategy,
                seed=seed,
                prefix_block_tokens=16,
                prefix_blocks=max(1, prefix_tokens // 16),
            )
        )
        self.index = {u: i for i, u in enumerate(self.router.config.prefill)}
        self.urls = self.router.config.prefill
        self.key_tokens = max(1, prefix_tokens // 16) * 16
        self.block_size = block_size
        # kv_aware: block hash -> nodes, fed by the nodes' pools (Simulation wires IndexFeed to it)
        self.kv_index: KVIndex | None = KVIndex() if strategy == "kv_aware" else None

    def pick(self, prompt: list[int], block_hashes: Sequence[bytes] = ()) -> int:
        """The node for a prompt; `block_hashes` (its full blocks' hashes) only matter to kv_aware."""
        inflight = self.router.in_flight
        if self.strategy == "least_loaded":
            best = min(range(len(self.urls)), key=lambda i: inflight[self.urls[i]])
        elif self.kv_index is not None:
            cfg = self.router.config
            usable = (len(prompt) - 1) // self.block_size  # vLLM never hits the last token's block
            url, _ = choose(
                self.kv_index,
                block_hashes[:usable],
                self.urls,
                inflight,
                cfg.kv_match_threshold,
                cfg.prefix_load_factor,
            )
            best = self.index[url]
        else:
            # the prefix key reads only the leading blocks: hand it those, not a 100k-token prompt
            node, _ = self.router.pick({"prompt": prompt[: self.key_tokens]}, None)
            best = self.index[node.url]
        inflight[self.urls[best]] += 1
        return best

    def done(self, node: int) -> None:
        self.router.in_flight[self.urls[node]] -= 1
