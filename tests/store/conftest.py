from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.gating import skip_unless

from .harness import StoreCluster, real_available


@pytest.fixture(params=["mock", pytest.param("real", marks=pytest.mark.real)])
def impl(request: pytest.FixtureRequest) -> str:
    if request.param == "real":
        ok, reason = real_available()
        skip_unless("real", ok, reason)
    return str(request.param)


@pytest.fixture
def cluster(impl: str, tmp_path: Path) -> Iterator[StoreCluster]:
    c = StoreCluster(impl, tmp_path)
    try:
        yield c
    finally:
        c.close()
