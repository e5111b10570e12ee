"""kvtest's own proxy (or --proxy-cmd) through every check of the selected groups, per flow."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvtest.conformance.cli import groups_for
from kvtest.conformance.flows import FLOWS

from .conftest import run_and_record


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "flow" in metafunc.fixturenames:
        flow = metafunc.config.getoption("--flow")
        # by default the flows the fake nodes serve; --flow sglang reports its checks as n/a
        metafunc.parametrize("flow", [flow] if flow else [f for f, s in FLOWS.items() if s.connector])


def test_router_passes_every_check(request: pytest.FixtureRequest, flow: str, tmp_path: Path) -> None:
    cfg = request.config
    cmd = cfg.getoption("--proxy-cmd")
    run = run_and_record(request, flow, groups_for(cfg.getoption("--groups"), cmd), cmd, tmp=tmp_path)
    assert run.results, "no check ran"
    failed = "\n".join(f"{r.id}: {r.detail}" for r in run.failed)
    assert not run.failed, f"{len(run.failed)} check(s) failed for {run.command}:\n{failed}"
