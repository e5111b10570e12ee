"""`kvtest kv-routing`: kv_aware vs prefix vs round robin vs random, by prefix-cache hit rate.

Each strategy gets fresh fake prefill nodes (publishing vLLM's KV events), one decode node and a proxy,
then two workloads go through the proxy:
- seed: the seed's prefix-caching dataset (kvtest/workload/dataset.py: shared contexts, several
  questions each, in the seed's order), designations removed so the strategy decides;
- many-tenant: more distinct contexts than one node's cache holds (12 tenants; a node holds 4), every
  prompt starting with the same system preamble (longer than the prefix strategy's key), tenants drawn
  at random (seeded).
Hit rate = vllm:prefix_cache_hits / queries (tokens) per prefill node and in total. The report
(report.md, results.json, hit_rates.png) goes to the run directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

MODEL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama"
STRATEGIES = ("kv_aware", "prefix", "round_robin", "random")
HASH_SEED = "0"
PREAMBLE = "System: you are the support assistant of a multi-tenant service; answer briefly. " * 4


@dataclass
class NodeResult:
    url: str
    requests: int
    queries: int
    hits: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


@dataclass
class StrategyResult:
    workload: str
    strategy: str
    nodes: list[NodeResult]
    seconds: float
    picks: dict[str, int]

    @property
    def hit_rate(self) -> float:
        q = sum(n.queries for n in self.nodes)
        return sum(n.hits for n in self.nodes) / q if q else 0.0


def seed_workload(contexts: int, per_context: int, context_len: int) -> list[dict[str, Any]]:
    from kvtest.workload.dataset import DatasetSpec, build

    spec = DatasetSpec(
        model="m",
        prefill=["p:1"],
        decode=["d:1"],
        request_num=contexts * per_context,
        context_len=context_len,
        requests_per_context=per_context,
        strategy="RR",
    )
    return [{"prompt": r.prompt, "max_tokens": 2} for r in build(spec)]


def many_tenant_workload(tenants: int, requests: int, context_len: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    contexts = [
        f"Tenant {t} handbook: " + " ".join(rng.choice(words) for _ in range(context_len))
        for t in range(tenants)
    ]
    out = []
    for i in range(requests):
        t = rng.randrange(tenants)
        out.append({"prompt": f"{PREAMBLE}{contexts[t]}\nQuestion {i}: what does it say?", "max_tokens": 2})
    return out


async def run_strategy(
    strategy: str,
    workload: str,
    bodies: Sequence[dict[str, Any]],
    *,
    prefill_nodes: int,
    pool_blocks: int,
    block_size: int,
    concurrency: int,
    seed: int,
) -> StrategyResult:
    from kvtest.ports import free_port
    from kvtest.proxy.config import ProxyConfig
    from kvtest.proxy.server import PDProxy
    from simulators.vllm.config import SimConfig
    from simulators.vllm.kv_events import KVEventsConfig
    from simulators.vllm.server import FakeVLLMServer

    model = str(MODEL_DIR)
    with tempfile.TemporaryDirectory(prefix="kvtest-kv-routing-") as tmp:

        def node(i: int, events: bool) -> FakeVLLMServer:
            ev = (
                KVEventsConfig(
                    enable_kv_cache_events=True,
                    endpoint=f"ipc://{tmp}/pub{i}",
                    replay_endpoint=f"ipc://{tmp}/replay{i}",
                )
                if events
                else None
            )
            cfg = SimConfig(
                model=model,
                port=free_port(),
                block_size=block_size,
                num_gpu_blocks_override=pool_blocks,
                max_model_len=2048,
                kv_events_config=ev,
                sim_env={"PYTHONHASHSEED": HASH_SEED},
            )
            return FakeVLLMServer(cfg)

        prefill = [node(i, True) for i in range(prefill_nodes)]
        decode = node(prefill_nodes, False)
        for s in [*prefill, decode]:
            await s.start()
        proxy = None
        try:
            pc = ProxyConfig(
                prefill=[p.url for p in prefill],
                decode=[decode.url],
                strategy=strategy,
                seed=seed,
                port=free_port(),
                kv_events=[f"ipc://{tmp}/pub{i}" for i in range(prefill_nodes)],
                kv_replay=[f"ipc://{tmp}/replay{i}" for i in range(prefill_nodes)],
                kv_model=model,
                kv_block_size=block_size,
                kv_hash_seed=HASH_SEED,
            )
            proxy = PDProxy(pc)
            await proxy.start()
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(concurrency)
            async with httpx.AsyncClient(timeout=120) as c:

                async def send(body: dict[str, Any]) -> None:
                    async with sem:
                        r = await c.post(f"{proxy.url}/v1/completions", json={"model": model, **body})
                        r.raise_for_status()

                await asyncio.gather(*(send(b) for b in bodies))
            seconds = time.perf_counter() - t0
            kv = proxy.router.kv_aware
            picks = dict(kv.picks) if kv is not None else {}
            nodes = [
                NodeResult(
                    p.url, p.engine.kv.stats.requests, p.engine.kv.stats.queries, p.engine.kv.stats.hits
                )
                for p in prefill
            ]
            return StrategyResult(workload, strategy, nodes, seconds, picks)
        finally:
            if proxy is not None:
                await proxy.stop()
            for s in [*prefill, decode]:
                await s.stop()


async def run_all(args: argparse.Namespace) -> list[StrategyResult]:
    tenants = args.tenants
    workloads = {
        "seed": seed_workload(args.contexts, args.per_context, args.context_len),
        "many-tenant": many_tenant_workload(tenants, args.requests, args.context_words, args.seed),
    }
    results = []
    for name, bodies in workloads.items():
        for strategy in args.strategies:
            r = await run_strategy(
                strategy,
                name,
                bodies,
                prefill_nodes=args.prefill_nodes,
                pool_blocks=args.pool_blocks,
                block_size=args.block_size,
                concurrency=args.concurrency,
                seed=args.seed,
            )
            print(
                f"kv-routing: {name:12s} {strategy:12s} total hit rate {r.hit_rate:6.1%}  per node "
                + " ".join(f"{n.hit_rate:5.1%}({n.requests})" for n in r.nodes),
                flush=True,
            )
            results.append(r)
    return results


def write_report(results: list[StrategyResult], out: Path, args: argparse.Namespace) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            [
                {**asdict(r), "hit_rate": r.hit_rate, "node_hit_rates": [n.hit_rate for n in r.nodes]}
                for r in results
            ],
            indent=2,
        )
    )
    lines = [
        "# KV-aware routing vs prefix, round robin, random",
        "",
        f"{args.prefill_nodes} fake prefill nodes (vLLM V1 prefix cache, {args.pool_blocks} blocks of "
        f"{args.block_size} tokens each), 1 decode node, concurrency {args.concurrency}, seed {args.seed}. "
        "Hit rate = prefix-cache hit tokens / queried tokens on the prefill nodes.",
        "",
        "| workload | strategy | total hit rate | per-node hit rate (requests) |",
        "|---|---|---|---|",
    ]
    for r in results:
        per = ", ".join(f"{n.hit_rate:.1%} ({n.requests})" for n in r.nodes)
        lines.append(f"| {r.workload} | {r.strategy} | {r.hit_rate:.1%} | {per} |")
    lines += ["", "![hit rates](hit_rates.png)", ""]
    chart = hit_rate_chart(results, out / "hit_rates.png")
    (out / "report.md").write_text("\n".join(lines))
    return chart


def hit_rate_chart(results: list[StrategyResult], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r.workload for r in results))
    strategies = list(dict.fromkeys(r.strategy for r in results))
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 4), squeeze=False)
    for ax, w in zip(axes[0], workloads, strict=True):
        rs = [r for r in results if r.workload == w]
        xs = range(len(rs))
        ax.bar(xs, [r.hit_rate * 100 for r in rs], color="#4c72b0", label="total")
        for x, r in zip(xs, rs, strict=True):
            ax.scatter(
                [x] * len(r.nodes), [n.hit_rate * 100 for n in r.nodes], color="#dd8452", zorder=3, s=14
            )
            ax.text(x, r.hit_rate * 100 + 1, f"{r.hit_rate:.0%}", ha="center", fontsize=9)
        ax.set_xticks(list(xs), [r.strategy for r in rs])
        ax.set_ylim(0, 100)
        ax.set_title(f"{w} workload")
        ax.set_ylabel("prefix-cache hit rate (%)  bar: total, dots: per node")
    fig.suptitle("Prefill-node prefix-cache hit rate by routing strategy (" + ", ".join(strategies) + ")")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvtest kv-routing", description=__doc__.split("\n")[0] if __doc__ else None
    )
    p.add_argument("--out", default=None, help="run directory (default runs/<time>-kv-routing)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--prefill-nodes", type=int, default=4)
    p.add_argument("--pool-blocks", type=int, default=160, help="KV blocks per prefill node")
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--contexts", type=int, default=8, help="seed workload: shared contexts")
    p.add_argument("--per-context", type=int, default=6, help="seed workload: questions per context")
    p.add_argument("--context-len", type=int, default=20, help="seed workload: sentences per context")
    # tiny-llama's tokenizer: the preamble is 284 tokens (18 blocks), a prompt with 80 context words
    # ~745 (47 blocks), so a 160-block node holds 4 tenants: 12 tenants are 3 nodes' worth
    p.add_argument("--tenants", type=int, default=12, help="many-tenant workload: tenants")
    p.add_argument("--requests", type=int, default=240, help="many-tenant workload: requests")
    p.add_argument("--context-words", type=int, default=80, help="many-tenant workload: words per context")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-kv-routing")
    results = asyncio.run(run_all(args))
    chart = write_report(results, out, args)
    print(f"kv-routing: report {out / 'report.md'}, chart {chart}")
    return 0
