"""The conformance kit under pytest: one item per (router, flow), the same options as the CLI.

    pytest tests/conformance                                   # kvtest's proxy, every flow, every group
    pytest tests/conformance --proxy-cmd '...' --flow nixl     # another router: pd and errors

One item per flow rather than per check: the kit starts the nodes and the router once per flow, and
`make test` spreads items over xdist workers. Each item's result table is printed at the end of the
run (it travels back from the workers as a user property).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvtest.conformance import ConformanceRun, run_conformance
from kvtest.conformance.report import table, write

TABLE = "conformance table"


def run_and_record(request: pytest.FixtureRequest, flow: str, groups: list[str], cmd: str | None,
                   router: str | None = None, tmp: Path | None = None) -> ConformanceRun:  # fmt: skip
    run = asyncio.run(run_conformance(flow, groups, cmd, router=router, workdir=tmp))
    request.node.user_properties.append((TABLE, table(run)))
    if tmp is not None:
        write(run, tmp)
    return run


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            for name, value in getattr(report, "user_properties", []):
                if name == TABLE and report.when == "call":
                    terminalreporter.write_sep("-", f"{report.nodeid} ({status})")
                    terminalreporter.write_line(str(value))
