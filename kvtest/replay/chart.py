"""The replay's PNG: hit rate against cache size, one line per strategy; solid = local prefix caches only,
dashed = with the shared store (local + external hits). Matplotlib, Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from kvtest.replay.summary import ReplayResult


def hit_rate_chart(results: Sequence[ReplayResult], path: str | Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    series: dict[tuple[str, bool], list[tuple[int, float]]] = {}
    for r in results:
        t = r.total()
        rate = t.local_hit_rate + t.external_hit_rate
        key = (r.strategy, r.store is not None)
        series.setdefault(key, []).append((int(r.config["cache_tokens"]), rate))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    strategies = sorted({k[0] for k in series})
    for (strategy, with_store), pts in sorted(series.items()):
        pts.sort()
        color = colors[strategies.index(strategy) % len(colors)]
        label = f"{strategy} + shared store" if with_store else f"{strategy}, local caches"
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", color=color,
                linestyle="--" if with_store else "-", label=label)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("KV cache per node (tokens)")
    ax.set_ylabel("prompt tokens served from cache (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def paper_chart(rows: Sequence[dict[str, object]], path: str | Path) -> Path:
    """The paper mode's table as bars: per trace and cache size, global cache vs local caches vs store."""
    traces = sorted({str(r["trace"]) for r in rows})
    fig, axes = plt.subplots(1, len(traces), figsize=(7 * len(traces), 4.5), squeeze=False)
    for ax, trace in zip(axes.flat, traces, strict=True):
        mine = [r for r in rows if r["trace"] == trace]
        sizes = list(dict.fromkeys(str(r["cache"]) for r in mine))
        kinds = list(dict.fromkeys(str(r["setup"]) for r in mine))
        width = 0.8 / max(1, len(kinds))
        for k, kind in enumerate(kinds):
            vals = []
            for s in sizes:
                hit = [r["hit_rate"] for r in mine if r["cache"] == s and r["setup"] == kind]
                vals.append(100 * float(hit[0]) if hit else 0.0)  # type: ignore[arg-type]
            ax.bar([i + k * width for i in range(len(sizes))], vals, width, label=kind)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))], sizes)
        ax.set_xlabel("cache capacity (tokens)")
        ax.set_ylabel("cache hit ratio (%)")
        ax.set_ylim(0, 100)
        ax.set_title(trace)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
