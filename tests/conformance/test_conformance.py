"""Every check of the selected groups, for every flow, as its own test item (see conftest.py)."""

from __future__ import annotations

import pytest

from kvtest.conformance.check import checks_in
from kvtest.conformance.cli import groups_for
from kvtest.conformance.flows import FLOWS

from .conftest import conformance_run


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check_id" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    flow = cfg.getoption("--flow")
    groups = groups_for(cfg.getoption("--groups"), cfg.getoption("--proxy-cmd"))
    # by default the flows the fake nodes can serve; --flow sglang reports its checks as n/a (skipped)
    flows = [flow] if flow else [f for f, spec in FLOWS.items() if spec.connector]
    params = [(f, c.id) for f in flows for c in checks_in(groups)]
    metafunc.parametrize(("flow", "check_id"), params, ids=[f"{f}-{c}" for f, c in params])


def test_check(request: pytest.FixtureRequest, flow: str, check_id: str) -> None:
    cfg = request.config
    run = conformance_run(cfg, flow, groups_for(cfg.getoption("--groups"), cfg.getoption("--proxy-cmd")))
    result = next(r for r in run.results if r.id == check_id)
    if result.verdict == "n/a":
        pytest.skip(result.detail)
    assert result.verdict == "pass", f"{result.proves}: {result.detail}\nreproduce: {run.command}"
