"""Subscribe to one vLLM node's KV cache events (`--kv-events-config`), with replay.

The wire format is vLLM's (vllm/distributed/kv_events.py, 0.32): PUB frames (topic, 8-byte big-endian
sequence number, msgpack payload); the payload is an EventBatch encoded as an array
[ts, events, data_parallel_rank?], each event a map tagged by "type" (BlockStored, BlockRemoved,
AllBlocksCleared). The replay socket is a ROUTER: a DEALER sends (b"", start sequence as 8 bytes) and
receives (b"", topic, seq, payload) for every buffered batch from that sequence on, then
(b"", b"", -1 as 8 signed bytes, b"").

Decoding is generic (msgspec into plain lists and dicts), so this module needs neither vLLM nor the
fake; `KVEvent` is what consumers (the kv_aware strategy, the fidelity test) read.

A SUB socket misses what was published before it connected (ZeroMQ's slow joiner) and whatever the
PUB socket dropped past its high-water mark; both show as a gap in sequence numbers, which `run`
fills from the replay socket (from 0 on start). If the node's buffer no longer holds the missing
batches, the stream says so (`lost`), and the consumer must not trust its picture of that node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

END_SEQ = -1


@dataclass(frozen=True)
class KVEvent:
    kind: str  # BlockStored | BlockRemoved | AllBlocksCleared
    fields: dict[str, Any]

    @property
    def block_hashes(self) -> list[Any]:
        return list(self.fields.get("block_hashes") or [])


@dataclass(frozen=True)
class Batch:
    seq: int
    ts: float
    events: list[KVEvent]
    data_parallel_rank: int | None
    payload: bytes = field(repr=False, default=b"")


def _hashable(v: Any) -> Any:
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def decode_payload(seq: int, payload: bytes) -> Batch:
    raw = msgspec.msgpack.decode(payload)
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValueError(f"batch {seq}: not an EventBatch array: {raw!r:.200}")
    events = []
    for ev in raw[1]:
        if not isinstance(ev, dict) or "type" not in ev:
            raise ValueError(f"batch {seq}: event without a type tag: {ev!r:.200}")
        body = {k: v for k, v in ev.items() if k != "type"}
        events.append(KVEvent(str(ev["type"]), body))
    rank = raw[2] if len(raw) > 2 else None
    return Batch(seq, float(raw[0]), events, rank, payload)


def connect_endpoint(endpoint: str, host: str = "127.0.0.1") -> str:
    """A bind endpoint (tcp://*:PORT) as a subscriber connects to it."""
    return endpoint.replace("*", host, 1) if "*" in endpoint else endpoint


class KVEventStream:
    """One node's event stream: `await run(on_batch)` until cancelled or `close()`.

    on_batch gets each batch once, in sequence order (live ones, and replayed ones after a gap).
    """

    def __init__(
        self,
        endpoint: str,
        replay_endpoint: str | None = None,
        topic: str = "",
        replay_timeout: float = 5.0,
    ) -> None:
        self.endpoint = endpoint
        self.replay_endpoint = replay_endpoint
        self.topic = topic.encode()
        self.replay_timeout = replay_timeout
        self.last_seq: int | None = None
        self.gaps = 0  # gaps seen (each filled by replay or marked lost)
        self.lost = False  # a gap the replay could not fill: the picture of this node is incomplete
        self.batches = 0
        self._stop = asyncio.Event()
        self.ready = asyncio.Event()  # set once the start-up replay is done (or skipped)
        self._ctx: Any = None

    def _context(self) -> Any:
        import zmq.asyncio

        if self._ctx is None:
            self._ctx = zmq.asyncio.Context()
        return self._ctx

    async def replay(self, start: int) -> list[Batch]:
        """Every batch the node still buffers from `start` on (vLLM's replay protocol)."""
        import zmq

        if self.replay_endpoint is None:
            return []
        sock = self._context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(self.replay_endpoint)
            await sock.send_multipart([b"", start.to_bytes(8, "big")])
            out: list[Batch] = []
            while True:
                frames = await asyncio.wait_for(sock.recv_multipart(), self.replay_timeout)
                if len(frames) != 4:
                    raise ValueError(f"replay: expected 4 frames, got {len(frames)}")
                _, _, seq_b, payload = frames
                seq = int.from_bytes(seq_b, "big", signed=True)
                if seq == END_SEQ:
                    return out
                out.append(decode_payload(seq, payload))
        finally:
            sock.close()

    def _accept(self, batch: Batch, on_batch: Callable[[Batch], None]) -> None:
        if self.last_seq is not None and batch.seq <= self.last_seq:
            return  # already seen (a replayed batch that also came live)
        self.last_seq = batch.seq
        self.batches += 1
        on_batch(batch)

    async def _fill(self, start: int, upto: int | None, on_batch: Callable[[Batch], None]) -> None:
        """Replay from `start`; a first batch later than `start` means the node no longer has it."""
        try:
            replayed = await self.replay(start)
        except (TimeoutError, ValueError, OSError):
            replayed = None
        if replayed is None or (replayed and replayed[0].seq > start) or (not replayed and upto is not None):
            self.lost = True
        for b in replayed or []:
            if upto is None or b.seq < upto:
                self._accept(b, on_batch)

    async def run(self, on_batch: Callable[[Batch], None], replay_from_start: bool = True) -> None:
        import zmq

        sub = self._context().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, self.topic)
        sub.connect(self.endpoint)
        try:
            if replay_from_start and self.replay_endpoint is not None:
                await self._fill(0, None, on_batch)
                self.lost = False  # an empty or trimmed buffer at start is not a gap
            self.ready.set()
            stop = asyncio.ensure_future(self._stop.wait())
            while not self._stop.is_set():
                recv = asyncio.ensure_future(sub.recv_multipart())
                done, _ = await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                if recv not in done:
                    recv.cancel()
                    break
                frames = recv.result()
                if len(frames) != 3:
                    continue
                seq = int.from_bytes(frames[1], "big")
                batch = decode_payload(seq, frames[2])
                expected = 0 if self.last_seq is None else self.last_seq + 1
                if seq > expected and (self.last_seq is not None or replay_from_start):
                    self.gaps += 1
                    await self._fill(expected, seq, on_batch)
                self._accept(batch, on_batch)
            stop.cancel()
        finally:
            sub.close()

    def close(self) -> None:
        self._stop.set()

    def term(self) -> None:
        if self._ctx is not None:
            with contextlib.suppress(Exception):
                self._ctx.term()
            self._ctx = None
