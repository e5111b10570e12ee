"""A conformance run as a table (for people), JUnit XML (for CI) and JSON (for tools and bench)."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kvtest.conformance.router import kvtest_proxy_cmd
from kvtest.conformance.runner import ConformanceRun


def reproduce(run: ConformanceRun) -> str:
    cmd = f"kvtest conformance --flow {run.flow} --groups {','.join(run.groups)}"
    own = run.template == kvtest_proxy_cmd(run.flow)
    return cmd if own else f"{cmd} --proxy-cmd {shlex.quote(run.template)}"


def table(run: ConformanceRun) -> str:
    rows = [(r.id, r.verdict.upper(), f"{r.seconds:.1f}s", r.detail.splitlines()[0][:110] if r.detail else "")
            for r in run.results]  # fmt: skip
    w = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(("check", "verdict", "time"))]
    lines = [f"router {run.router}, flow {run.flow}, model {run.model or '-'}", f"  {run.command}", ""]
    lines.append(f"{'check':<{w[0]}}  {'verdict':<{w[1]}}  {'time':>{w[2]}}  detail")
    lines += [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows]
    summary = ", ".join(f"{g} {p}/{t}" for g, (p, t) in run.by_group().items())
    lines += ["", f"{summary}; KV moved: {run.kv_moved}", f"reproduce: {reproduce(run)}"]
    return "\n".join(lines)


def junit(run: ConformanceRun) -> str:
    suite = ET.Element("testsuite", name=f"conformance.{run.router}.{run.flow}", tests=str(len(run.results)),
                       failures=str(len(run.failed)),
                       skipped=str(sum(r.verdict == "n/a" for r in run.results)))  # fmt: skip
    for r in run.results:
        case = ET.SubElement(suite, "testcase", classname=f"{run.router}.{run.flow}.{r.group}", name=r.name,
                             time=f"{r.seconds:.3f}")  # fmt: skip
        if r.verdict == "fail":
            ET.SubElement(case, "failure", message=r.detail[:200]).text = r.detail
        elif r.verdict == "n/a":
            ET.SubElement(case, "skipped", message=r.detail[:200])
        else:
            ET.SubElement(case, "system-out").text = f"{r.proves}: {r.detail}"
    return ET.tostring(ET.Element("testsuites", {}), encoding="unicode").replace(
        "<testsuites />", "<testsuites>" + ET.tostring(suite, encoding="unicode") + "</testsuites>"
    )


def as_json(run: ConformanceRun) -> dict[str, Any]:
    out = asdict(run)
    out["summary"] = {g: {"passed": p, "total": t} for g, (p, t) in run.by_group().items()}
    out["kv_moved"] = run.kv_moved
    out["reproduce"] = reproduce(run)
    return out


def write(run: ConformanceRun, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"conformance-{run.router.replace('/', '_')}-{run.flow}"
    paths = {"junit": out_dir / f"{stem}.junit.xml", "json": out_dir / f"{stem}.json"}
    paths["junit"].write_text(junit(run))
    paths["json"].write_text(json.dumps(as_json(run), indent=2))
    return paths
