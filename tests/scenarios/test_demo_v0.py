"""The seed as it really ran (VLLM_USE_V1=0): V0 gauges and the V0 store connector. The gauge is a
block hit rate since the node started, so the seed's "90%" for ten identical requests is judged on
the experiment's own blocks, after the node has served the earlier experiments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvtest.experiments.cli import demo_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_on_v0_nodes_shows_the_seeds_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    rc = demo_main(["--cluster", str(ROOT / "fixtures/clusters/seed-v0.yaml"), "--out", str(run)])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads((run / "summary.json").read_text())
    by_name = {e["name"]: e for e in summary["experiments"]}
    assert all(e["metric"] == "v0" for e in by_name.values())
    checks = {c["name"]: c for c in by_name["4_same_prefix"]["checks"]}
    ninety = next(c for name, c in checks.items() if "about 90%" in name)
    assert ninety["verdict"] == "PASS", ninety
    # nodes experiment 4 never reached show "-", not the gauge earlier experiments left behind
    same_prefix = by_name["4_same_prefix"]
    untouched = [n for n in same_prefix["nodes"] if not n["requests"] and n["role"] == "prefill"]
    assert untouched and all(n["hit_rate"] is None and n["expected"] is None for n in untouched), untouched
    table = out.split("== 4. Same prefix")[1].split("==")[0]
    assert all(f"{n['node']} " in table for n in untouched)
    dedup = {c["name"]: c for c in by_name["5_putget"]["checks"]}
    assert any("object_already_exists" in n and c["verdict"] == "PASS" for n, c in dedup.items()), dedup
