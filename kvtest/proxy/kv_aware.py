"""kv_aware: route each request to the prefill node that holds the longest cached prefix of it,
known from the KV cache events every prefill node publishes (vLLM's `--kv-events-config`).

- One KVEventStream per prefill node (kvtest/kv_event_stream.py): replay from sequence 0 on start, then
  live; a gap in sequence numbers is filled from the node's replay socket.
- An index block hash -> {node: copies}: BlockStored adds one copy per hash, BlockRemoved takes one away
  (vLLM reports a hash cached in two blocks twice, and each eviction once), AllBlocksCleared empties the
  node.
- A request is hashed as vLLM hashes it: the model dir's tokenizer (chat template for chat requests),
  the cluster's PYTHONHASHSEED, hash algorithm and block size, cache_salt in the first block
  (simulators/vllm/hashing.py). Only the blocks a hit can use count: vLLM never reuses the block
  holding the last prompt token ((n - 1) // block_size blocks at most).
- The node with the longest run of leading blocks wins, unless that run is below `kv_match_threshold`
  of the request's blocks (default 0.5): then the request is mostly new everywhere and goes to the node
  with the fewest cached blocks (SGLang's cache-aware policy does the same). Without that, a shared
  system preamble drew every new tenant to the first node that had cached the preamble (measured:
  one node of three took every request, 74% hit rate, no better than prefix hashing). The preamble
  must be under the threshold's share of a prompt for this to help.
- Ties (0 blocks included) are broken by load: the tied nodes in the rendezvous order of the first
  block none of them holds, passing over a node whose load (the proxy's in-flight requests there: the
  node's running + waiting requests from this proxy) is above prefix_load_factor x the mean, else the
  least loaded. Plain least-load broke the seed workload: its concurrent requests for one new context,
  routed before the first one's events arrived, were spread over every node (measured: 22% total hit
  rate against prefix's 41%).
- A node whose stream is lost (a gap the replay buffer no longer covers, or a stream that failed)
  makes the picture incomplete: every pick falls back to load alone until the proxy restarts, and
  /metrics says so (kvtest_proxy_kv_events_stream_up{node} 0, picks counted with reason
  "load_fallback").
Decode nodes: round robin.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvtest.kv_event_stream import Batch, KVEventStream

if TYPE_CHECKING:
    from kvtest.proxy.config import Node
    from kvtest.proxy.routing import Router


class KVIndex:
    """block hash -> {node url: copies}, fed by each node's events in order."""

    def __init__(self) -> None:
        self.copies: dict[Any, dict[str, int]] = defaultdict(dict)
        self.blocks: dict[str, int] = defaultdict(int)  # cached blocks per node

    def apply(self, node: str, batch: Batch) -> None:
        for ev in batch.events:
            if ev.kind == "BlockStored":
                self.store(node, ev.block_hashes)
            elif ev.kind == "BlockRemoved":
                for h in ev.block_hashes:
                    self.remove(node, h)
            elif ev.kind == "AllBlocksCleared":
                self.clear(node)

    def store(self, node: str, hashes: Iterable[Any]) -> None:
        copies, n = self.copies, 0
        for h in hashes:
            stored = copies.get(h)
            if stored is None:
                copies[h] = {node: 1}
            else:
                stored[node] = stored.get(node, 0) + 1
            n += 1
        self.blocks[node] += n

    def remove(self, node: str, h: Any) -> None:
        per = self.copies.get(h)
        if per and node in per:
            per[node] -= 1
            self.blocks[node] -= 1
            if per[node] <= 0:
                del per[node]
            if not per:
                del self.copies[h]

    def clear(self, node: str) -> None:
        for h in list(self.copies):
            per = self.copies[h]
            per.pop(node, None)
            if not per:
                del self.copies[h]
        self.blocks[node] = 0

    def prefix_lengths(self, hashes: list[Any], nodes: list[str]) -> dict[str, int]:
        """Leading blocks of `hashes` each node holds."""
        out = dict.fromkeys(nodes, 0)
        alive = set(nodes)
        for h in hashes:
            per = self.copies.get(h)
            if not per:
                break
            alive &= per.keys()
            if not alive:
                break
            for n in alive:
                out[n] += 1
        return out


def choose(
    index: KVIndex,
    hashes: Sequence[Any],
    nodes: Sequence[str],
    load: Mapping[str, int],
    match_threshold: float,
    load_factor: float,
) -> tuple[str, str]:
    """The kv_aware pick among `nodes` (urls) for a request whose usable block hashes are `hashes`:
    (node, reason), reason "prefix" when the node holds some of its leading blocks, else "load".
    One function for the proxy and for `kvtest replay`, so both route alike."""
    lengths = index.prefix_lengths(list(hashes), list(nodes))
    top = max(lengths.values(), default=0)
    if hashes and top < match_threshold * len(hashes):
        # mostly new to every node (a new tenant behind a shared preamble, say): the emptiest node
        cached = index.blocks
        least = min(cached[n] for n in nodes)
        tied = [n for n in nodes if cached[n] == least]
        top = 0
    else:
        tied = [n for n in nodes if lengths[n] == top]
    # ties: the rendezvous order of the first block none of them holds, skipping nodes loaded above
    # load_factor x the mean (the prefix strategy's bounded loads), so that concurrent requests for
    # one new context meet on one node while a busy node is passed over
    key = str(hashes[top] if top < len(hashes) else (hashes[-1] if hashes else "")).encode()
    order = sorted(
        tied, key=lambda n: hashlib.blake2b(key + b"|" + n.encode(), digest_size=8).digest(), reverse=True
    )
    cap = math.ceil(load_factor * (sum(load[n] for n in nodes) + 1) / len(nodes))
    best = next((n for n in order if load[n] < cap), min(order, key=lambda n: load[n]))
    return best, "prefix" if lengths[best] else "load"


