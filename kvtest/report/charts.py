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


def hit_rate_chart(results: Sequence[ExperimentResult], path: str | Path) -> Path | None:
    """None when no experiment has node rows."""
    results = [r for r in results if r.nodes]
    if not results:
        return None
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


RUN_COLORS = ("#3b6fb6", "#e08a2c", "#6a4c93", "#2e9d5b")


def latency_chart(results: Sequence[ExperimentResult], path: str | Path) -> Path | None:
    """None when no experiment recorded latencies. Records with a "run" key (1 = cold cache, 2 = the
    repeat, ...) get one box per run side by side, so the effect of cache hits on TTFT is visible."""
    with_lat = [r for r in results if any(x.get("ok") for x in r.latencies)]
    if not with_lat:
        return None
    runs = sorted({int(x.get("run", 1)) for r in with_lat for x in r.latencies})
    width = 0.7 / len(runs)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, (1.4 + 0.6 * len(runs)) * len(with_lat) + 3), 4.4))
    for ax, key, title in ((axes[0], "ttft_s", "Time to first token"), (axes[1], "e2e_s", "End-to-end")):
        top = 1.0
        for e, res in enumerate(with_lat, start=1):
            for k, run in enumerate(runs):
                vals = [
                    x[key] * 1e3
                    for x in res.latencies
                    if x.get("ok") and x.get(key) is not None and int(x.get("run", 1)) == run
                ]
                if not vals:
                    continue
                pos = e + (k - (len(runs) - 1) / 2) * width
                color = RUN_COLORS[k % len(RUN_COLORS)]
                ax.boxplot([vals], positions=[pos], widths=width * 0.8, showfliers=False)
                jitter = [pos + ((i * 37) % 21 - 10) / 21 * width * 0.35 for i in range(len(vals))]
                ax.scatter(jitter, vals, s=8, alpha=0.55, color=color, zorder=3)
                median = sorted(vals)[len(vals) // 2]
                ax.text(
                    pos, max(vals) * 1.03, f"{median:.1f}", fontsize=7, ha="center", va="bottom", color=color
                )
                top = max(top, max(vals))
        ax.set_xticks(range(1, len(with_lat) + 1))
        ax.set_xticklabels([r.name for r in with_lat], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("ms (label: median)")
        ax.set_ylim(0, top * 1.15)  # from zero, with room for the labels
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=RUN_COLORS[k % len(RUN_COLORS)])
            for k in range(len(runs))
        ]
        labels = [f"run {r}" + (" (cold cache)" if r == runs[0] else "") for r in runs]
        fig.legend(handles, labels, loc="upper right", ncol=len(runs))
    fig.suptitle("Request latency per experiment (each dot a request)", x=0.01, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
