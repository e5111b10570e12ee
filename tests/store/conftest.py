from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.gating import skip_unless
from kvtest.process import tail

from .harness import StoreCluster, real_available


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed  # type: ignore[attr-defined]
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(params=["mock", pytest.param("real", marks=pytest.mark.real)])
def impl(request: pytest.FixtureRequest) -> str:
    if request.param == "real":
        ok, reason = real_available()
        skip_unless("real", ok, reason)
    return str(request.param)


@pytest.fixture
def cluster(impl: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreCluster]:
    c = StoreCluster(impl, tmp_path)
    try:
        yield c
    finally:
        c.close()
        if request.node.stash.get(_FAILED, False):
            # the logs of what the test started, so a failure can be read without re-running it
            for log in sorted(tmp_path.glob("*.log")):
                print(f"--- {log.name} (last lines) ---\n{tail(log, 30)}")
