"""Cluster files for launcher tests: real etcd and the real mooncake_master from .venv (fast to
start), and tests/cluster/stub_serve.py standing in for `vllm serve` (answers /health)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from kvtest.gating import skip_unless

ROOT = Path(__file__).resolve().parents[2]
STUB = Path(__file__).with_name("stub_serve.py")
VENV_MASTER = ROOT / ".venv" / "bin" / "mooncake_master"


def cluster_dict(*node_args: list[str], name: str = "t", **over: Any) -> dict[str, Any]:
    """etcd + real master + one stub node per args list (role alternates prefill/decode)."""
    data: dict[str, Any] = {
        "name": name,
        "hosts": [
            {
                "name": "h",
                "vllm": f"{sys.executable} {STUB}",
                "mooncake_master": str(VENV_MASTER),
                "etcd": "etcd",
            }
        ],
        "etcd": {"host": "h"},
        "mooncake_master": {"impl": "real", "host": "h"},
        "mooncake": {"metadata": "etcd"},
        "nodes": [
            {
                "name": f"n{i}",
                "host": "h",
                "role": "prefill" if i % 2 == 0 else "decode",
                "model": "stub-model",
                "args": args,
                "ready_timeout_s": 15,
            }
            for i, args in enumerate(node_args)
        ],
    }
    data.update(over)
    return data


@pytest.fixture
def real_store_tools() -> None:
    skip_unless(
        "real", shutil.which("etcd") is not None, "etcd not installed (Debian etcd-server: make install)"
    )
    skip_unless("real", VENV_MASTER.exists(), f"{VENV_MASTER} missing (mooncake-transfer-engine-non-cuda)")


@pytest.fixture
def stub_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "pids"
    d.mkdir()
    monkeypatch.setenv("STUB_PID_DIR", str(d))
    return d


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes (its parent has not reaped it yet)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False
