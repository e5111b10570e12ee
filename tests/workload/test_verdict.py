"""PASS/FAIL per node: exact on simulators, a tolerance on real clusters, untouched nodes stay untouched."""

from __future__ import annotations

from kvtest.expect import NodeExpectation
from kvtest.metrics.scrape import NodeDelta
from kvtest.report.verdict import judge

EXP = NodeExpectation(
    "n:1",
    ["prefill"],
    requests=40,
    queries=4000,
    hits=1920,
    block_queries=240,
    block_hits=120,
    v0_hit_rate=0.5,
)


def measured(**kw):
    base = {"node": "n:1", "kind": "v1", "requests": 40, "queries": 4000, "hits": 1920}
    return NodeDelta(**(base | kw))


def test_exact_match_passes_and_any_counter_off_by_one_fails():
    row = judge(measured(), EXP, role="prefill", machine="m1")
    assert row.verdict == "PASS" and row.hit_rate == row.expected == 0.48 and row.machine == "m1"
    bad = judge(measured(hits=1919), EXP, role="prefill")
    assert bad.verdict == "FAIL" and "hits 1919 != expected 1920" in bad.note
    assert judge(measured(external_hits=16), EXP, role="prefill").verdict == "FAIL"


def test_tolerance_applies_to_the_hit_rate_but_not_to_routing():
    assert judge(measured(hits=1900), EXP, role="prefill", tolerance=0.01).verdict == "PASS"
    assert judge(measured(hits=1000), EXP, role="prefill", tolerance=0.01).verdict == "FAIL"
    assert judge(measured(requests=39), EXP, role="prefill", tolerance=0.5).verdict == "FAIL"


def test_untouched_nodes_must_show_no_traffic():
    quiet = judge(measured(requests=0, queries=0, hits=0), None, role="prefill")
    assert quiet.verdict == "PASS" and quiet.note == "untouched" and quiet.expected == 0.0
    noisy = judge(measured(requests=1, queries=10, hits=0), None, role="prefill")
    assert noisy.verdict == "FAIL" and "expected no requests" in noisy.note


def test_v0_compares_the_gauge_and_scrape_errors_fail():
    v0 = NodeDelta("n:1", "v0", requests=40, v0_hit_rate=0.5)
    assert judge(v0, EXP, role="prefill", metric="v0").verdict == "PASS"
    off = NodeDelta("n:1", "v0", requests=40, v0_hit_rate=0.45)
    assert judge(off, EXP, role="prefill", metric="v0").verdict == "FAIL"
    assert judge(off, EXP, role="prefill", metric="v0", tolerance=0.1).verdict == "PASS"
    missing = NodeDelta("n:1", "v1", requests=40, queries=4000, hits=1920)
    assert "no vllm:gpu_prefix_cache_hit_rate" in judge(missing, EXP, role="prefill", metric="v0").note
    down = NodeDelta("n:1", "none", error="ConnectError scraping http://n:1/metrics")
    assert judge(down, EXP, role="prefill").verdict == "FAIL"
