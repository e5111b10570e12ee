"""junit.xml: one testsuite per experiment, one testcase per node row; FAIL rows are failures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from kvtest.report.model import ExperimentResult


def render(results: Sequence[ExperimentResult]) -> str:
    root = ET.Element("testsuites", name="kvtest")
    total = failures = 0
    for res in results:
        suite = ET.SubElement(root, "testsuite", name=res.name)
        fails = 0
        for row in res.nodes:
            case = ET.SubElement(suite, "testcase", classname=f"kvtest.experiments.{res.name}", name=row.node)
            if row.verdict != "PASS":
                fails += 1
                measured = "none" if row.hit_rate is None else f"{row.hit_rate:.4f}"
                expected = "none" if row.expected is None else f"{row.expected:.4f}"
                msg = f"{row.role} {row.node}: hit rate {measured}, expected {expected} ± {row.tolerance:.4f}"
                failure = ET.SubElement(case, "failure", message=msg)
                failure.text = (
                    f"{msg}\nrequests={row.requests} queries={row.queries} hits={row.hits} {row.note}"
                )
        cases = len(res.nodes)
        for check in res.checks:
            cases += 1
            case = ET.SubElement(
                suite, "testcase", classname=f"kvtest.experiments.{res.name}", name=check.name
            )
            if check.verdict != "PASS":
                fails += 1
                ET.SubElement(case, "failure", message=f"{check.name}: {check.detail}").text = check.detail
        cases += 1  # every request answered
        case = ET.SubElement(suite, "testcase", classname=f"kvtest.experiments.{res.name}", name="requests")
        if res.failed_requests:
            fails += 1
            lines = [f"request {x.get('index')}: {x.get('error')}" for x in res.failed_requests]
            msg = f"{len(res.failed_requests)} of {len(res.latencies)} requests failed"
            ET.SubElement(case, "failure", message=msg).text = "\n".join(lines)
        suite.set("tests", str(cases))
        suite.set("failures", str(fails))
        total += cases
        failures += fails
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(results: Sequence[ExperimentResult], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(render(results), encoding="utf-8")
    return p
