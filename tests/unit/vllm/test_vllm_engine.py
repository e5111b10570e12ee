"""Engine scheduling: admission limits, preemption of the last-scheduled request (vLLM FCFS)."""

from __future__ import annotations

import asyncio

from simulators.vllm.config import SimConfig
from simulators.vllm.engine import Engine
from simulators.vllm.request import SimRequest
from simulators.vllm.tokenizer import ByteTokenizer


def engine(**kw: object) -> Engine:
    return Engine(SimConfig(sim_virtual_clock=True, sim_env={"PYTHONHASHSEED": "0"}, **kw), ByteTokenizer())  # type: ignore[arg-type]


async def collect(e: Engine, req: SimRequest) -> list[int]:
    return [t async for t in e.generate(req)]


async def test_decode_without_a_free_block_preempts_the_last_scheduled_request() -> None:
    # 3 usable blocks of 4. A (4 tokens, 1 block) and B (5 tokens, 2 blocks) both fit; A's first
    # decode step needs a 2nd block while B is still in prefill: vLLM's FCFS pops the last running
    # request (B), not A (vllm/v1/core/sched/scheduler.py: `preempted_req = self.running.pop()`).
    e = engine(block_size=4, num_gpu_blocks_override=4, sim_ttft_ms_per_token=1, sim_itl_ms=1)
    a = e.new_request([1, 2, 3, 4], 3)
    b = e.new_request([5, 6, 7, 8, 9], 3)
    outs = await asyncio.gather(collect(e, a), collect(e, b))
    assert [len(o) for o in outs] == [3, 3]
    assert (a.num_preemptions, b.num_preemptions) == (0, 1)
    assert e.metrics.num_preemptions == 1
    assert a.finish_reason == b.finish_reason == "length"
    assert e.kv.usage == 0.0 and e.num_running == 0 and e.num_waiting == 0
    # B's re-lookup after preemption is kept out of the prefix-cache counters
    assert e.kv.stats.requests == 2 and e.kv.stats.preempted_requests == 1


async def test_max_num_seqs_keeps_the_rest_waiting_in_arrival_order() -> None:
    e = engine(max_num_seqs=2, sim_itl_ms=10)
    reqs = [e.new_request([i + 1] * 5, 3) for i in range(4)]
    tasks = [asyncio.create_task(collect(e, r)) for r in reqs]
    for _ in range(20):
        await asyncio.sleep(0)
    assert e.num_running == 2 and e.num_waiting == 2
    assert [r.request_id for r in e.waiting] == [reqs[2].request_id, reqs[3].request_id]
    await asyncio.gather(*tasks)
    assert all(r.scheduled_time is not None for r in reqs)
    # with a virtual clock the queue time is exact: the last two waited for the first two (3 tokens)
    assert reqs[2].scheduled_time - reqs[2].arrival_time == 0.02  # type: ignore[operator]


async def test_abort_while_waiting_leaves_no_trace_in_the_queue() -> None:
    e = engine(max_num_seqs=1, sim_itl_ms=10)
    first = e.new_request([1] * 5, 3)
    second = e.new_request([2] * 5, 3)
    t1 = asyncio.create_task(collect(e, first))
    t2 = asyncio.create_task(collect(e, second))
    for _ in range(10):
        await asyncio.sleep(0)
    assert e.num_waiting == 1
    t2.cancel()
    await asyncio.gather(t2, return_exceptions=True)
    assert e.num_waiting == 0 and second.finish_reason == "abort"
    await t1
    assert e.metrics.request_success["abort"] == 1 and e.metrics.request_success["length"] == 1
