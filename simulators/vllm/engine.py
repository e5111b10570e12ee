"""The engine: waiting queue, running set, prefill/decode timing, the prefix cache and the KV connector.

vLLM's scheduler (vllm/v1/core/sched/scheduler.py) in event form: a request waits (FCFS) until fewer
than max_num_seqs run and the pool can hold its prompt; its blocks stay allocated while it runs; prefill
costs only the tokens not found in the cache; each decode step allocates a slot for the token being
computed and caches each block as it fills; a decode step that finds no free block preempts the request
(blocks freed, back to the head of the queue, vllm:num_preemptions_total + 1); at the end its blocks are
freed tail-first, unless the KV connector asks to keep them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

from simulators.vllm.clock import VirtualClock, WallClock
from simulators.vllm.config import SimConfig
from simulators.vllm.connectors.base import GenerationError, KVLoadError
from simulators.vllm.hashing import BlockHasher
from simulators.vllm.kv_connector import KVConnector, NoKVConnector
from simulators.vllm.kv_events import KVEventRecorder, ZmqEventPublisher, int_hashes_from_env, stamp
from simulators.vllm.latency import LatencyModel
from simulators.vllm.metrics import EngineMetrics
from simulators.vllm.prefix_cache import KVCacheManager
from simulators.vllm.request import RequestStatus, SimRequest
from simulators.vllm.tokenizer import Tokenizer, plan_output


class Engine:
    def __init__(self, cfg: SimConfig, tokenizer: Tokenizer, kv_connector: KVConnector | None = None) -> None:
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.block_size = cfg.block_size
        self.max_model_len = cfg.resolved_max_model_len()
        self.clock: WallClock | VirtualClock = VirtualClock() if cfg.sim_virtual_clock else WallClock()
        ev = cfg.kv_events_config
        # vLLM records events whenever enable_kv_cache_events is set (publisher "null" drops them)
        self.kv_events = (
            KVEventRecorder(int_hashes_from_env(cfg.sim_env)) if ev and ev.enable_kv_cache_events else None
        )
        self.publisher: ZmqEventPublisher | None = None
        self.kv = KVCacheManager(
            cfg.num_gpu_blocks, cfg.block_size, cfg.enable_prefix_caching, self.kv_events
        )
        self.hasher = BlockHasher(cfg.block_size, cfg.prefix_caching_hash_algo, cfg.sim_env)
        self.connector: KVConnector = kv_connector or NoKVConnector()
        self.has_connector = kv_connector is not None or cfg.kv_transfer_config is not None
        self._hash_requests = cfg.enable_prefix_caching or self.has_connector
        tc = cfg.kv_transfer_config or {}
        self.kv_load_failure_policy = tc.get("kv_load_failure_policy") or "fail"
        self.latency = LatencyModel(
            cfg.sim_prefill_base_ms, cfg.sim_ttft_ms_per_token, cfg.sim_itl_ms, cfg.sim_external_ms_per_token
        )
        self.metrics = EngineMetrics(cfg.model_names[0], self.max_model_len)
        self._v0 = cfg.sim_metrics in ("v0", "both")
        self.waiting: deque[SimRequest] = deque()
        self.running: dict[str, SimRequest] = {}
        self.delayed_free: dict[str, SimRequest] = {}
        self._admitted: dict[str, asyncio.Future[None]] = {}
        self._ids = itertools.count()
        # an event-driven driver (kvtest replay) learns here what schedule() admitted and whom a
        # decode step is about to preempt; generate() needs neither
        self.on_admit: Callable[[SimRequest], None] | None = None
        self.on_preempt: Callable[[SimRequest], None] | None = None

    # -- KV events ------------------------------------------------------------------------------------
    def start_publisher(self) -> None:
        ev = self.cfg.kv_events_config
        if ev is not None and ev.publishes and self.publisher is None:
            self.publisher = ZmqEventPublisher(ev, self.cfg.data_parallel_rank)

    def stop_publisher(self) -> None:
        if self.publisher is not None:
            self.publish_events()
            self.publisher.shutdown()
            self.publisher = None

    def publish_events(self) -> None:
        """vLLM's scheduler publishes what a step produced as one batch; the fake, what one engine
        operation (a scheduling pass, a decode slot, a reset) produced."""
        if self.kv_events is None:
            return
        events = self.kv_events.take()
        if events and self.publisher is not None:
            self.publisher.publish(stamp(events))

    def reset_prefix_cache(self) -> bool:
        ok = self.kv.reset_prefix_cache()
        self.publish_events()
        return ok

    # -- requests -------------------------------------------------------------------------------------
    def new_request(
        self,
        prompt_token_ids: list[int],
        max_tokens: int,
        *,
        seed: int | None = None,
        kv_transfer_params: dict[str, Any] | None = None,
        cache_salt: str | None = None,
        skip_reading_prefix_cache: bool = False,
        request_id: str | None = None,
        sample_index: int = 0,
        allowed_token_ids: list[int] | None = None,
        block_hashes: list[bytes] | None = None,
        output_plan: list[int] | None = None,
    ) -> SimRequest:
        """`block_hashes`, `output_plan`: when the caller already has them (a replay memoises hashes
        per shared prefix and plans from the prompt's bytes); they must be what self.hasher and
        plan_output compute."""
        rid = request_id or f"req-{next(self._ids)}"
        plan = output_plan
        if plan is None:
            plan = plan_output(
                self.tokenizer,
                self.cfg.seed if seed is None else seed,
                prompt_token_ids,
                max_tokens,
                sample_index,
                allowed_token_ids,
            )
        req = SimRequest(
            rid, prompt_token_ids, max_tokens, plan, kv_transfer_params, cache_salt, skip_reading_prefix_cache
        )
        if block_hashes is not None:
            req.block_hashes = block_hashes
        elif self._hash_requests:
            self.hasher.extend(req.block_hashes, prompt_token_ids, cache_salt)
        return req

    # -- scheduling -----------------------------------------------------------------------------------
    def _try_allocate(self, req: SimRequest) -> bool:
        kv = self.kv
        bs = self.block_size
        first = req.num_cached_tokens < 0
        hit_blocks, local = kv.get_computed_blocks(req, req.skip_reading_prefix_cache, record=False)
        ext = 0
        if self.has_connector:
            ext = int(self.connector.get_num_new_matched_tokens(req, local) or 0)
            # the connector applies its own cap (the store's n-1; NIXL/Mooncake load the whole prompt)
            ext = max(0, min(ext, req.num_tokens - local))
        v0_hits = 0
        if self._v0 and first:  # before allocating: allocation caches this request's own blocks
            v0_hits = len(hit_blocks) + self._extra_full_hits(req, len(hit_blocks))
        new = kv.allocate_slots(req, req.num_tokens - local - ext, hit_blocks, ext)
        if new is None:
            return False
        if not req.skip_reading_prefix_cache and kv.enable_caching:
            kv.record_lookup(req, local)
        if self.has_connector:
            self.connector.update_state_after_alloc(req, kv.block_ids(req.request_id), ext)
        req.num_computed_tokens = local + ext
        req.num_local_cached_tokens = local
        req.num_external_computed_tokens = ext
        if first:
            req.num_cached_tokens = local + ext
            m = self.metrics
            p = req.num_prompt_tokens
            m.prompt_tokens += p
            src = m.prompt_tokens_by_source
            src["local_cache_hit"] += local
            src["external_kv_transfer"] += ext
            cached_src = m.prompt_tokens_cached_by_source
            cached_src["device"] += local
            cached_src["external_unspecified"] += ext
            src["local_compute"] += p - local - ext
            if self.has_connector:
                # vLLM 0.32 scheduler: the connector is asked only for what the local cache lacks
                m.external_queries += req.num_tokens - local
                m.external_hits += ext
            if self._v0:
                full = p // bs
                m.v0_block_queries += full
                m.v0_block_hits += min(v0_hits, full)
        return True

    def _extra_full_hits(self, req: SimRequest, start: int) -> int:
        # V0 counted every full prompt block, with no n-1 cap: look past the capped hit
        n = 0
        for h in req.block_hashes[start : req.num_prompt_tokens // self.block_size]:
            if self.kv.pool.get_cached_block(h) is None:
                break
            n += 1
        return n

    def schedule(self) -> None:
        waiting = self.waiting
        while waiting and len(self.running) < self.cfg.max_num_seqs:
            req = waiting[0]
            if not self._try_allocate(req):
                break
            waiting.popleft()
            req.status = RequestStatus.RUNNING
            self.running[req.request_id] = req
            if self.on_admit is not None:
                self.on_admit(req)
            fut = self._admitted.pop(req.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        self.publish_events()

    async def _admission(self, req: SimRequest) -> None:
        """Wait until schedule() has moved the request to running (it is already in the waiting queue)."""
        if req.status is RequestStatus.RUNNING:
            return
        fut = asyncio.get_running_loop().create_future()
        self._admitted[req.request_id] = fut
        await fut

    def _preempt(self, req: SimRequest) -> None:
        """vLLM's _preempt_request: free the blocks, back to the head of the waiting queue."""
        if self.on_preempt is not None:
            self.on_preempt(req)
        self.kv.free(req.request_id)
        self.running.pop(req.request_id, None)
        req.num_computed_tokens = 0
        req.num_preemptions += 1
        req.status = RequestStatus.PREEMPTED
        self.waiting.appendleft(req)
        self.metrics.num_preemptions += 1

    def _decode_slot(self, req: SimRequest) -> str:
        """One more slot for `req`, preempting the last-scheduled running request until it fits
        (vLLM's FCFS policy: `self.running.pop()`). Returns "ok", "preempted" (req itself) or
        "impossible" (req runs alone and the pool still cannot hold it)."""
        kv = self.kv
        while kv.allocate_slots(req, 1) is None:
            victim = next(reversed(self.running.values()))
            if victim is req:
                if len(self.running) == 1 and not self.delayed_free:
                    return "impossible"
                self._preempt(req)
                self.schedule()
                return "preempted"
            self._preempt(victim)
        return "ok"

    def _finish(self, req: SimRequest, reason: str) -> None:
        req.status = RequestStatus.FINISHED
        req.finish_reason = reason
        rid = req.request_id
        was_running = self.running.pop(rid, None) is not None
        if not was_running:
            try:
                self.waiting.remove(req)
            except ValueError:
                pass
            fut = self._admitted.pop(rid, None)
            if fut is not None and not fut.done():
                fut.cancel()
        delay = False
        if was_running:
            delay, params = self.connector.request_finished(req, self.kv.block_ids(rid))
            req.result_kv_transfer_params = params
        if delay:
            self.delayed_free[rid] = req
        else:
            self.kv.free(rid)
        self._observe_finished(req, reason)
        self.schedule()

    def free_delayed(self, request_id: str) -> None:
        """A connector calls this when it no longer needs a finished request's blocks."""
        if self.delayed_free.pop(request_id, None) is not None:
            self.kv.free(request_id)
            self.schedule()

    def _observe_finished(self, req: SimRequest, reason: str) -> None:
        m = self.metrics
        m.request_success[reason] = m.request_success.get(reason, 0) + 1
        now = self.clock.now()
        end = req.last_token_time if req.last_token_time is not None else now
        m.e2e.observe(end - req.arrival_time)
        m.req_prompt.observe(req.num_prompt_tokens)
        m.req_gen.observe(len(req.output_token_ids))
        if req.scheduled_time is not None:
            m.queue.observe(req.scheduled_time - req.arrival_time)
            m.inference.observe(end - req.scheduled_time)
            if req.first_token_time is not None:
                m.prefill.observe(req.first_token_time - req.scheduled_time)
                m.decode.observe(end - req.first_token_time)

    # -- generation -----------------------------------------------------------------------------------
    def _append_token(self, req: SimRequest) -> None:
        req.output_token_ids.append(req.output_plan[len(req.output_token_ids)])
        if self._hash_requests and req.num_tokens % self.block_size == 0:
            self.hasher.extend(req.block_hashes, req.all_token_ids, req.cache_salt)

    async def generate(self, req: SimRequest) -> AsyncGenerator[int, None]:
        """Run a request; yields each output token id when it is produced.

        After every await the request checks whether it was preempted meanwhile (another request's
        decode step took its blocks); if so it waits to be scheduled again and recomputes its prompt and
        the tokens generated so far, then goes on sampling, as vLLM does.
        """
        clock = self.clock
        lat = self.latency
        m = self.metrics
        connector_active = self.has_connector
        req.arrival_time = clock.now()
        emitted = 0
        last_emit = 0.0
        try:
            prepare = getattr(self.connector, "prepare", None) if connector_active else None
            if prepare is not None:
                await prepare(req)  # an async lookup before the request waits (vLLM's lookup_async)
            self.waiting.append(req)
            self.schedule()
            while True:
                await self._admission(req)
                epoch = req.num_preemptions
                if req.scheduled_time is None:
                    req.scheduled_time = clock.now()
                ext = req.num_external_computed_tokens
                if connector_active and ext:
                    try:
                        await self.connector.load_kv(req, ext)
                    except KVLoadError as e:
                        # vLLM's kv_load_failure_policy (scheduler.py _handle_invalid_blocks): "fail"
                        # finishes the request with an error, "recompute" computes the missing tokens
                        if self.kv_load_failure_policy == "fail":
                            loaded = req.num_local_cached_tokens + max(0, e.loaded_tokens)
                            self.kv.evict_blocks_from(req.request_id, loaded // self.block_size)
                            self._finish(req, "error")
                            raise GenerationError(str(e)) from None
                        ext = req.num_external_computed_tokens = max(0, min(ext, e.loaded_tokens))
                dt = lat.ttft(req.num_tokens, req.num_local_cached_tokens, ext)
                if dt:
                    await clock.sleep(dt)
                if req.num_preemptions != epoch:
                    continue
                req.num_computed_tokens = req.num_tokens
                if connector_active:
                    await self.connector.save_kv(req, self.kv.block_ids(req.request_id))
                    if req.num_preemptions != epoch:
                        continue
                self._append_token(req)
                outcome = "ok"
                while True:
                    while emitted < len(req.output_token_ids):
                        now = clock.now()
                        if emitted == 0:
                            req.first_token_time = now
                            m.ttft.observe(now - req.arrival_time)
                        else:
                            m.itl.observe(now - last_emit)
                        last_emit = req.last_token_time = now
                        m.generation_tokens += 1
                        tok = req.output_token_ids[emitted]
                        emitted += 1
                        yield tok
                    if req.num_preemptions != epoch:
                        outcome = "preempted"
                        break
                    if len(req.output_token_ids) >= req.max_tokens:
                        outcome = "done"
                        break
                    # decode step: compute the KV of the last token, sample the next
                    outcome = self._decode_slot(req)
                    self.publish_events()
                    if outcome != "ok":
                        break
                    dt = lat.itl()
                    if dt:
                        await clock.sleep(dt)
                    if req.num_preemptions != epoch:
                        outcome = "preempted"
                        break
                    req.num_computed_tokens += 1
                    self._append_token(req)
                if outcome != "preempted":
                    break
            self._finish(req, "length")
        finally:
            if req.status is not RequestStatus.FINISHED:
                self._finish(req, "abort")

    # -- event-driven use (kvtest replay): generate()'s steps, called by a driver on its own clock ----
    def prefilled(self, req: SimRequest) -> None:
        """The prefill's forward pass is done: its KV is computed and the first token sampled."""
        req.num_computed_tokens = req.num_tokens
        self._append_token(req)

    def decode_steps(self, req: SimRequest, n: int) -> None:
        """n decode steps of a running request in one call, where its allocated slots already hold
        them (no step needs a new block, so none can preempt): what n rounds of generate()'s
        (compute the last token's KV, sample the next) leave behind, with the full blocks cached
        as the fast path of allocate_slots caches them. The caller then asks decode_slot() for the
        slot of the step after, which may need a block (and preempt)."""
        if n <= 0:
            return
        out = req.output_token_ids
        k = len(out)
        out.extend(req.output_plan[k : k + n])
        req.num_computed_tokens += n
        if self._hash_requests and req.num_tokens // self.block_size > len(req.block_hashes):
            self.hasher.extend(req.block_hashes, _Joined(req.prompt_token_ids, out), req.cache_salt)

    def decode_slot(self, req: SimRequest) -> str:
        """The slot for the next decode step: "ok", "preempted" (req itself) or "impossible"."""
        return self._decode_slot(req)

    def finish(self, req: SimRequest, reason: str = "length") -> None:
        self._finish(req, reason)

    # -- state ----------------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)


class _Joined(Sequence[int]):
    """prompt + output without copying them (a decode step hashes only the blocks it filled)."""

    def __init__(self, a: list[int], b: list[int]) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    def __getitem__(self, i: Any) -> Any:
        n = len(self.a)
        if isinstance(i, slice) and i.start is not None and i.start >= n:
            return self.b[i.start - n : None if i.stop is None else i.stop - n]
        return (self.a + self.b)[i]
