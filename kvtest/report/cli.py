"""`kvtest report RUN_DIR`: render report.md, hit_rate.png, latency.png, junit.xml and summary.json."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kvtest.report import charts, junit, markdown
from kvtest.report.model import load_run


@dataclass
class Rendered:
    report: Path
    files: list[Path]
    passed: bool


def render_run(run_dir: str | Path) -> Rendered:
    root = Path(run_dir)
    meta, results = load_run(root)
    drawn = [
        charts.hit_rate_chart(results, root / "hit_rate.png"),
        charts.latency_chart(results, root / "latency.png"),
    ]
    files = [f for f in drawn if f is not None]
    report = root / "report.md"
    report.write_text(markdown.render(meta, results, charts=[f.name for f in files]), encoding="utf-8")
    files.append(report)
    files.append(junit.write(results, root / "junit.xml"))
    summary = {
        "passed": all(r.passed for r in results),
        "meta": meta,
        "experiments": [r.to_dict() for r in results],
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    files.append(root / "summary.json")
    return Rendered(report=report, files=files, passed=summary["passed"])  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kvtest report", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    try:
        out = render_run(args.run_dir)
    except (FileNotFoundError, ValueError) as exc:
        print(f"kvtest report: {exc}", file=sys.stderr)
        return 2
    for f in out.files:
        print(f"wrote {f}")
    print("all experiments passed" if out.passed else "some experiments FAILED (see report.md)")
    return 0 if out.passed else 1
