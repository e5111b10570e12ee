"""The replay's event loop: N fake vLLM engines in one process, on one virtual clock, no HTTP, no sleeping.

Each node is the fake's own Engine (simulators/vllm/engine.py: its scheduler, its KVCacheManager with the
n-1 cap and LRU free queue, its metrics). The loop calls the same steps generate() awaits through:
`schedule()` (admission, prefix-cache lookup, allocation), the prefill's end (`prefilled`), each decode
step's slot (`decode_slot`, which preempts when the pool runs out) and `finish`. Time is an integer of
nanoseconds; events at one instant run in the trace's order (then in the order they were made), in both
decode modes, so results never depend on heap ties.

Decode in aggregate: between two block boundaries a decode step changes nothing another request can see
(its slot fits in the block it has; no allocation, so no preemption). So a request's next event is the
step whose slot needs a new block, or its last step (with kv_aware, whose index counts cached blocks, also
the step that completes a block), and `decode_steps(n)` does the n steps in between at
once. Only a preemption can look inside that stretch: a victim is first brought up to the steps it had
done by then (as the token-by-token run would have), so the blocks it frees are cached exactly as they
would be. `aggregate_decode=False` runs one event per token: tests/replay shows both give equal counters.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TextIO

from kvtest.replay.block_hashes import PromptHasher
from kvtest.replay.kv_index_feed import IndexFeed
from kvtest.replay.output_plan import plan_from_bytes
from kvtest.replay.routing import ReplayRouter
from kvtest.replay.shared_store import SharedStore, SharedStoreConnector
from kvtest.replay.summary import NodeResult, ReplayResult
from kvtest.replay.tokens import prompt_bytes
from kvtest.replay.trace import TraceRequest
from simulators.vllm.clock import VirtualClock
from simulators.vllm.config import SimConfig
from simulators.vllm.engine import Engine
from simulators.vllm.hashing import BlockHasher
from simulators.vllm.request import SimRequest
from simulators.vllm.tokenizer import load_tokenizer

NS = 1_000_000_000
ARRIVE, PREFILLED, STEP = 0, 1, 2


@dataclass
class ReplayConfig:
    nodes: int = 16
    strategy: str = "round_robin"
    block_size: int = 16
    cache_tokens: int = 8192 * 16  # each node's KV pool (vLLM's num_gpu_blocks x block_size)
    store_tokens: int | None = None  # shared store capacity; None: no store
    store_unbounded: bool = False
    max_num_seqs: int = 256
    prefill_base_ms: float = 20.0
    ttft_ms_per_token: float = 0.05
    itl_ms: float = 20.0
    external_ms_per_token: float = 0.005
    hash_algo: str = "sha256"
    seed: int = 0
    prefix_tokens: int = 64
    aggregate_decode: bool = True

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("--nodes must be at least 1")
        if self.block_size < 1:
            raise ValueError("--block-size must be positive")
        if self.cache_tokens < 2 * self.block_size:
            raise ValueError("--cache-tokens must hold at least two blocks")

    @property
    def has_store(self) -> bool:
        return self.store_unbounded or self.store_tokens is not None

    def sim_config(self) -> SimConfig:
        usable = self.cache_tokens // self.block_size
        return SimConfig(
            model="tiny",
            block_size=self.block_size,
            num_gpu_blocks_override=usable + 1,  # block 0 is vLLM's null block
            max_model_len=usable * self.block_size,
            max_num_seqs=self.max_num_seqs,
            prefix_caching_hash_algo=self.hash_algo,
            sim_prefill_base_ms=self.prefill_base_ms,
            sim_ttft_ms_per_token=self.ttft_ms_per_token,
            sim_itl_ms=self.itl_ms,
            sim_external_ms_per_token=self.external_ms_per_token,
            sim_virtual_clock=True,
            seed=self.seed,
            sim_env={"PYTHONHASHSEED": str(self.seed)},
        )


@dataclass(slots=True, eq=False)
class Flight:
    trace: TraceRequest
    node: int
    req: SimRequest
    pending: int = -1  # kind of the live event, -1: none (waiting, or in its own event)
    base_ns: int = 0  # when the planned decode stretch started
    steps: int = 0  # steps in it


@dataclass
class Progress:
    """Prints a line every `every_s` wall seconds on long runs."""

    out: TextIO | None = sys.stderr
    every_s: float = 5.0
    last: float = field(default_factory=time.perf_counter)

    def tick(self, done: int, total: int, sim_s: float, wall0: float) -> None:
        now = time.perf_counter()
        if self.out is None or now - self.last < self.every_s:
            return
        self.last = now
        rate = done / (now - wall0) if now > wall0 else 0.0
        print(
            f"replay: {done}/{total} requests done, {sim_s:.0f} s simulated, {now - wall0:.0f} s wall, "
            f"{rate:.0f} requests/s",
            file=self.out,
            flush=True,
        )


class Simulation:
    def __init__(self, trace: list[TraceRequest], cfg: ReplayConfig, name: str = "trace") -> None:
        self.trace = trace
        self.cfg = cfg
        self.name = name
        sim = cfg.sim_config()
        self.sim = sim
        tokenizer = load_tokenizer(sim.model)
        self.store: SharedStore | None = None
        if cfg.has_store:
            cap = None if cfg.store_unbounded else max(1, (cfg.store_tokens or 0) // cfg.block_size)
            self.store = SharedStore(cap)
        self.clock = VirtualClock()
        self.connectors: list[SharedStoreConnector | None] = []
        self.engines: list[Engine] = []
        for _ in range(cfg.nodes):
            conn = SharedStoreConnector(self.store, cfg.block_size) if self.store is not None else None
            e = Engine(sim, tokenizer, conn)
            e.clock = self.clock  # one virtual clock for every node
            e.on_admit = self._on_admit
            e.on_preempt = self._on_preempt
            self.engines.append(e)
            self.connectors.append(conn)
        self.hasher = PromptHasher(BlockHasher(cfg.block_size, cfg.hash_algo, sim.sim_env))
        self.router = ReplayRouter(cfg.nodes, cfg.strategy, cfg.seed, cfg.prefix_tokens, cfg.block_size)
        if self.router.kv_index is not None:
            for i, e in enumerate(self.engines):
                e.kv.pool.events = IndexFeed(self.router.kv_index, self.router.urls[i])
        self.results = [NodeResult(node=i) for i in range(cfg.nodes)]
        self.flights: dict[str, Flight] = {}
        self.heap: list[tuple[int, int, int, int, int, Flight | TraceRequest]] = []
        self.seq = itertools.count()
        self.now_ns = 0
        self.cur_index = -1  # trace index of the event being handled
        self.rejected = 0
        self.done = 0
        self.itl_ns = round(cfg.itl_ms * 1e6)

    # -- events ---------------------------------------------------------------------------------------
    def _push(self, t_ns: int, index: int, kind: int, epoch: int, obj: Flight | TraceRequest) -> None:
        heapq.heappush(self.heap, (t_ns, index, next(self.seq), kind, epoch, obj))

    def run(self, progress: Progress | None = None) -> ReplayResult:
        wall0 = time.perf_counter()
        for tr in self.trace:
            self._push(round(tr.arrival_ms * 1e6), tr.index, ARRIVE, 0, tr)
        heap = self.heap
        total = len(self.trace)
        n_events = 0
        while heap:
            t_ns, index, _, kind, epoch, obj = heapq.heappop(heap)
            self.now_ns = t_ns
            self.cur_index = index
            now_s = t_ns / NS
            self.clock.set_now(now_s)
            if kind == ARRIVE:
                assert isinstance(obj, TraceRequest)
                self._arrive(obj)
            else:
                assert isinstance(obj, Flight)
                if obj.req.num_preemptions != epoch or obj.req.is_finished:
                    continue  # preempted since: generate()'s epoch check
                obj.pending = -1
                if kind == PREFILLED:
                    self._prefilled(obj)
                else:
                    self._steps(obj, obj.steps)
            n_events += 1
            if progress is not None and n_events % 2048 == 0:
                progress.tick(self.done, total, now_s, wall0)
        wall = time.perf_counter() - wall0
        return self._result(wall)

    def _arrive(self, tr: TraceRequest) -> None:
        raw: bytes | None = None
        if tr.hash_ids is not None:
            raw = prompt_bytes(tr.hash_ids, tr.input_length)
            prompt = list(raw)
        else:
            assert tr.prompt_token_ids is not None
            prompt = list(tr.prompt_token_ids)
        room = self.sim.resolved_max_model_len() - tr.input_length
        if room < 1:
            # vLLM 0.32 answers 400 (simulators/vllm/protocol.py check_length): max_model_len is what
            # the pool holds, and this prompt leaves no room for one output token
            self.rejected += 1
            self.done += 1
            return
        hashes = self.hasher.hashes(prompt, tr.hash_ids)  # the same on every node: one seed, one algo
        i = self.router.pick(prompt, hashes)
        e = self.engines[i]
        max_tokens = min(tr.output_length, room)  # check_length clamps max_tokens to the room left
        plan = None if raw is None else plan_from_bytes(e.tokenizer, self.sim.seed, raw, max_tokens)
        req = e.new_request(
            prompt, max_tokens, request_id=f"r{tr.index}", block_hashes=hashes, output_plan=plan
        )
        req.arrival_time = self.now_ns / NS
        self.flights[req.request_id] = Flight(tr, i, req)
        e.waiting.append(req)
        e.schedule()

    def _on_admit(self, req: SimRequest) -> None:
        f = self.flights[req.request_id]
        e = self.engines[f.node]
        if req.scheduled_time is None:
            req.scheduled_time = self.now_ns / NS
        elif req.num_preemptions:
            # prefill again after a preemption: vLLM recomputes what its cache no longer holds
            r = self.results[f.node]
            r.recomputed_tokens += (
                req.num_tokens - req.num_local_cached_tokens - req.num_external_computed_tokens
            )
        dt = e.latency.ttft(req.num_tokens, req.num_local_cached_tokens, req.num_external_computed_tokens)
        f.pending = PREFILLED
        self._push(self.now_ns + round(dt * NS), f.trace.index, PREFILLED, req.num_preemptions, f)

    def _prefilled(self, f: Flight) -> None:
        req = f.req
        e = self.engines[f.node]
        conn = self.connectors[f.node]
        if conn is not None:
            conn.save(req)
        e.prefilled(req)
        now = self.now_ns / NS
        m = e.metrics
        if req.first_token_time is None:
            req.first_token_time = now
            m.ttft.observe(now - req.arrival_time)
        else:
            m.itl.observe(now - (req.last_token_time or now))
        m.generation_tokens += 1
        req.last_token_time = now
        self._continue(f)

    def _steps(self, f: Flight, n: int) -> None:
        req = f.req
        e = self.engines[f.node]
        e.decode_steps(req, n)
        m = e.metrics
        m.itl.observe_n(self.itl_ns / NS, n)
        m.generation_tokens += n
        req.last_token_time = (f.base_ns + n * self.itl_ns) / NS
        self._continue(f)

    def _continue(self, f: Flight) -> None:
        req = f.req
        e = self.engines[f.node]
        if len(req.output_token_ids) >= req.max_tokens:
            self._finish(f)
            return
        outcome = e.decode_slot(req)
        if outcome == "preempted":
            return  # back in the waiting queue; _on_admit plans its prefill again
        if outcome == "impossible":
            self._finish(f)
            return
        n = 1
        if self.cfg.aggregate_decode:
            left = req.max_tokens - len(req.output_token_ids)
            have = len(e.kv.req_blocks[req.request_id]) * e.block_size
            n = min(left, have - req.num_tokens + 1)
            if self.router.kv_index is not None:
                # kv_aware reads how many blocks each node caches (an emptiest-node pick): the stretch
                # also ends at the step whose slot completes a block, where token by token caches it
                j = (e.kv.num_cached[req.request_id] + 1) * e.block_size - req.num_computed_tokens - 1
                if 1 <= j < n:
                    n = j
        f.pending = STEP
        f.base_ns = self.now_ns
        f.steps = n
        self._push(self.now_ns + n * self.itl_ns, f.trace.index, STEP, req.num_preemptions, f)

    def _on_preempt(self, req: SimRequest) -> None:
        """Before a victim's blocks are freed: the decode steps it had done by now, token by token."""
        f = self.flights[req.request_id]
        if f.pending != STEP:
            return
        itl, now = self.itl_ns, self.now_ns
        j = 0
        if itl > 0:
            j = max(0, (now - f.base_ns - 1) // itl)  # steps strictly before now
            if f.base_ns + (j + 1) * itl == now and f.trace.index < self.cur_index:
                j += 1  # the one at this instant, which runs before the current event
        elif f.trace.index < self.cur_index:
            j = f.steps
        j = min(j, f.steps - 1)
        f.pending = -1
        if j > 0:
            e = self.engines[f.node]
            e.decode_steps(req, j)
            e.metrics.itl.observe_n(itl / NS, j)
            e.metrics.generation_tokens += j
            req.last_token_time = (f.base_ns + j * itl) / NS
            e.decode_slot(req)  # the next step's slot: fits its last block, so it only caches

    def _finish(self, f: Flight) -> None:
        req = f.req
        e = self.engines[f.node]
        e.finish(req)
        self.router.done(f.node)
        del self.flights[req.request_id]
        r = self.results[f.node]
        if req.scheduled_time is not None:
            r.queue_s.append(req.scheduled_time - req.arrival_time)
        if req.first_token_time is not None:
            r.ttft_s.append(req.first_token_time - req.arrival_time)
        self.done += 1

    # -- results --------------------------------------------------------------------------------------
    def _result(self, wall: float) -> ReplayResult:
        for r, e in zip(self.results, self.engines, strict=True):
            m = e.metrics
            st = e.kv.stats
            src = m.prompt_tokens_by_source
            r.requests = sum(m.request_success.values())
            r.prompt_tokens = m.prompt_tokens
            r.local_hit_tokens = src["local_cache_hit"]
            r.external_hit_tokens = src["external_kv_transfer"]
            r.computed_tokens = src["local_compute"]
            r.prefix_cache_queries = st.queries
            r.prefix_cache_hits = st.hits
            r.preemptions = m.num_preemptions
            r.generation_tokens = m.generation_tokens
        cfg = asdict(self.cfg)
        return ReplayResult(
            trace=self.name,
            strategy=self.cfg.strategy,
            nodes=self.results,
            config=cfg,
            trace_requests=len(self.trace),
            trace_prompt_tokens=sum(t.input_length for t in self.trace),
            rejected=self.rejected,
            simulated_s=self.now_ns / NS,
            wall_s=wall,
            store=asdict(self.store.stats) | {"blocks": len(self.store)} if self.store is not None else None,
        )


def replay(
    trace: list[TraceRequest], cfg: ReplayConfig, name: str = "trace", progress: Progress | None = None
) -> ReplayResult:
    return Simulation(trace, cfg, name).run(progress)


ProgressFactory = Callable[[], Progress | None]
