"""What ci/soak.sh prints: one line per run, and the table of every test that failed at least once.

    python ci/soak_report.py line runs/soak-X/run-03.xml 3 20 182     # run 3/20: 441 passed, ... in 182s
    python ci/soak_report.py table runs/soak-X 20                     # nodeid, failures/N; exit 1 if any

Reads the JUnit XML pytest wrote per run (--junitxml); a run with no XML (pytest killed) counts as
failed with nothing known about its tests.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # nodeids (a failure or an error)
    skipped: int = 0
    found: bool = True
    exit_code: int | None = None  # pytest's, from run-NN.rc (absent while the run is going or interrupted)

    @property
    def green(self) -> bool:
        return self.found and not self.failed and self.exit_code == 0


def nodeid(classname: str, name: str) -> str:
    """pytest's node id back from JUnit's classname ("tests.proxy.test_x.TestY") and name: the
    longest dotted prefix that is a file of this repository is the module, the rest are classes."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        path = "/".join(parts[:cut]) + ".py"
        if (ROOT / path).exists():
            return "::".join([path, *parts[cut:], name])
    return f"{classname}::{name}"


def read_run(xml: Path) -> Run:
    rc = xml.with_suffix(".rc")
    exit_code = int(rc.read_text()) if rc.exists() else None
    if not xml.exists() or xml.stat().st_size == 0:
        return Run(found=False, exit_code=exit_code)
    run = Run(exit_code=exit_code)
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = {child.tag for child in case}
        nid = nodeid(case.get("classname", ""), case.get("name", ""))
        if outcome & {"failure", "error"}:
            if nid not in run.failed:  # a test that fails and then errors in teardown counts once
                run.failed.append(nid)
        elif "skipped" in outcome:
            run.skipped += 1
        else:
            run.passed += 1
    return run


def line(xml: Path, index: int, total: int, seconds: int) -> str:
    run = read_run(xml)
    if not run.found:
        return f"run {index}/{total}: no JUnit XML (pytest did not finish) after {seconds}s"
    verdict = "ok  " if run.green else "FAIL"
    exit_note = "" if run.exit_code in (0, 1) else f" (pytest exit {run.exit_code})"
    return (
        f"run {index}/{total}: {verdict} {run.passed} passed, {len(run.failed)} failed, "
        f"{run.skipped} skipped in {seconds}s{exit_note}"
    )


def table(run_dir: Path, total: int) -> tuple[str, int]:
    """The failures table and how many runs had any failure (or no XML)."""
    # every run has its log from the start; its XML only if pytest got as far as writing it
    logs = sorted(run_dir.glob("run-*.log"))
    runs = [read_run(log.with_suffix(".xml")) for log in logs]
    failures = Counter(nid for r in runs for nid in r.failed)
    bad_runs = sum(1 for r in runs if not r.green)
    done = len(runs)
    head = f"soak: {done - bad_runs}/{done} runs green ({total} asked), JUnit XML in {run_dir}"
    unexplained = [
        f"{log.name} (exit {r.exit_code}{'' if r.found else ', no JUnit XML'})"
        for log, r in zip(logs, runs, strict=True)
        if not r.green and not r.failed
    ]
    if unexplained:
        head += "\nnot green without a failed test (interrupted, crashed; read the log): "
        head += ", ".join(unexplained)
    if not failures:
        return head + "\nno test failed in any run", bad_runs
    width = max(len(n) for n in failures)
    rows = [f"{'test':<{width}}  failures/{done}"]
    rows += [f"{nid:<{width}}  {count}/{done}" for nid, count in failures.most_common()]
    return head + "\n" + "\n".join(rows), bad_runs


def main(argv: list[str]) -> int:
    if len(argv) >= 5 and argv[0] == "line":
        print(line(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4])))
        return 0
    if len(argv) >= 3 and argv[0] == "table":
        text, bad = table(Path(argv[1]), int(argv[2]))
        print(text)
        return 1 if bad else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
