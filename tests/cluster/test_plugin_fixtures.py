"""The pytest plugin's fixtures on the default cluster (sim.yaml), and its gated skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kvtest.cluster.cluster import Cluster, MetricsScraper

ROOT = Path(__file__).resolve().parents[2]


def test_fixtures_describe_one_running_cluster(
    cluster: Cluster, proxy_url: str, nodes: list, metrics: MetricsScraper, store: object
) -> None:
    assert cluster.name == "sim"  # no --cluster: the simulator cluster
    assert proxy_url == cluster.proxy_url
    assert [(n.name, n.role, n.machine) for n in nodes] == [
        ("p0", "prefill", "local"),
        ("d0", "decode", "local"),
        ("p1", "prefill", "local"),
        ("d1", "decode", "local"),
    ]
    assert "vllm:prompt_tokens_total" in metrics.counters("p0")
    assert store.put("plugin-probe", b"v") == 0  # type: ignore[attr-defined]
    assert store.get("plugin-probe") == b"v"  # type: ignore[attr-defined]
    assert "plugin-probe" in cluster.master_keys()


GATED = """
import pytest

@pytest.mark.gpu
def test_needs_gpu():
    pass

@pytest.mark.rdma
def test_needs_rdma():
    pass
"""


def run_pytest(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_gated.py").write_text(GATED)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
         *args, str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        env={**os.environ, "KVTEST_REQUIRE": "", **(env or {})},
    )  # fmt: skip


def test_gated_tests_skip_with_the_exact_reason(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--rootdir", str(ROOT))
    assert done.returncode == 0, done.stdout
    assert (
        "[gpu] no GPU cluster file (--cluster sim has no node with gpus): run pytest -m gpu --cluster FILE"
        in done.stdout
    )
    assert "[rdma] no RDMA cluster file (mooncake.protocol is not rdma)" in done.stdout


def test_kvtest_require_turns_the_skip_into_a_failure(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "--rootdir", str(ROOT), env={"KVTEST_REQUIRE": "gpu"})
    assert done.returncode == 1
    assert "[gpu required by KVTEST_REQUIRE] no GPU cluster file" in done.stdout
    assert "1 skipped, 1 error" in done.stdout  # failed in setup, where the marker is checked


def test_gpu_cluster_file_without_a_gpu_here(tmp_path: Path) -> None:
    done = run_pytest(
        tmp_path, "--rootdir", str(ROOT), "--cluster", str(ROOT / "fixtures/clusters/gpu-1node.yaml")
    )
    assert "cluster 'gpu-1node' needs 1 GPU(s) on this host; nvidia-smi -L lists 0" in done.stdout
