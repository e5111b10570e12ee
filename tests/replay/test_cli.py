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


CLUSTER = Path(__file__).parents[2] / "fixtures" / "clusters" / "sim.yaml"


def test_a_cluster_file_sets_the_nodes_so_nodes_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["replay", str(TRACE), "--cluster", str(CLUSTER), "--nodes", "8", "--out", str(tmp_path)]) == 2
    )
    assert "--nodes cannot be combined with --cluster" in capsys.readouterr().err


def test_prefill_nodes_that_differ_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The replay runs one engine configuration; a second prefill node with another pool is an error,
    not a silent copy of the first node's."""
    text = CLUSTER.read_text().replace(
        "  - {name: p1, role: prefill}", "  - {name: p1, role: prefill, args: [--block-size, '16']}"
    )
    assert "p1, role: prefill, args" in text
    cluster = tmp_path / "mixed.yaml"
    cluster.write_text(
        text.replace("fixtures/models/tiny-llama", str(CLUSTER.parents[1] / "models" / "tiny-llama"))
    )
    assert (
        main(["replay", str(TRACE), "--cluster", str(cluster), "--limit", "5", "--out", str(tmp_path)]) == 2
    )
    assert "prefill nodes p0 and p1 have different models or vllm serve arguments" in capsys.readouterr().err


def test_kv_aware_is_a_replay_strategy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["replay", str(TRACE), "--limit", "30", "--nodes", "3", "--strategy", "kv_aware",
               "--strategy", "round_robin", "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 0
    runs = json.loads((tmp_path / "summary.json").read_text())
    assert [r["strategy"] for r in runs] == ["kv_aware", "round_robin"]
