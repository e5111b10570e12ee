"""Parse a node's /metrics (prometheus_client's parser) into the counters kvtest judges, and diff them.

    before = await scrape_all(urls); ...workload...; after = await scrape_all(urls)
    rows = [delta(before[u], after[u]) for u in urls]

V1 nodes export token counters (vllm/v1/metrics/loggers.py): vllm:prefix_cache_queries_total and
vllm:prefix_cache_hits_total (vLLM 0.8-0.10 named them vllm:gpu_prefix_cache_{queries,hits}_total), plus
vllm:external_prefix_cache_* when a KV connector supplies tokens. V0 (the seed's vLLM 0.9.2 with
VLLM_USE_V1=0) exports only the gauge vllm:gpu_prefix_cache_hit_rate, a cumulative block hit rate since
the node started: it cannot be differenced, so a V0 row carries the gauge as read after the workload.
Samples are summed over label sets (model_name, engine, finished_reason).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from kvtest.metrics.exposition import sums as sample_sums
from kvtest.report import table

# counter -> the sample names it may appear under, newest first
COUNTERS: dict[str, tuple[str, ...]] = {
    "queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "external_queries": ("vllm:external_prefix_cache_queries_total",),
    "external_hits": ("vllm:external_prefix_cache_hits_total",),
    "requests": ("vllm:request_success_total",),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
}
GAUGES: dict[str, str] = {
    "gpu_prefix_cache_hit_rate": "vllm:gpu_prefix_cache_hit_rate",
    "cpu_prefix_cache_hit_rate": "vllm:cpu_prefix_cache_hit_rate",
}


def node_url(node: str) -> str:
    """'host:port' or a URL -> base URL without a trailing slash."""
    return (node if "://" in node else f"http://{node}").rstrip("/")


@dataclass
class Snapshot:
    node: str
    taken_at: float
    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def kind(self) -> str:
        """ "v1" when the node exports token counters, "v0" when only the hit-rate gauge, else "none"."""
        if "queries" in self.counters:
            return "v1"
        if "gpu_prefix_cache_hit_rate" in self.gauges:
            return "v0"
        return "none"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Snapshot:
        return cls(
            node=str(d["node"]),
            taken_at=float(d.get("taken_at", 0.0)),  # type: ignore[arg-type]
            counters=dict(d.get("counters", {})),  # type: ignore[call-overload]
            gauges=dict(d.get("gauges", {})),  # type: ignore[call-overload]
            error=d.get("error"),  # type: ignore[arg-type]
        )


def parse(text: str, node: str = "", *, model: str | None = None) -> Snapshot:
    """Snapshot from exposition text; `model` keeps only samples whose model_name label equals it."""
    sums = sample_sums(text, model=model)
    snap = Snapshot(node=node, taken_at=time.time())
    for key, names in COUNTERS.items():
        for name in names:
            if name in sums:
                snap.counters[key] = sums[name]
                break
    for key, name in GAUGES.items():
        if name in sums:
            snap.gauges[key] = sums[name]
    return snap


async def scrape(
    node: str, *, client: httpx.AsyncClient | None = None, model: str | None = None, timeout_s: float = 10.0
) -> Snapshot:
    """GET node/metrics; a failed scrape is a Snapshot with `error` set (never raises for HTTP trouble)."""
    url = node_url(node) + "/metrics"
    own = client is None
    c = client or httpx.AsyncClient(timeout=timeout_s)
    try:
        resp = await c.get(url)
        if resp.status_code != 200:
            return Snapshot(node=node, taken_at=time.time(), error=f"HTTP {resp.status_code} from {url}")
        return parse(resp.text, node, model=model)
    except httpx.HTTPError as exc:
        return Snapshot(node=node, taken_at=time.time(), error=f"{type(exc).__name__} scraping {url}: {exc}")
    except ValueError as exc:  # the parser's complaint about a malformed exposition
        return Snapshot(node=node, taken_at=time.time(), error=f"unparsable /metrics from {url}: {exc}")
    finally:
        if own:
            await c.aclose()


async def scrape_all(nodes: Iterable[str], *, model: str | None = None) -> dict[str, Snapshot]:
    nodes = list(nodes)
    async with httpx.AsyncClient(timeout=10.0) as client:
        snaps = await asyncio.gather(*(scrape(n, client=client, model=model) for n in nodes))
    return dict(zip(nodes, snaps, strict=True))


@dataclass
class NodeDelta:
    node: str
    kind: str
    requests: int = 0
    queries: int = 0
    hits: int = 0
    external_queries: int = 0
    external_hits: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    # V0 only: the cumulative gauge after the workload (vLLM computes it since the node started).
    v0_hit_rate: float | None = None
    error: str | None = None

    @property
    def hit_rate(self) -> float | None:
        if self.kind == "v0":
            return self.v0_hit_rate
        return self.hits / self.queries if self.queries else None

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["hit_rate"] = self.hit_rate
        return d


def delta(before: Snapshot | None, after: Snapshot) -> NodeDelta:
    """Counter increase from `before` to `after` (before=None: since the node started)."""
    error = after.error or (before.error if before else None)
    row = NodeDelta(node=after.node, kind=after.kind, error=error)
    if error:
        return row
    base = before.counters if before else {}
    for key in COUNTERS:
        if key in after.counters:
            diff = after.counters[key] - base.get(key, 0.0)
            if diff < 0:
                row.error = f"{key} went down ({base.get(key)} -> {after.counters[key]}): the node restarted"
            setattr(row, key, round(diff))
    if "gpu_prefix_cache_hit_rate" in after.gauges:
        row.v0_hit_rate = after.gauges["gpu_prefix_cache_hit_rate"]
    return row


def save(path: str | Path, snaps: Mapping[str, Snapshot]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({k: v.to_dict() for k, v in snaps.items()}, indent=2), encoding="utf-8")
    return p


def load(path: str | Path) -> dict[str, Snapshot]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {k: Snapshot.from_dict(v) for k, v in raw.items()}


def format_table(rows: Iterable[NodeDelta]) -> str:
    head = ("node", "kind", "requests", "queries", "hits", "hit_rate", "ext_queries", "ext_hits")
    lines: list[tuple[str, ...]] = []
    for r in rows:
        if r.error:
            lines.append((r.node, r.kind, "-", "-", "-", "-", "-", f"ERROR {r.error}"))
            continue
        rate = "-" if r.hit_rate is None else f"{r.hit_rate:.1%}"
        lines.append(
            (
                r.node,
                r.kind,
                str(r.requests),
                str(r.queries),
                str(r.hits),
                rate,
                str(r.external_queries),
                str(r.external_hits),
            )
        )
    return table.render(head, lines)
