"""`kvtest replay TRACE`: replay a trace through simulated nodes; print, write JSON and a PNG.

    kvtest replay fixtures/traces/mooncake_conversation_trace.jsonl --nodes 16 \\
        --strategy round_robin --strategy prefix --cache-tokens 131072 --cache-tokens 1048576 \\
        --store-tokens 10000000 --out runs/replay
    kvtest replay --paper fixtures/traces/mooncake_conversation_trace.jsonl \\
        fixtures/traces/mooncake_synthetic_trace.jsonl

Every (strategy, cache size) runs once with local caches only and, with --store-tokens or
--store-unbounded, once more with the shared store. --paper answers the FAST'25 paper's question
(kvtest/replay/paper.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from kvtest.replay.routing import STRATEGIES, ReplayRouter
from kvtest.replay.simulation import Progress, ReplayConfig, replay
from kvtest.replay.summary import ReplayResult
from kvtest.replay.trace import TraceError, load_trace


def build_parser() -> argparse.ArgumentParser:
    d = ReplayConfig()
    p = argparse.ArgumentParser(
        prog="kvtest replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "trace",
        nargs="+",
        help="Mooncake trace (timestamp, input_length, output_length, hash_ids) or kvtest JSONL dataset",
    )
    p.add_argument("--cluster", help="take nodes, block size, pool, latency and strategy from a cluster file")
    p.add_argument("--nodes", type=int, default=d.nodes)
    p.add_argument(
        "--strategy",
        action="append",
        metavar="|".join(STRATEGIES),
        help="repeat to compare (default round_robin)",
    )
    p.add_argument(
        "--cache-tokens",
        type=int,
        action="append",
        help=f"each node's KV pool in tokens; repeat for a sweep (default {d.cache_tokens})",
    )
    p.add_argument("--block-size", type=int, default=d.block_size)
    p.add_argument(
        "--store-tokens", type=int, help="also run with a shared Mooncake store of this many tokens"
    )
    p.add_argument(
        "--store-unbounded", action="store_true", help="also run with a shared store that never evicts"
    )
    p.add_argument("--max-num-seqs", type=int, default=d.max_num_seqs)
    p.add_argument("--prefill-base-ms", type=float, default=d.prefill_base_ms)
    p.add_argument("--ttft-ms-per-token", type=float, default=d.ttft_ms_per_token)
    p.add_argument("--itl-ms", type=float, default=d.itl_ms)
    p.add_argument("--external-ms-per-token", type=float, default=d.external_ms_per_token)
    p.add_argument(
        "--prefix-tokens", type=int, default=d.prefix_tokens, help="leading tokens the prefix strategy hashes"
    )
    p.add_argument(
        "--hash-algo", default=d.hash_algo, choices=["sha256", "sha256_cbor", "xxhash", "xxhash_cbor"]
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="replay only the first N requests")
    p.add_argument("--interval-ms", type=float, default=0.0, help="kvtest datasets: ms between arrivals")
    p.add_argument(
        "--token-by-token", action="store_true", help="one event per output token (slow; the reference)"
    )
    p.add_argument("--per-node", action="store_true", help="print every node's row")
    p.add_argument(
        "--paper",
        action="store_true",
        help="one cache of 3M/10M/50M/unbounded tokens per trace (the FAST'25 question)",
    )
    p.add_argument("--out", help="directory for summary.json and hit_rate.png (default runs/<time>-replay)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    progress = None if args.quiet else Progress()
    out = Path(args.out or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-replay")
    try:
        base = ReplayConfig(
            nodes=args.nodes,
            block_size=args.block_size if not args.paper or "--block-size" in argv else 512,
            max_num_seqs=args.max_num_seqs,
            prefill_base_ms=args.prefill_base_ms,
            ttft_ms_per_token=args.ttft_ms_per_token,
            itl_ms=args.itl_ms,
            external_ms_per_token=args.external_ms_per_token,
            hash_algo=args.hash_algo,
            seed=args.seed,
            prefix_tokens=args.prefix_tokens,
            aggregate_decode=not args.token_by_token,
        )
        if args.cluster:
            from kvtest.replay.cluster_file import config_from_cluster

            given = [f for f in ("--nodes", "--block-size") if any(x.split("=")[0] == f for x in argv)]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} cannot be combined with --cluster: the cluster file sets them"
                )

            base = config_from_cluster(args.cluster, base)
        for s in args.strategy or ():
            ReplayRouter(1, s)  # an unknown name fails here, before any replay runs
        traces = [(Path(t).stem, load_trace(t, args.limit, args.interval_ms)) for t in args.trace]
    except (TraceError, ValueError, OSError) as e:
        print(f"kvtest replay: {e}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if args.paper:
        return _paper(traces, base, args, progress, out)
    strategies = args.strategy or ([base.strategy] if args.cluster else ["round_robin"])
    caches = args.cache_tokens or [base.cache_tokens]
    results: list[ReplayResult] = []
    for name, trace in traces:
        for strategy in strategies:
            for cache in caches:
                cfg = replace(base, strategy=strategy, cache_tokens=cache)
                stores = (
                    [replace(cfg, store_tokens=None, store_unbounded=False)]
                    if not args.cluster or not cfg.has_store
                    else []
                )
                if args.store_tokens or args.store_unbounded:
                    stores.append(
                        replace(cfg, store_tokens=args.store_tokens, store_unbounded=args.store_unbounded)
                    )
                elif cfg.has_store:
                    stores.append(cfg)
                for c in stores:
                    r = replay(trace, c, name, progress)
                    results.append(r)
                    store = (
                        ""
                        if r.store is None
                        else f", shared store {'unbounded' if c.store_unbounded else c.store_tokens}"
                    )
                    print(f"\n== {name}: {c.nodes} nodes, {strategy}, {cache} tokens per node{store}")
                    print(r.table(per_node=args.per_node))
    (out / "summary.json").write_text(json.dumps([r.to_json() for r in results], indent=1))
    from kvtest.replay.chart import hit_rate_chart

    png = hit_rate_chart(results, out / "hit_rate.png", ", ".join(n for n, _ in traces))
    print(f"\nwrote {out / 'summary.json'} and {png}")
    return 0


def _paper(traces, base, args, progress, out) -> int:  # type: ignore[no-untyped-def]
    from kvtest.replay.chart import paper_chart
    from kvtest.replay.paper import max_hit_ratio, paper_rows, paper_table

    rows = []
    for name, trace in traces:
        rows += paper_rows(name, trace, base, strategies=args.strategy or ("round_robin",), progress=progress)
        bound = max_hit_ratio(trace)
        print(f"{name}: the trace's bound (every earlier block kept, 512-token blocks): {bound:.1%}")
    print(paper_table(rows))
    (out / "paper.json").write_text(json.dumps(rows, indent=1))
    png = paper_chart(rows, out / "paper.png")
    print(f"wrote {out / 'paper.json'} and {png}")
    return 0
