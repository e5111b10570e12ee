"""`kvtest report` renders a sample run directory: Markdown, PNGs, JUnit XML, summary, exit status."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest

from kvtest.report.cli import main, render_run
from kvtest.report.model import Check, ExperimentResult, NodeRow, load_run, write_experiment

P = [f"10.0.13.1:810{i}" for i in range(4)]
D = [f"10.0.14.1:820{i}" for i in range(4)]


def row(node, role, rate, expected, requests=40, verdict="PASS", machine="m1", tol=0.0):
    q = requests * 470 if requests else 0
    return NodeRow(node, role, requests, q, round(q * (rate or 0)), rate, expected, verdict, machine, tol)


def latencies(n, seed, base):
    rng = random.Random(seed)
    return [
        {
            "index": i,
            "ok": True,
            "ttft_s": base * rng.uniform(0.5, 1.5),
            "e2e_s": base * rng.uniform(4, 6),
            "run": run,
        }
        for run in (1, 2)
        for i in range(n)
    ]


def sample_run(tmp_path, *, fail=False):
    designate = [row(P[0], "prefill", 0.516, 0.516), row(D[0], "decode", 0.516, 0.516)]
    designate += [row(n, r, None, 0.0, requests=0) for n, r in ((P[1], "prefill"), (P[2], "prefill"))]
    rr = [row(p, "prefill", 0.514, 0.514, requests=10) for p in P]
    if fail:
        rr[2] = row(P[2], "prefill", 0.21, 0.514, requests=10, verdict="FAIL")
    same = [row(P[3], "prefill", 0.9, 0.9, 10), row(D[3], "decode", 0.9, 0.9, 10, machine="m2")]
    experiments = [
        ("1-designate", "Designate x2", designate),
        ("2-rr", "RR x2", rr),
        ("4-same-prefix", "Same prefix", same),
    ]
    for i, (name, title, nodes) in enumerate(experiments):
        lat = latencies(20, i, 0.01)
        write_experiment(
            tmp_path, ExperimentResult(name, title, nodes, metric="v0", notes=[f"note {i}"], latencies=lat)
        )
    (tmp_path / "run.json").write_text(json.dumps({"title": "kvtest demo", "cluster": "seed.yaml"}))
    return tmp_path


def test_report_writes_every_artifact_and_passes(tmp_path, capsys):
    run = sample_run(tmp_path)
    assert main([str(run)]) == 0
    for name in ("report.md", "hit_rate.png", "latency.png", "junit.xml", "summary.json"):
        assert (run / name).stat().st_size > 0
    assert (run / "hit_rate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (run / "report.md").read_text()
    assert "**PASS**: 3 of 3 experiments passed." in md
    assert "| `10.0.13.1:8100` | m1 | prefill | 40 |" in md and "51.6%" in md
    assert "![hit_rate.png](hit_rate.png)" in md and "note 1" in md
    suites = ET.parse(run / "junit.xml").getroot()
    assert (
        suites.get("tests") == "13"
    )  # 10 node rows + "requests" per experiment and suites.get("failures") == "0"
    assert json.loads((run / "summary.json").read_text())["passed"] is True
    assert "all experiments passed" in capsys.readouterr().out


def test_a_failing_node_fails_the_report_and_junit_names_it(tmp_path):
    run = sample_run(tmp_path, fail=True)
    assert main([str(run)]) == 1
    md = (run / "report.md").read_text()
    assert "**FAIL**: 2 of 3 experiments passed." in md and "`10.0.13.1:8102`" in md
    failures = ET.parse(run / "junit.xml").getroot().findall(".//failure")
    assert len(failures) == 1 and "10.0.13.1:8102" in failures[0].get("message")


def test_run_without_latencies_has_no_latency_chart(tmp_path):
    write_experiment(tmp_path, ExperimentResult("x", "X", [row(P[0], "prefill", 0.5, 0.5)]))
    out = render_run(tmp_path)
    assert out.passed and not (tmp_path / "latency.png").exists()


def test_empty_or_broken_run_dirs_are_errors(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not an experiment result"):
        load_run(tmp_path)


def test_checks_and_failed_requests_decide_the_verdict_too(tmp_path):
    dedup = Check("one copy stored", "PASS", "master holds 29 keys after two producers")
    hashseed = Check("common PYTHONHASHSEED", "FAIL", "nodes hash with different seeds: they share nothing")
    write_experiment(tmp_path, ExperimentResult("5-putget", "Put/get", [], checks=[dedup, hashseed]))
    lat = [
        {"index": 0, "ok": True, "e2e_s": 0.1},
        {"index": 1, "ok": False, "error": "HTTP 503: prefill down"},
    ]
    write_experiment(tmp_path, ExperimentResult("6-x", "X", [row(P[0], "prefill", 0.5, 0.5)], latencies=lat))
    assert main([str(tmp_path)]) == 1
    md = (tmp_path / "report.md").read_text()
    assert "| common PYTHONHASHSEED | **FAIL** | nodes hash with different seeds: they share nothing |" in md
    assert "request 1 failed: HTTP 503: prefill down" in md and "1 failed requests" in md
    failures = ET.parse(tmp_path / "junit.xml").getroot().findall(".//failure")
    assert sorted(f.get("message").split(":")[0] for f in failures) == [
        "1 of 2 requests failed",
        "common PYTHONHASHSEED",
    ]
