"""report.md: what ran, what each node showed against what it should have, and why it matters."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from kvtest.report.model import ExperimentResult, NodeRow

NODE_HEAD = "| node | machine | role | requests | queries | hits | hit rate | expected | verdict | note |"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _expected(r: NodeRow) -> str:
    if r.expected is None:
        return "-"
    return _pct(r.expected) + (f" ± {r.tolerance:.1%}" if r.tolerance else "")


def _latency_line(res: ExperimentResult) -> str:
    ok = [x for x in res.latencies if x.get("ok")]
    if not res.latencies:
        return ""
    ttft = [x["ttft_s"] * 1e3 for x in ok if x.get("ttft_s") is not None]
    e2e = [x["e2e_s"] * 1e3 for x in ok if x.get("e2e_s") is not None]
    parts = [f"{len(ok)}/{len(res.latencies)} requests succeeded"]
    if ttft:
        parts.append(f"TTFT median {statistics.median(ttft):.1f} ms")
    if e2e:
        parts.append(f"end-to-end median {statistics.median(e2e):.1f} ms")
    return "; ".join(parts) + "."


def render(meta: Mapping[str, Any], results: Sequence[ExperimentResult], *, charts: Sequence[str]) -> str:
    passed = sum(r.passed for r in results)
    out = [f"# {meta.get('title', 'kvtest run')}", ""]
    info = [f"{k}: `{v}`" for k, v in meta.items() if k != "title"]
    if info:
        out += ["; ".join(info), ""]
    verdict = "PASS" if passed == len(results) else "FAIL"
    out += [f"**{verdict}**: {passed} of {len(results)} experiments passed.", ""]
    out += ["| experiment | verdict | nodes with requests | what failed |", "|---|---|---|---|"]
    for r in results:
        busy = sum(1 for n in r.nodes if n.requests)
        failing = [f"`{n.node}`" for n in r.nodes if n.verdict != "PASS"]
        failing += [c.name for c in r.checks if c.verdict != "PASS"]
        if r.failed_requests:
            failing.append(f"{len(r.failed_requests)} failed requests")
        out.append(
            f"| {r.title} | {'PASS' if r.passed else '**FAIL**'} | {busy} | {', '.join(failing) or '-'} |"
        )
    out.append("")
    for c in charts:
        out += [f"![{c}]({c})", ""]
    for r in results:
        out += [f"## {r.title} ({'PASS' if r.passed else 'FAIL'})", ""]
        if r.description:
            out += [r.description, ""]
        if r.nodes:
            metric = (
                "V0 `vllm:gpu_prefix_cache_hit_rate` (block hit rate since start)"
                if r.metric == "v0"
                else ("V1 `prefix_cache_hits / prefix_cache_queries` (tokens, this run)")
            )
            out += [f"Hit rate is {metric}.", ""]
            out += [NODE_HEAD, "|---|---|---|---:|---:|---:|---:|---:|---|---|"]
            for n in r.nodes:
                verdict = n.verdict if n.verdict == "PASS" else "**FAIL**"
                out.append(
                    f"| `{n.node}` | {n.machine or '-'} | {n.role} | {n.requests} | {n.queries} | {n.hits} | "
                    f"{_pct(n.hit_rate)} | {_expected(n)} | {verdict} | {n.note} |"
                )
            out.append("")
        if r.checks:
            out += ["| check | verdict | detail |", "|---|---|---|"]
            out += [
                f"| {c.name} | {c.verdict if c.verdict == 'PASS' else '**FAIL**'} | {c.detail} |"
                for c in r.checks
            ]
            out.append("")
        for x in r.failed_requests[:10]:
            out.append(f"- request {x.get('index')} failed: {x.get('error')}")
        if r.failed_requests:
            out.append("")
        lat = _latency_line(r)
        if lat:
            out += [lat, ""]
        out += [f"- {note}" for note in r.notes]
        if r.notes:
            out.append("")
    return "\n".join(out)
