"""`kvtest replay` as a user runs it: tables, summary.json and a PNG; bad input is a message, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvtest.cli import main

TRACE = Path(__file__).parents[2] / "fixtures" / "traces" / "mooncake_synthetic_trace.jsonl"


def test_sweep_writes_summary_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["replay", str(TRACE), "--limit", "20", "--nodes", "2", "--strategy", "round_robin",
               "--strategy", "prefix", "--cache-tokens", "40000", "--cache-tokens", "80000",
               "--store-tokens", "100000", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "prefix" in text and "shared store 100000" in text
    runs = json.loads((out / "summary.json").read_text())
    assert len(runs) == 8  # 2 strategies x 2 cache sizes x (local, + store)
    for run in runs:
        t = run["total"]
        assert t["prompt_tokens"] == t["local_hit_tokens"] + t["external_hit_tokens"] + t["computed_tokens"]
    assert (out / "hit_rate.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bad_trace_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1]}\n')
    assert main(["replay", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "needs 2 hash_ids" in err


def test_a_missing_trace_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "no such trace file" in capsys.readouterr().err


def test_an_unknown_strategy_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(TRACE), "--strategy", "bogus", "--out", str(tmp_path / "o")]) == 2
    assert "unknown strategy 'bogus'" in capsys.readouterr().err
