"""The conformance kit as pytest items: one per (flow, check), one router run per flow.

pytest tests/conformance                                   # kvtest's proxy, every flow, every group
pytest tests/conformance --proxy-cmd '...' --flow nixl     # another router: pd and errors
"""

from __future__ import annotations

import asyncio

import pytest

from kvtest.conformance import ConformanceRun, run_conformance
from kvtest.conformance.report import table

RUNS: dict[tuple[str | None, str], ConformanceRun] = {}


def conformance_run(config: pytest.Config, flow: str, groups: list[str]) -> ConformanceRun:
    """Run the kit once per (router, flow) and keep the result for every item of that flow."""
    cmd = config.getoption("--proxy-cmd")
    key = (cmd, flow)
    if key not in RUNS:
        RUNS[key] = asyncio.run(run_conformance(flow, groups, cmd))
    return RUNS[key]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for run in RUNS.values():
        terminalreporter.write_sep("-", f"conformance: {run.router} / {run.flow}")
        terminalreporter.write_line(table(run))