@dataclass
class KVAwareSettings:
    """How the proxy hashes requests and where it hears the nodes (ProxyConfig's kv_* fields)."""

    events: list[str]  # one PUB endpoint per --prefill URL, in order
    replay: list[str | None]
    model: str
    block_size: int
    hash_algo: str
    hash_seed: str | None
    topic: str = ""
    match_threshold: float = 0.5


class KVAware:
    """The strategy (`Strategy(router)`: prefill(body), decode(body); start/stop run the streams)."""

    def __init__(self, router: Router) -> None:
        from simulators.vllm.hashing import BlockHasher  # vLLM's block hashes, one implementation
        from simulators.vllm.tokenizer import load_tokenizer

        self.router = router
        cfg = router.config
        s = cfg.kv_aware_settings()
        self.settings = s
        self.tokenizer = load_tokenizer(s.model)
        env = {} if s.hash_seed is None else {"PYTHONHASHSEED": s.hash_seed}
        self.hasher = BlockHasher(s.block_size, s.hash_algo, env)
        self.index = KVIndex()
        self.streams: dict[str, KVEventStream] = {}
        self.failed: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.picks: dict[str, int] = defaultdict(int)  # by reason: prefix | load | load_fallback

    # -- streams --------------------------------------------------------------------------------------
    async def start(self) -> None:
        for node, pub, rep in zip(
            self.router.prefill, self.settings.events, self.settings.replay, strict=True
        ):
            stream = KVEventStream(pub, rep, self.settings.topic)
            self.streams[node.url] = stream
            self._tasks.append(asyncio.create_task(self._follow(node.url, stream)))

    async def _follow(self, url: str, stream: KVEventStream) -> None:
        try:
            await stream.run(lambda b: self.index.apply(url, b))
        except asyncio.CancelledError:
            raise
        except Exception:  # a stream that broke cannot be trusted any more: fall back to load
            self.failed.add(url)

    async def stop(self) -> None:
        for s in self.streams.values():
            s.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for s in self.streams.values():
            s.term()
        self._tasks.clear()

    def stream_up(self, url: str) -> bool:
        s = self.streams.get(url)
        return s is not None and not s.lost and url not in self.failed

    # -- picks ----------------------------------------------------------------------------------------
    def request_hashes(self, body: dict[str, Any]) -> list[Any]:
        tokens = self.request_tokens(body)
        if not tokens:
            return []
        salt = body.get("cache_salt") if isinstance(body.get("cache_salt"), str) else None
        usable = (len(tokens) - 1) // self.settings.block_size
        hashes = self.hasher.hashes(tokens[: usable * self.settings.block_size], salt)
        # the events carry the low 64 bits (vLLM's VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES default)
        return [int.from_bytes(h, "big") & ((1 << 64) - 1) for h in hashes]

    def request_tokens(self, body: dict[str, Any]) -> list[int]:
        tok = self.tokenizer
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
            prompt = prompt[0]
        if isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            return list(prompt)
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return tok.encode(prompt, bool(body.get("add_special_tokens", True)))
        messages = body.get("messages")
        if isinstance(messages, list):
            try:
                text = tok.apply_chat_template(
                    messages, add_generation_prompt=bool(body.get("add_generation_prompt", True))
                )
            except Exception:  # the node will answer 400; any node will do
                return []
            return tok.encode(text, bool(body.get("add_special_tokens", False)))
        return []

    def prefill(self, body: dict[str, Any]) -> Node:
        router = self.router
        nodes = router.prefill
        load = {n.url: router.in_flight.get(n.url, 0) for n in nodes}
        if not all(self.stream_up(n.url) for n in nodes):
            self.picks["load_fallback"] += 1
            return min(nodes, key=lambda n: load[n.url])
        url, reason = choose(
            self.index,
            self.request_hashes(body),
            [n.url for n in nodes],
            load,
            self.settings.match_threshold,
            router.config.prefix_load_factor,
        )
        self.picks[reason] += 1
        return next(n for n in nodes if n.url == url)

    def decode(self, body: dict[str, Any]) -> Node:
        return self.router.round_robin("decode")

    def metrics_lines(self) -> list[str]:
        lines = ["# TYPE kvtest_proxy_kv_events_stream_up gauge"]
        for n in self.router.prefill:
            lines.append(f'kvtest_proxy_kv_events_stream_up{{node="{n.url}"}} {int(self.stream_up(n.url))}')
        lines.append("# TYPE kvtest_proxy_kv_aware_cached_blocks gauge")
        for n in self.router.prefill:
            lines.append(f'kvtest_proxy_kv_aware_cached_blocks{{node="{n.url}"}} {self.index.blocks[n.url]}')
        lines.append("# TYPE kvtest_proxy_kv_aware_picks_total counter")
        for reason in ("prefix", "load", "load_fallback"):
            lines.append(f'kvtest_proxy_kv_aware_picks_total{{reason="{reason}"}} {self.picks[reason]}')
        return lines
