"""The paper's question, asked of the replay: how much prefill does a cache of C tokens save on this trace?

Mooncake (FAST'25, section 4, Fig. 9 and 10) replays its traces through a cache of C tokens (3M, 10M, 50M,
unbounded) and reports the cache hit ratio: far below the maximum with 3M tokens, close to it with 50M;
and a global cache (one pool every node reads) gains over per-node local caches. Here, per trace and C:
- `global`: one engine whose prefix cache holds C tokens sees the whole trace;
- `local xN <strategy>`: N engines of C/N tokens each, requests routed by the strategy;
- `local xN <strategy> + store`: the same, plus a shared Mooncake store of C tokens.
Block size 512 by default: the trace's own block, so a hit is a Mooncake block and the n-1 cap costs at
most the last (partial) block; `--block-size` changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from kvtest.replay.simulation import Progress, ReplayConfig, replay
from kvtest.replay.trace import TraceRequest

PAPER_CACHE_TOKENS: tuple[int | None, ...] = (3_000_000, 10_000_000, 50_000_000, None)  # None: unbounded


def _label(c: int | None) -> str:
    return "unbounded" if c is None else f"{c / 1e6:g}M"


def unbounded_tokens(trace: Sequence[TraceRequest], block_size: int) -> int:
    """A pool that never evicts: every token of the trace, plus the null block."""
    total = sum(-(-(t.input_length + t.output_length) // block_size) for t in trace)
    return (total + 2) * block_size


def paper_rows(
    name: str,
    trace: Sequence[TraceRequest],
    base: ReplayConfig,
    caches: Sequence[int | None] = PAPER_CACHE_TOKENS,
    strategies: Sequence[str] = ("round_robin",),
    progress: Progress | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    nodes = base.nodes
    trace = list(trace)
    for c in caches:
        total = unbounded_tokens(trace, base.block_size) if c is None else c
        runs: list[tuple[str, ReplayConfig]] = [
            ("global", replace(base, nodes=1, cache_tokens=total, strategy="round_robin", store_tokens=None)),
        ]
        for s in strategies:
            # C split over the nodes; unbounded: every node unbounded
            per_node = total if c is None else max(2 * base.block_size, total // nodes)
            local = replace(base, nodes=nodes, cache_tokens=per_node, strategy=s)
            runs.append((f"local x{nodes} {s}", replace(local, store_tokens=None, store_unbounded=False)))
            runs.append(
                (f"local x{nodes} {s} + store", replace(local, store_tokens=c, store_unbounded=c is None))
            )
        for setup, cfg in runs:
            r = replay(trace, cfg, name, progress)
            t = r.total()
            rows.append(
                {
                    "trace": name,
                    "cache": _label(c),
                    "cache_tokens": c,
                    "setup": setup,
                    "hit_rate": round(t.local_hit_rate + t.external_hit_rate, 4),
                    "local_hit_rate": round(t.local_hit_rate, 4),
                    "external_hit_rate": round(t.external_hit_rate, 4),
                    "rejected": r.rejected,
                    "wall_s": round(r.wall_s, 1),
                }
            )
            if progress is not None and progress.out is not None:
                print(
                    f"paper: {name} C={_label(c)} {setup}: hit {rows[-1]['hit_rate']:.1%}", file=progress.out
                )
    return rows


def max_hit_ratio(trace: Sequence[TraceRequest]) -> float:
    """The trace's own bound at 512-token blocks: a prompt reuses its longest leading run of hash_ids
    seen before (no capacity limit, no n-1 cap). A cross-check for the unbounded row."""
    seen: set[int] = set()
    hit = total = 0
    for t in sorted(trace, key=lambda t: (t.arrival_ms, t.index)):
        ids = t.hash_ids or ()
        k = 0
        while k < len(ids) and ids[k] in seen:
            k += 1
        hit += min(k * 512, t.input_length)
        total += t.input_length
        seen.update(ids)
    return hit / total if total else 0.0


def paper_table(rows: Sequence[dict[str, Any]]) -> str:
    traces = list(dict.fromkeys(r["trace"] for r in rows))
    setups = list(dict.fromkeys(r["setup"] for r in rows))
    caches = list(dict.fromkeys(r["cache"] for r in rows))
    lines = []
    for tr in traces:
        lines.append(f"{tr}: cache hit ratio (prompt tokens served from cache)")
        head = ["setup", *caches]
        body = []
        for s in setups:
            cells = [s]
            for c in caches:
                hit = [r for r in rows if r["trace"] == tr and r["setup"] == s and r["cache"] == c]
                cells.append(f"{hit[0]['hit_rate']:.1%}" if hit else "-")
            body.append(cells)
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
        for r in [head, *body]:
            lines.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(r, widths, strict=True))
                )
            )
        lines.append("")
    return "\n".join(lines)
