"""PNG charts for a run (matplotlib, Agg backend: no display needed).

hit_rate.png: one panel per experiment; per node a measured bar (green PASS / red FAIL) beside a hatched
expected bar, the tolerance as an error bar on the expected one, and the seed's 50% and 90% as dashed lines.
latency.png: TTFT and end-to-end latency per experiment as box plots with every request drawn as a dot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from kvtest.report.model import ExperimentResult

PASS_COLOR, FAIL_COLOR, EXPECTED_COLOR = "#2e9d5b", "#d1453b", "#9aa5b1"


def _short(node: str) -> str:
    return node.split("://", 1)[-1]


def hit_rate_chart(results: Sequence[ExperimentResult], path: str | Path) -> Path:
    n = len(results)
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    width = max(7.0, max((len(r.nodes) for r in results), default=1) * 0.9 + 2) * cols
    fig, axes = plt.subplots(rows, cols, figsize=(width, 3.8 * rows), squeeze=False)
    for ax, res in zip(axes.flat, results, strict=False):
        nodes = res.nodes
        xs = list(range(len(nodes)))
        measured = [(r.hit_rate or 0.0) * 100 for r in nodes]
        expected = [(r.expected or 0.0) * 100 for r in nodes]
        colors = [PASS_COLOR if r.verdict == "PASS" else FAIL_COLOR for r in nodes]
        ax.bar([x - 0.2 for x in xs], measured, 0.4, color=colors, label="measured")
        ax.bar(
            [x + 0.2 for x in xs],
            expected,
            0.4,
            color="white",
            edgecolor=EXPECTED_COLOR,
            hatch="//",
            label="expected",
            yerr=[r.tolerance * 100 for r in nodes] if any(r.tolerance for r in nodes) else None,
            ecolor="#555",
            capsize=3,
        )
        for x, m, r in zip(xs, measured, nodes, strict=True):
            label = "no req" if r.requests == 0 and r.queries == 0 else f"{m:.1f}%"
            ax.text(x - 0.2, m + 1.5, label, ha="center", va="bottom", fontsize=7)
            if r.verdict != "PASS" and r.expected is not None:
                ax.text(x + 0.2, r.expected * 100 + 1.5, f"exp {r.expected:.1%}", ha="center", fontsize=7)
        for level in (50, 90):
            ax.axhline(level, color="#777", linestyle="--", linewidth=0.8)
            ax.text(
                1.005,
                level,
                f"{level}%",
                fontsize=7,
                color="#555",
                va="center",
                transform=ax.get_yaxis_transform(),
            )
        ax.set_ylim(0, 105)
        # Keep bars the same width whether a panel has 2 nodes or 8.
        ax.set_xlim(-0.6, max(len(nodes), 4) - 0.4)
        ax.set_ylabel(f"hit rate % ({'V0 block gauge' if res.metric == 'v0' else 'V1 tokens'})")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{_short(r.node)}\n{r.role}" for r in nodes], fontsize=7, rotation=0)
        verdict = "PASS" if res.passed else "FAIL"
        ax.set_title(f"{res.title} — {verdict}", fontsize=10, color=PASS_COLOR if res.passed else FAIL_COLOR)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=PASS_COLOR),
        plt.Rectangle((0, 0), 1, 1, color=FAIL_COLOR),
        plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor=EXPECTED_COLOR, hatch="//"),
    ]
    fig.legend(
        handles, ["measured (PASS)", "measured (FAIL)", "expected ± tolerance"], loc="upper right", ncol=3
    )
    fig.suptitle("Prefix-cache hit rate per node: measured vs expected", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def latency_chart(results: Sequence[ExperimentResult], path: str | Path) -> Path | None:
    """None when no experiment recorded latencies."""
    with_lat = [r for r in results if any(x.get("ok") for x in r.latencies)]
    if not with_lat:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(with_lat) + 3), 4.2), squeeze=False)
    for ax, key, title in (
        (axes[0][0], "ttft_s", "Time to first token"),
        (axes[0][1], "e2e_s", "End-to-end"),
    ):
        data = [
            [x[key] * 1e3 for x in r.latencies if x.get("ok") and x.get(key) is not None] for r in with_lat
        ]
        positions = list(range(1, len(with_lat) + 1))
        drawn = [(p, d) for p, d in zip(positions, data, strict=True) if d]
        if drawn:
            ax.boxplot([d for _, d in drawn], positions=[p for p, _ in drawn], widths=0.5, showfliers=False)
            for p, d in drawn:
                jitter = [p + ((i * 37) % 21 - 10) / 60 for i in range(len(d))]
                ax.scatter(jitter, d, s=8, alpha=0.5, color="#3b6fb6", zorder=3)
                ax.text(
                    p,
                    max(d) * 1.03,
                    f"p50 {sorted(d)[len(d) // 2]:.1f}",
                    fontsize=7,
                    ha="center",
                    va="bottom",
                )
        ax.set_xticks(positions)
        ax.set_xticklabels([r.name for r in with_lat], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("ms")
        top = max((max(d) for d in data if d), default=1.0)
        ax.set_ylim(0, top * 1.15)  # from zero, with room for the p50 labels
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Request latency per experiment (each dot a request)", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
