"""What every node's prefix-cache counters must read after a workload, computed the way vLLM counts.

This is an independent model (it shares no code with simulators/vllm, so "expectation == fake's counters"
is a real check). Block identity is the token prefix itself: a full block is cached under the tuple of all
prompt tokens up to its end, which is what vLLM's chained block hash identifies (hash of parent hash +
block tokens, vllm/v1/core/kv_cache_utils.py hash_block_tokens), without hash collisions.

V1 (vllm/v1/core/kv_cache_manager.py get_computed_blocks, vllm/v1/core/block_pool.py):
- per request: prefix_cache_queries += prompt tokens; hits += the longest run of cached full blocks from the
  left, capped at prompt_tokens - 1 (max_cache_hit_length = num_tokens - 1), in tokens.
- a KV connector adds external_prefix_cache_queries += prompt tokens - local hit tokens (vLLM 0.32
  scheduler.py: connector_prefix_cache_queries = num_tokens - num_new_local_computed_tokens, nothing
  recorded when 0) and external hits = the blocks it can load beyond the local hit (same n-1 cap); loaded
  blocks become local cache entries. The store connector (MooncakeStoreConnector V1) looks the store up on
  every role, the prefill (kv_producer) too (store/scheduler.py enable_lookup defaults True), and the
  prefill puts its full prompt blocks after it finished; the model assumes they landed before the next
  request reads the store.
- the pool has num_gpu_blocks - 1 usable blocks (block 0 is the null block); blocks without a hash
  (never used, or freed partial blocks: vLLM >= 0.24 prepends those) are taken first, then the head of the
  free queue, evicting its cached hash; a finished request's cached blocks go to the tail in reverse
  order, so its last blocks are evicted first. Full output blocks are cached too.
- KV slots used by a request = prompt + output - 1 (the last sampled token is never fed back).

V0 as in vLLM 0.9.2 (vllm/core/block/prefix_caching_block.py PrefixCachingBlockAllocator
allocate_immutable_block, vllm/core/block/common.py CacheMetricData, vllm/engine/metrics.py):
- every FULL prompt block is one query, a hit when its hash is cached (live or in the evictor); no n-1 cap,
  no stop at the first miss; the partial tail block and decode blocks are never queried.
- vllm:gpu_prefix_cache_hit_rate = CacheMetricData.get_hit_rate(): queries are folded into "completed
  blocks" of 1000 queries each and averaged in floating point; `v0_gauge()` reproduces that arithmetic.
- unhashed free blocks are used first; then the evictor takes the least recently accessed block, the one
  with the most hashed tokens among equals (vllm/core/evictor.py LRUEvictor.evict).

Flows: "pd" is the seed's store flow (prefill node gets the request with max_tokens=1, decode node gets the
original and may load external KV when `connector="store"`); "single" sends each request to one node.
The model assumes each node serves its requests one at a time in dataset order (`kvtest send
--concurrency 1`, what the experiments do); concurrent identical requests can both miss on a real node.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from kvtest.report import table
from kvtest.workload.dataset import DatasetRequest, read

Tokenize = Callable[[str], list[int]]
Flow = Literal["pd", "single"]
Connector = Literal["none", "store"]
Key = tuple[object, ...]
# What a request generated: its token ids, or only how many (then output blocks are taken as unique
# content, which is exact unless a later prompt continues an earlier prompt plus its output).
Output = int | Sequence[int]

V0_METRIC_BLOCK = (
    1000  # CacheMetricData.block_size default: queries per averaging bucket, not the KV block size
)


# ----------------------------------------------------------------------------------------------- tokenizers
def builtin_tokenize(text: str) -> list[int]:
    """Tokenizer for bare model names: one token per UTF-8 byte, no BOS.

    The fake vLLM's ByteTokenizer (simulators/vllm/tokenizer.py) does the same for a bare name, so the
    expectation for a simulator cluster is exact; tests/workload/test_expect.py checks they agree.
    """
    return list(text.encode("utf-8"))


def load_tokenizer(model: str, tokenizer: str | None = None) -> Tokenize:
    """The tokenizer a node uses for `model`: a local dir's tokenizer.json, else the built-in one."""
    src = Path(tokenizer or model)
    path = src / "tokenizer.json" if src.is_dir() else src
    if path.name.endswith(".json") and path.is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        # Completions requests tokenize with add_special_tokens=True in vLLM.
        return lambda text: list(tok.encode(text, add_special_tokens=True).ids)
    return builtin_tokenize


