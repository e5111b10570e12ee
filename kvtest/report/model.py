"""The records a run directory holds (see kvtest/report/__init__.py for the layout)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["PASS", "FAIL"]


@dataclass
class NodeRow:
    node: str
    role: str
    requests: int
    queries: int
    hits: int
    hit_rate: float | None
    expected: float | None
    verdict: Verdict
    machine: str = ""
    tolerance: float = 0.0
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NodeRow:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class Check:
    """A verdict that is not a node's hit rate: the master's key count, a dedup, a plain-words warning."""

    name: str
    verdict: Verdict
    detail: str = ""


@dataclass
class ExperimentResult:
    name: str
    title: str
    nodes: list[NodeRow]
    description: str = ""
    metric: str = "v1"
    notes: list[str] = field(default_factory=list)
    latencies: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def failed_requests(self) -> list[dict[str, Any]]:
        return [x for x in self.latencies if not x.get("ok")]

    @property
    def passed(self) -> bool:
        """Every node row and check PASS, and no request failed (a failed request is never a pass)."""
        return (
            all(r.verdict == "PASS" for r in self.nodes)
            and all(c.verdict == "PASS" for c in self.checks)
            and not self.failed_requests
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentResult:
        return cls(
            name=d["name"],
            title=d.get("title", d["name"]),
            nodes=[NodeRow.from_dict(n) for n in d.get("nodes", [])],
            description=d.get("description", ""),
            metric=d.get("metric", "v1"),
            notes=list(d.get("notes", [])),
            latencies=list(d.get("latencies", [])),
            checks=[Check(**c) for c in d.get("checks", [])],
        )


def write_experiment(run_dir: str | Path, result: ExperimentResult) -> Path:
    path = Path(run_dir) / "experiments" / f"{result.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return path


def load_run(run_dir: str | Path) -> tuple[dict[str, Any], list[ExperimentResult]]:
    """(run.json or {}, experiments sorted by file name). Raises FileNotFoundError if there are none."""
    root = Path(run_dir)
    meta_path = root / "run.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    files = sorted((root / "experiments").glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no experiments/*.json under {root}")
    results = []
    for f in files:
        try:
            results.append(ExperimentResult.from_dict(json.loads(f.read_text(encoding="utf-8"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{f}: not an experiment result ({exc})") from None
    return meta, results
