"""What a replay measured: per node and in total, as JSON and as a printed table."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class NodeResult:
    node: int
    requests: int = 0
    prompt_tokens: int = 0  # first scheduling of each request (vllm:prompt_tokens)
    local_hit_tokens: int = 0  # prompt_tokens_by_source{local_cache_hit}
    external_hit_tokens: int = 0  # prompt_tokens_by_source{external_kv_transfer}
    computed_tokens: int = 0  # prompt_tokens_by_source{local_compute}
    recomputed_tokens: int = 0  # prefill again after a preemption
    prefix_cache_queries: int = 0  # vllm:prefix_cache_queries (tokens)
    prefix_cache_hits: int = 0  # vllm:prefix_cache_hits
    preemptions: int = 0
    generation_tokens: int = 0
    queue_s: list[float] = field(default_factory=list, repr=False)
    ttft_s: list[float] = field(default_factory=list, repr=False)

    @property
    def local_hit_rate(self) -> float:
        return self.local_hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def external_hit_rate(self) -> float:
        return self.external_hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def counters(self) -> dict[str, int]:
        d = asdict(self)
        return {k: v for k, v in d.items() if isinstance(v, int)}

    def to_json(self) -> dict[str, Any]:
        return self.counters() | {
            "local_hit_rate": round(self.local_hit_rate, 6),
            "external_hit_rate": round(self.external_hit_rate, 6),
            "queue_s": {
                "mean": _mean(self.queue_s),
                "p50": _pct(self.queue_s, 0.5),
                "p99": _pct(self.queue_s, 0.99),
            },
            "ttft_s": {
                "mean": _mean(self.ttft_s),
                "p50": _pct(self.ttft_s, 0.5),
                "p99": _pct(self.ttft_s, 0.99),
            },
        }


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else 0.0


@dataclass
class ReplayResult:
    trace: str
    strategy: str
    nodes: list[NodeResult]
    config: dict[str, Any]
    trace_requests: int
    trace_prompt_tokens: int  # the trace's total input tokens (rejected requests included)
    rejected: int  # longer than a node's pool: vLLM refuses them (max_model_len)
    simulated_s: float
    wall_s: float
    store: dict[str, int] | None = None

    def total(self) -> NodeResult:
        t = NodeResult(node=-1)
        for n in self.nodes:
            for k, v in n.counters().items():
                if k != "node":
                    setattr(t, k, getattr(t, k) + v)
            t.queue_s += n.queue_s
            t.ttft_s += n.ttft_s
        return t

    @property
    def requests_per_wall_s(self) -> float:
        return self.trace_requests / self.wall_s if self.wall_s else 0.0

    def to_json(self) -> dict[str, Any]:
        t = self.total()
        return {
            "trace": self.trace,
            "strategy": self.strategy,
            "config": self.config,
            "trace_requests": self.trace_requests,
            "trace_prompt_tokens": self.trace_prompt_tokens,
            "rejected": self.rejected,
            "simulated_s": self.simulated_s,
            "wall_s": round(self.wall_s, 3),
            "requests_per_wall_s": round(self.requests_per_wall_s, 1),
            "total": t.to_json(),
            "nodes": [n.to_json() for n in self.nodes],
            "store": self.store,
        }

    def table(self, per_node: bool = True) -> str:
        rows: list[tuple[str, ...]] = [
            (
                "node",
                "reqs",
                "prompt tok",
                "local hit",
                "ext hit",
                "computed",
                "preempt",
                "queue p50",
                "TTFT p50",
                "TTFT p99",
            )
        ]

        def row(name: str, n: NodeResult) -> tuple[str, ...]:
            return (
                name,
                str(n.requests),
                str(n.prompt_tokens),
                f"{n.local_hit_rate:.1%}",
                f"{n.external_hit_rate:.1%}",
                str(n.computed_tokens + n.recomputed_tokens),
                str(n.preemptions),
                f"{_pct(n.queue_s, 0.5):.3f}s",
                f"{_pct(n.ttft_s, 0.5):.3f}s",
                f"{_pct(n.ttft_s, 0.99):.3f}s",
            )

        if per_node:
            rows += [row(str(n.node), n) for n in self.nodes]
        t = self.total()
        rows.append(row("total", t))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        computed = t.computed_tokens + t.recomputed_tokens
        share = computed / self.trace_prompt_tokens if self.trace_prompt_tokens else 0.0
        lines.append(
            f"strategy {self.strategy}: prefill computed {computed} of the trace's "
            f"{self.trace_prompt_tokens} prompt tokens ({share:.1%}); {self.rejected} requests rejected; "
            f"{self.simulated_s:.0f} s simulated in {self.wall_s:.1f} s wall "
            f"({self.requests_per_wall_s:.0f} requests/s)"
        )
        return "\n".join(lines)
