"""A node's verdict: what /metrics moved by (kvtest.metrics) against what it must have (kvtest.expect).

    row = judge(delta_row, expected_row, role="prefill", machine="m1", metric="v1", tolerance=0.0)

tolerance 0 (a simulator cluster): every counter must be equal — requests, queries, hits and, when a KV
connector is in play, external queries and hits; the V0 gauge to floating-point rounding.
tolerance > 0 (a real cluster; its cluster file sets it): the hit rate must be within the tolerance and the
request count exact (routing is not approximate).
A node the workload never routed to must show no requests and no queries at all ("untouched").
"""

from __future__ import annotations

from typing import Literal

from kvtest.expect import NodeExpectation
from kvtest.metrics.scrape import NodeDelta
from kvtest.report.model import NodeRow

V0_ROUNDING = 1e-9


def judge(
    measured: NodeDelta,
    expected: NodeExpectation | None,
    *,
    role: str,
    machine: str = "",
    metric: Literal["v1", "v0"] = "v1",
    tolerance: float = 0.0,
) -> NodeRow:
    exp_rate = None if expected is None else (expected.v0_hit_rate if metric == "v0" else expected.hit_rate)
    rate = measured.v0_hit_rate if metric == "v0" else measured.hit_rate
    problems: list[str] = []
    if measured.error:
        problems.append(measured.error)
    elif expected is None or expected.requests == 0:
        exp_rate = 0.0
        if measured.requests or measured.queries:
            problems.append(
                f"expected no requests, saw {measured.requests} ({measured.queries} tokens queried)"
            )
    else:
        if measured.requests != expected.requests:
            problems.append(f"requests {measured.requests} != expected {expected.requests}")
        if metric == "v0":
            if rate is None:
                problems.append("node exports no vllm:gpu_prefix_cache_hit_rate")
            elif abs(rate - expected.v0_hit_rate) > max(tolerance, V0_ROUNDING):
                problems.append(f"V0 hit rate {rate:.4f} != expected {expected.v0_hit_rate:.4f}")
        elif tolerance == 0:
            for name in ("queries", "hits", "external_queries", "external_hits"):
                got, want = getattr(measured, name), getattr(expected, name)
                if got != want:
                    problems.append(f"{name} {got} != expected {want}")
        elif rate is None or abs(rate - expected.hit_rate) > tolerance:
            problems.append(f"hit rate {rate} outside {expected.hit_rate:.4f} ± {tolerance}")
    detail = {"measured": measured.to_dict(), "expected": expected.to_dict() if expected else None}
    return NodeRow(
        node=measured.node,
        role=role,
        requests=measured.requests,
        queries=measured.queries,
        hits=measured.hits,
        hit_rate=rate,
        expected=exp_rate,
        verdict="FAIL" if problems else "PASS",
        machine=machine,
        tolerance=tolerance,
        note="; ".join(problems) if problems else ("untouched" if not measured.requests else ""),
        detail=detail,
    )