def _count(output: Output) -> int:
    return output if isinstance(output, int) else len(output)


# ----------------------------------------------------------------------------------------------- V1 model
class _BlockIds:
    """What both engines do first when they need a block: reuse a freed block that carries no hash,
    else take a never-used one while the pool has any (`fresh` None: an unbounded pool). Only then
    does each evict a cached block, by its own rule."""

    unhashed: list[int]
    fresh: int | None
    _next_id: int

    def _unused_block(self) -> int | None:
        if self.unhashed:
            return self.unhashed.pop()
        if self.fresh is None or self.fresh > 0:
            if self.fresh is not None:
                self.fresh -= 1
            self._next_id += 1
            return self._next_id - 1
        return None


class V1Node(_BlockIds):
    """vLLM V1 prefix cache of one node: counters in tokens, finite pool with the LRU free queue."""

    def __init__(
        self, block_size: int, num_gpu_blocks: int | None = None, *, unhashed_first: bool = True
    ) -> None:
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        self.block_size = block_size
        self.fresh: int | None = None if num_gpu_blocks is None else num_gpu_blocks - 1
        self._next_id = 1
        self.free: OrderedDict[int, None] = OrderedDict()  # head = next to be reused
        # vLLM >= 0.24 (block_pool.py free_blocks) puts freed blocks without a hash at the head of the free
        # queue, so they are reused before any cached block is evicted; older V1 appended them to the tail.
        self.unhashed_first = unhashed_first
        self.unhashed: list[int] = []
        self.key_of: dict[int, Key] = {}
        self.cached: dict[Key, dict[int, None]] = {}
        self._out = 0
        self.requests = self.queries = self.hits = 0
        self.external_queries = self.external_hits = 0

    def _pop(self) -> int:
        bid = self._unused_block()
        if bid is not None:
            return bid
        if not self.free:
            raise ValueError("request does not fit in the node's KV pool (vLLM would never schedule it)")
        bid, _ = self.free.popitem(last=False)
        key = self.key_of.pop(bid, None)
        if key is not None:
            holders = self.cached[key]
            del holders[bid]
            if not holders:
                del self.cached[key]
        return bid

    def _cache(self, bid: int, key: Key) -> None:
        self.key_of[bid] = key
        self.cached.setdefault(key, {})[bid] = None

    def _output_key(self, prompt: Sequence[int], output: Output, i: int) -> Key:
        if isinstance(output, int):
            self._out += 1
            return ("output", self._out)
        return tuple([*prompt, *output][: (i + 1) * self.block_size])

    def serve(self, prompt: Sequence[int], output: Output, *, external_blocks: int | None = None) -> None:
        """One request: prompt token ids, what it generated; external_blocks = leading prompt blocks a
        connector can load (None = no connector on this node)."""
        n, b = len(prompt), self.block_size
        keys: list[Key] = [tuple(prompt[: (i + 1) * b]) for i in range(n // b)]
        cap = max(n - 1, 0) // b
        local = 0
        while local < min(len(keys), cap) and keys[local] in self.cached:
            local += 1
        ext = 0 if external_blocks is None else max(0, min(external_blocks, cap) - local)
        self.requests += 1
        self.queries += n
        self.hits += local * b
        if external_blocks is not None:
            self.external_queries += n - local * b
            self.external_hits += ext * b
        blocks: list[int] = []
        for key in keys[:local]:
            bid = next(iter(self.cached[key]))
            self.free.pop(bid, None)  # touch: a cached block in use leaves the free queue
            blocks.append(bid)
        slots = n + max(_count(output), 1) - 1
        for _ in range(-(-slots // b) - local):
            blocks.append(self._pop())
        for i in range(local, len(keys)):
            self._cache(blocks[i], keys[i])
        for i in range(len(keys), slots // b):
            self._cache(blocks[i], self._output_key(prompt, output, i))
        for bid in reversed(blocks):
            if self.unhashed_first and bid not in self.key_of:
                self.unhashed.append(bid)
            else:
                self.free[bid] = None


# ----------------------------------------------------------------------------------------------- V0 model
@dataclass
class V0HitRate:
    """vLLM 0.9.2 CacheMetricData: the gauge's own floating-point bookkeeping, reproduced."""

    num_completed_blocks: int = 0
    completed_block_cache_hit_rate: float = 0.0
    num_incompleted_block_queries: int = 0
    num_incompleted_block_hit: int = 0

    def query(self, hit: bool) -> None:
        self.num_incompleted_block_queries += 1
        self.num_incompleted_block_hit += int(hit)
        if self.num_incompleted_block_queries == V0_METRIC_BLOCK:
            rate = self.num_incompleted_block_hit / self.num_incompleted_block_queries
            self.completed_block_cache_hit_rate = (
                self.completed_block_cache_hit_rate * self.num_completed_blocks + rate
            ) / (self.num_completed_blocks + 1)
            self.num_incompleted_block_queries = 0
            self.num_incompleted_block_hit = 0
            self.num_completed_blocks += 1

    def value(self) -> float:
        ratio = self.num_incompleted_block_queries / V0_METRIC_BLOCK
        total = self.num_completed_blocks + ratio
        if total == 0:
            return 0.0
        done = (
            self.completed_block_cache_hit_rate * self.num_completed_blocks
            if self.num_completed_blocks
            else 0.0
        )
        part = 0.0
        if self.num_incompleted_block_queries:
            part = self.num_incompleted_block_hit / self.num_incompleted_block_queries * ratio
        return (done + part) / total


class V0Node(_BlockIds):
    """vLLM 0.9.2 (V0) prefix-caching block allocator of one node: block queries and hits."""

    def __init__(self, block_size: int, num_gpu_blocks: int | None = None) -> None:
        self.block_size = block_size
        self.fresh: int | None = num_gpu_blocks
        self._next_id = 0
        self.unhashed: list[int] = []
        self.cached: dict[Key, int] = {}
        self.key_of: dict[int, Key] = {}
        self.evictor: dict[int, tuple[int, int]] = {}  # block -> (last_accessed, num_hashed_tokens)
        self.meta: dict[int, tuple[int, int]] = {}
        self.clock = 0
        self._out = 0
        self.block_queries = self.block_hits = 0
        self.rate = V0HitRate()

    def _alloc(self) -> int:
        bid = self._unused_block()
        if bid is not None:
            return bid
        if not self.evictor:
            raise ValueError("request does not fit in the node's KV pool")
        # Oldest access first; among equals the block with the most hashed tokens (deepest) goes first.
        bid = min(self.evictor, key=lambda k: (self.evictor[k][0], -self.evictor[k][1], k))
        del self.evictor[bid]
        del self.cached[self.key_of.pop(bid)]
        return bid

    def serve(self, prompt: Sequence[int], output: Output) -> None:
        self.clock += 1
        n, b = len(prompt), self.block_size
        blocks: list[int] = []
        depth: list[int] = []
        for i in range(n // b):
            key: Key = tuple(prompt[: (i + 1) * b])
            hit = key in self.cached
            self.block_queries += 1
            self.block_hits += int(hit)
            self.rate.query(hit)
            if hit:
                bid = self.cached[key]
                self.evictor.pop(bid, None)
            else:
                bid = self._alloc()
                self.cached[key] = bid
                self.key_of[bid] = key
            blocks.append(bid)
            depth.append((i + 1) * b)
        slots = n + max(_count(output), 1) - 1
        for i in range(n // b, -(-slots // b)):
            bid = self._alloc()
            if i < slots // b:  # a decode block that filled up is promoted to immutable
                if isinstance(output, int):
                    self._out += 1
                    key = ("output", self._out)
                else:
                    key = tuple([*prompt, *output][: (i + 1) * b])
                if key in self.cached:
                    # promote_to_immutable_block: same content already cached -> use that block, free this one
                    self.unhashed.append(bid)
                    bid = self.cached[key]
                    self.evictor.pop(bid, None)
                else:
                    self.cached[key] = bid
                    self.key_of[bid] = key
            blocks.append(bid)
            depth.append((i + 1) * b)
        for bid, d in zip(blocks, depth, strict=True):
            if bid in self.key_of:
                self.evictor[bid] = (self.clock, d)
            else:
                self.unhashed.append(bid)


# ----------------------------------------------------------------------------------------------- cluster
@dataclass
class NodeExpectation:
    node: str
    roles: list[str] = field(default_factory=list)
    requests: int = 0
    queries: int = 0
    hits: int = 0
    external_queries: int = 0
    external_hits: int = 0
    block_queries: int = 0
    block_hits: int = 0
    v0_hit_rate: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["hit_rate"] = self.hit_rate
        return d


class ClusterModel:
    """Feeds requests through per-node V1 and V0 models; `counters()` is what each node must show."""

    def __init__(
        self,
        tokenize: Tokenize,
        *,
        block_size: int = 16,
        num_gpu_blocks: int | Mapping[str, int] | None = None,
        flow: Flow = "pd",
        connector: Connector = "none",
        shared_hash_seed: bool = True,
        unhashed_first: bool = True,
    ) -> None:
        self.tokenize = tokenize
        self.block_size = block_size
        self.num_gpu_blocks = num_gpu_blocks
        self.flow = flow
        self.connector = connector
        # Without one PYTHONHASHSEED on every node, each node's NONE_HASH differs and no key matches.
        self.shared_hash_seed = shared_hash_seed
        self.unhashed_first = unhashed_first  # vLLM >= 0.24's free order (see V1Node)
        self.v1: dict[str, V1Node] = {}
        self.v0: dict[str, V0Node] = {}
        self.roles: dict[str, list[str]] = {}
        self.store: set[Key] = set()
        self._store_owner: dict[Key, str] = {}

    def _nodes(self, node: str, role: str) -> tuple[V1Node, V0Node]:
        if node not in self.v1:
            pool = (
                self.num_gpu_blocks.get(node)
                if isinstance(self.num_gpu_blocks, Mapping)
                else self.num_gpu_blocks
            )
            self.v1[node] = V1Node(self.block_size, pool, unhashed_first=self.unhashed_first)
            self.v0[node] = V0Node(self.block_size, pool)
            self.roles[node] = []
        if role not in self.roles[node]:
            self.roles[node].append(role)
        return self.v1[node], self.v0[node]

    def _stored_blocks(self, prompt: Sequence[int], node: str) -> int:
        b, found = self.block_size, 0
        for i in range(len(prompt) // b):
            key = tuple(prompt[: (i + 1) * b])
            if key not in self.store:
                break
            if not self.shared_hash_seed and self._store_owner[key] != node:
                break
            found += 1
        return found

    def submit(
        self, req: DatasetRequest, *, output_tokens: Output | None = None, node: str | None = None
    ) -> None:
        """One dataset request through the flow. `node` overrides the routing for the "single" flow."""
        prompt = self.tokenize(req.prompt)
        out = req.max_tokens if output_tokens is None else output_tokens
        if self.flow == "single":
            target = node or req.decode or req.prefill
            if target is None:
                raise ValueError(f"request has no node to go to: user={req.user!r}")
            v1, v0 = self._nodes(target, "single")
            v1.serve(prompt, out)
            v0.serve(prompt, out)
            return
        if req.prefill is None or req.decode is None:
            raise ValueError(f"P/D flow needs prefill= and decode= in user, got {req.user!r}")
        with_connector = self.connector == "store"
        v1, v0 = self._nodes(req.prefill, "prefill")
        # a kv_producer looks the store up too (what another prefill node stored)
        v1.serve(
            prompt, 1, external_blocks=self._stored_blocks(prompt, req.prefill) if with_connector else None
        )
        v0.serve(prompt, 1)
        if with_connector:
            for i in range(len(prompt) // self.block_size):
                key = tuple(prompt[: (i + 1) * self.block_size])
                if key not in self.store:
                    self.store.add(key)
                    self._store_owner[key] = req.prefill
        d1, d0 = self._nodes(req.decode, "decode")
        ext = self._stored_blocks(prompt, req.decode) if with_connector else None
        d1.serve(prompt, out, external_blocks=ext)
        d0.serve(prompt, out)

    def run(self, requests: Iterable[DatasetRequest], output_tokens: Sequence[Output] | None = None) -> None:
        for i, req in enumerate(requests):
            self.submit(req, output_tokens=None if output_tokens is None else output_tokens[i])

    def counters(self) -> dict[str, NodeExpectation]:
        out: dict[str, NodeExpectation] = {}
        for node, v1 in self.v1.items():
            v0 = self.v0[node]
            out[node] = NodeExpectation(
                node=node,
                roles=list(self.roles[node]),
                requests=v1.requests,
                queries=v1.queries,
                hits=v1.hits,
                external_queries=v1.external_queries,
                external_hits=v1.external_hits,
                block_queries=v0.block_queries,
                block_hits=v0.block_hits,
                v0_hit_rate=v0.rate.value(),
            )
        return out


def expect(
    requests: Sequence[DatasetRequest],
    tokenize: Tokenize,
    *,
    repeat: int = 1,
    **kwargs: object,
) -> dict[str, NodeExpectation]:
    """Counters after sending `requests` `repeat` times in order, from freshly started nodes."""
    model = ClusterModel(tokenize, **kwargs)  # type: ignore[arg-type]
    for _ in range(repeat):
        model.run(requests)
    return model.counters()


def within(measured: float, expected: float, tolerance: float) -> bool:
    """Exact for fakes (tolerance 0); a real cluster's file sets an absolute tolerance on hit rates."""
    return abs(measured - expected) <= tolerance + 1e-12


def format_table(rows: Iterable[NodeExpectation]) -> str:
    head = (
        "node",
        "roles",
        "requests",
        "queries",
        "hits",
        "hit_rate",
        "ext_hits",
        "v0_blocks",
        "v0_hit_rate",
    )
    return table.render(
        head,
        (
            (
                r.node,
                ",".join(r.roles),
                r.requests,
                r.queries,
                r.hits,
                f"{r.hit_rate:.1%}",
                r.external_hits,
                f"{r.block_hits}/{r.block_queries}",
                f"{r.v0_hit_rate:.1%}",
            )
            for r in rows
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kvtest expect", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--datapath",
        required=True,
        nargs="+",
        help="dataset JSONL (kvtest dataset); several files are sent one after another (e.g. a Random run "
        "whose second pass drew new routes)",
    )
    p.add_argument("--model", default=None, help="model dir with tokenizer.json, or a bare name (built-in)")
    p.add_argument("--tokenizer", default=None, help="tokenizer.json or a dir holding one")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--num-gpu-blocks", type=int, default=None, help="pool size per node (default: unbounded)")
    p.add_argument("--repeat", type=int, default=1, help="how many times the dataset is sent (the seed: 2)")
    p.add_argument("--flow", choices=["pd", "single"], default="pd")
    p.add_argument("--connector", choices=["none", "store"], default="none")
    p.add_argument("--no-shared-hash-seed", action="store_true", help="nodes lack a common PYTHONHASHSEED")
    p.add_argument("--results", default=None, help="kvtest send --out file(s): real output token counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    try:
        requests = [r for path in args.datapath for r in read(path)]
    except (OSError, ValueError) as exc:
        print(f"kvtest expect: {exc}", file=sys.stderr)
        return 2
    outputs: list[int] | None = None
    if args.results:
        from kvtest.workload.send import read_results

        got = read_results(args.results)
        if len(got) not in (len(requests), len(requests) * args.repeat):
            print(
                f"kvtest expect: {args.results} has {len(got)} results for {len(requests)} requests",
                file=sys.stderr,
            )
            return 2
        # A request that failed or reported no usage is assumed to have produced max_tokens.
        outputs = [
            r.completion_tokens if r.completion_tokens is not None else requests[i % len(requests)].max_tokens
            for i, r in enumerate(got)
        ]
    model_name = args.model or (requests[0].model if requests else "")
    model = ClusterModel(
        load_tokenizer(model_name, args.tokenizer),
        block_size=args.block_size,
        num_gpu_blocks=args.num_gpu_blocks,
        flow=args.flow,
        connector=args.connector,
        shared_hash_seed=not args.no_shared_hash_seed,
    )
    for k in range(args.repeat):
        chunk = None
        if outputs is not None:
            chunk = (
                outputs
                if len(outputs) == len(requests)
                else outputs[k * len(requests) : (k + 1) * len(requests)]
            )
        model.run(requests, chunk)
    rows = model.counters()
    if args.json:
        print(json.dumps({k: v.to_dict() for k, v in rows.items()}, indent=2))
    else:
        print(format_table(rows.values()))
    return 0
