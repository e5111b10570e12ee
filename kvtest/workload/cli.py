"""`kvtest dataset` (write the seed's JSONL) and `kvtest send` (post it through a proxy, record timings)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence

from kvtest.workload import dataset
from kvtest.workload.send import RequestResult, send_all, write_results


def dataset_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kvtest dataset", description="write a prefix-caching dataset (seed format)"
    )
    p.add_argument("--strategy", required=True, help="Random | Designate | RR")
    p.add_argument("--request-num", type=int, required=True)
    p.add_argument("--prefill", nargs="+", required=True, metavar="HOST:PORT")
    p.add_argument("--decode", nargs="+", required=True, metavar="HOST:PORT")
    p.add_argument("--model", default="Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--salt", default="", help="prefix every prompt with '[run SALT] ': contexts no cache has seen"
    )
    p.add_argument("--datapath", required=True, help="output JSONL")
    p.add_argument("--max-tokens", type=int, default=100)
    p.add_argument("--context-len", type=int, default=20, help="repeats of 'This is long context. '")
    p.add_argument(
        "--requests-per-context", type=int, default=1, help="consecutive requests sharing a context"
    )
    p.add_argument("--same-prefix-batch", type=int, default=1, help="consecutive byte-identical requests")
    p.add_argument("--rr-decode", choices=["random", "rr"], default="random", help="decode choice under RR")
    p.add_argument("--first-index", type=int, default=0)
    args = p.parse_args(argv)
    try:
        spec = dataset.DatasetSpec(
            strategy=args.strategy,
            request_num=args.request_num,
            prefill=args.prefill,
            decode=args.decode,
            model=args.model,
            seed=args.seed,
            salt=args.salt,
            max_tokens=args.max_tokens,
            context_len=args.context_len,
            requests_per_context=args.requests_per_context,
            same_prefix_batch=args.same_prefix_batch,
            rr_decode=args.rr_decode,
            first_index=args.first_index,
        )
    except ValueError as exc:
        print(f"kvtest dataset: {exc}", file=sys.stderr)
        return 2
    path = dataset.write(args.datapath, dataset.build(spec))
    print(f"wrote {spec.request_num} requests ({spec.strategy}, seed {spec.seed}) to {path}")
    return 0


def _summary(results: Sequence[RequestResult]) -> str:
    ok = [r for r in results if r.ok]
    lines = [f"{len(ok)}/{len(results)} requests succeeded"]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    if ttft:
        lines.append(
            f"TTFT  mean {statistics.mean(ttft) * 1e3:.1f} ms  median {statistics.median(ttft) * 1e3:.1f} ms"
        )
    if ok:
        e2e = [r.e2e_s for r in ok]
        lines.append(
            f"E2E   mean {statistics.mean(e2e) * 1e3:.1f} ms  median {statistics.median(e2e) * 1e3:.1f} ms"
        )
    return "\n".join(lines)


def send_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kvtest send", description="post a dataset through a proxy, record timings"
    )
    p.add_argument("--proxy", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--datapath", required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--out", default=None, help="per-request results JSONL")
    p.add_argument("--no-stream", action="store_true", help="plain JSON responses (no TTFT)")
    p.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    p.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--run", type=int, default=1, help="pass number recorded with each result (1 = cold)")
    args = p.parse_args(argv)
    try:
        requests = dataset.read(args.datapath)
    except (OSError, ValueError) as exc:
        print(f"kvtest send: {exc}", file=sys.stderr)
        return 2
    show = args.progress == "on" or (args.progress == "auto" and len(requests) >= 50 and sys.stderr.isatty())
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=len(requests), unit="req", file=sys.stderr)
    try:
        results = asyncio.run(
            send_all(
                args.proxy,
                requests,
                concurrency=args.concurrency,
                stream=not args.no_stream,
                timeout_s=args.timeout,
                run=args.run,
                on_done=(lambda _r: bar.update(1)) if bar is not None else None,
            )
        )
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        write_results(args.out, results)
    print(_summary(results))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"request {r.index} (prefill={r.prefill} decode={r.decode}) failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0
