"""Run experiments on a running cluster, print their tables, write the run directory, render the report.

outcome = await run_experiments(session, ["designate", "rr"])
print(format_result(outcome.results[0]))
write_run(run_dir, {"title": ...}, outcome)        # the layout kvtest/report/__init__.py documents
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvtest.experiments.prefix import EXPERIMENTS, run_prefix
from kvtest.experiments.putget import NAME as PUTGET
from kvtest.experiments.putget import TITLE as PUTGET_TITLE
from kvtest.experiments.putget import NotAvailable, run_putget
from kvtest.experiments.session import ExperimentSession
from kvtest.report import table
from kvtest.report.model import ExperimentResult, write_experiment

ORDER: tuple[str, ...] = (*EXPERIMENTS, PUTGET)
TITLES = {**{k: v.title for k, v in EXPERIMENTS.items()}, PUTGET: PUTGET_TITLE}


@dataclass
class Outcome:
    results: list[ExperimentResult] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # name -> why, in plain words

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


async def run_experiment(session: ExperimentSession, name: str) -> ExperimentResult:
    """One experiment by name; NotAvailable when the cluster cannot run it."""
    if name == PUTGET:
        res = await run_putget(session)
    elif name in EXPERIMENTS:
        res = await run_prefix(EXPERIMENTS[name], session)
    else:
        raise KeyError(f"no experiment {name!r}; known: {', '.join(ORDER)}")
    # the report lists experiments by file name: number them in the seed's order
    res.name = f"{ORDER.index(name) + 1}_{name}"
    return res


async def run_experiments(session: ExperimentSession, names: Sequence[str] = ORDER) -> Outcome:
    out = Outcome()
    for name in names:
        try:
            out.results.append(await run_experiment(session, name))
        except NotAvailable as exc:
            out.unavailable[name] = str(exc)
    return out


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def format_result(res: ExperimentResult) -> str:
    """The per-node table and the checks, as a terminal shows them."""
    head = (
        "node",
        "machine",
        "role",
        "requests",
        "queries",
        "hits",
        "hit rate",
        "expected",
        "verdict",
        "note",
    )
    rows = [
        (
            r.node,
            r.machine,
            r.role,
            r.requests,
            r.queries,
            r.hits,
            _pct(r.hit_rate),
            _pct(r.expected) + (f" ±{r.tolerance:.1%}" if r.tolerance else ""),
            r.verdict,
            r.note,
        )
        for r in res.nodes
    ]
    lines = [
        f"== {res.title}: {'PASS' if res.passed else 'FAIL'} ({res.metric} metrics)",
        table.render(head, rows),
    ]
    for c in res.checks:
        lines.append(f"  {c.verdict}  {c.name}: {c.detail}")
    failed = res.failed_requests
    if failed:
        lines.append(f"  FAIL  {len(failed)} requests failed, first: {failed[0].get('error')}")
    lines += [f"  note: {n}" for n in res.notes]
    return "\n".join(lines)


def format_unavailable(name: str, why: str) -> str:
    return f"== {TITLES.get(name, name)}: not available: {why}"


def write_run(run_dir: str | Path, meta: dict[str, Any], outcome: Outcome) -> Path:
    root = Path(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    for name, why in outcome.unavailable.items():
        meta[f"{TITLES.get(name, name)}"] = f"not available: {why}"
    (root / "run.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    for res in outcome.results:
        write_experiment(root, res)
    return root
