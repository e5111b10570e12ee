"""`kvtest bench serve`: the seed's `vllm bench serve` role, against any OpenAI completions endpoint.

    kvtest bench serve --base-url http://127.0.0.1:8000 --model M --dataset-name sharegpt \
        --dataset-path ShareGPT_V3_unfiltered_cleaned_split.json --num-prompts 200 --request-rate 8

Arrivals: --request-rate (req/s, gamma-distributed gaps with --burstiness, 1.0 = Poisson, inf = all at
once) and/or --max-concurrency. Metrics follow vllm/benchmarks/serve.py calculate_metrics: TTFT is the
first text chunk; TPOT = (e2e - ttft) / (output tokens - 1) for requests with more than one output token;
ITL is every gap between text chunks; throughput counts successful requests over the whole duration.
The result block is printed in vLLM's layout so existing parsers of it keep working.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kvtest.expect import load_tokenizer
from kvtest.workload import sharegpt, synthetic
from kvtest.workload.send import RequestResult, send_one
from kvtest.workload.sharegpt import SampleRequest


@dataclass
class BenchmarkMetrics:
    completed: int
    failed: int
    duration_s: float
    total_input: int
    total_output: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    # metric -> {"mean", "median", "p<N>"...} in ms
    latencies_ms: dict[str, dict[str, float]] = field(default_factory=dict)


def _percentile(sorted_vals: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy.percentile's default, which vLLM uses)."""
    if not sorted_vals:
        return 0.0
    k = (len(sorted_vals) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def calculate_metrics(
    samples: Sequence[SampleRequest],
    results: Sequence[RequestResult],
    duration_s: float,
    *,
    percentiles: Sequence[float] = (99,),
) -> BenchmarkMetrics:
    ok = [(s, r) for s, r in zip(samples, results, strict=True) if r.ok]
    ttft, tpot, itl, e2el = [], [], [], []
    total_input = total_output = 0
    for s, r in ok:
        out = r.completion_tokens or 0
        total_input += s.prompt_len
        total_output += out
        if r.ttft_s is not None:
            ttft.append(r.ttft_s)
            if out > 1:
                tpot.append((r.e2e_s - r.ttft_s) / (out - 1))
        itl.extend(r.itl_s)
        e2el.append(r.e2e_s)
    lat: dict[str, dict[str, float]] = {}
    for name, vals in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2el", e2el)):
        ms = sorted(v * 1e3 for v in vals)
        row = {"mean": statistics.fmean(ms) if ms else 0.0, "median": statistics.median(ms) if ms else 0.0}
        for p in percentiles:
            row[f"p{_pword(p)}"] = _percentile(ms, p)
        lat[name] = row
    d = duration_s if duration_s > 0 else float("nan")
    return BenchmarkMetrics(
        completed=len(ok),
        failed=len(results) - len(ok),
        duration_s=duration_s,
        total_input=total_input,
        total_output=total_output,
        request_throughput=len(ok) / d,
        output_throughput=total_output / d,
        total_token_throughput=(total_input + total_output) / d,
        latencies_ms=lat,
    )


def _pword(p: float) -> str:
    return str(int(p)) if int(p) == p else str(p)


HEADERS = {
    "ttft": ("TTFT", "Time to First Token"),
    "tpot": ("TPOT", "Time per Output Token (excl. 1st token)"),
    "itl": ("ITL", "Inter-token Latency"),
    "e2el": ("E2EL", "End-to-end Latency"),
}


def format_result(
    m: BenchmarkMetrics,
    *,
    selected: Sequence[str] = ("ttft", "tpot", "itl"),
    percentiles: Sequence[float] = (99,),
    request_rate: float = float("inf"),
    max_concurrency: int | None = None,
) -> str:
    lines = ["{s:{c}^{n}}".format(s=" Serving Benchmark Result ", n=50, c="=")]

    def kv(label: str, value: object, fmt: str = "") -> None:
        lines.append(f"{label:<40} {value:<10{fmt}}")

    kv("Successful requests:", m.completed)
    kv("Failed requests:", m.failed)
    if max_concurrency is not None:
        kv("Maximum request concurrency:", max_concurrency)
    if request_rate != float("inf"):
        kv("Request rate configured (RPS):", request_rate, ".2f")
    kv("Benchmark duration (s):", m.duration_s, ".2f")
    kv("Total input tokens:", m.total_input)
    kv("Total generated tokens:", m.total_output)
    kv("Request throughput (req/s):", m.request_throughput, ".2f")
    kv("Output token throughput (tok/s):", m.output_throughput, ".2f")
    kv("Total Token throughput (tok/s):", m.total_token_throughput, ".2f")
    for key in selected:
        short, header = HEADERS[key]
        row = m.latencies_ms[key]
        lines.append("{s:{c}^{n}}".format(s=header, n=50, c="-"))
        kv(f"Mean {short} (ms):", row["mean"], ".2f")
        kv(f"Median {short} (ms):", row["median"], ".2f")
        for p in percentiles:
            kv(f"P{_pword(p)} {short} (ms):", row[f"p{_pword(p)}"], ".2f")
    lines.append("=" * 50)
    return "\n".join(line.rstrip() for line in lines)


async def run_benchmark(
    base_url: str,
    model: str,
    samples: Sequence[SampleRequest],
    *,
    endpoint: str = "/v1/completions",
    request_rate: float = float("inf"),
    burstiness: float = 1.0,
    max_concurrency: int | None = None,
    seed: int = 0,
    ignore_eos: bool = False,
    timeout_s: float = 600.0,
    progress: bool = False,
) -> tuple[list[RequestResult], float]:
    rng = random.Random(seed)
    url = base_url.rstrip("/") + endpoint
    sem = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    limit = max_concurrency or max(len(samples), 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(samples), unit="req", file=sys.stderr)
    limits = httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits) as client:

        async def one(i: int, s: SampleRequest) -> RequestResult:
            body: dict[str, object] = {
                "model": model,
                "prompt": s.prompt,
                "temperature": 0.0,
                "max_tokens": s.expected_output_len,
            }
            if ignore_eos:
                body["ignore_eos"] = True
            if sem is None:
                res = await send_one(client, url, body, index=i)
            else:
                async with sem:
                    res = await send_one(client, url, body, index=i)
            if bar is not None:
                bar.update(1)
            return res

        start = time.perf_counter()
        tasks = []
        for i, s in enumerate(samples):
            tasks.append(asyncio.create_task(one(i, s)))
            if request_rate != float("inf") and i < len(samples) - 1:
                # Gamma-distributed gaps: shape=burstiness keeps the mean at 1/rate (Poisson at 1.0).
                await asyncio.sleep(rng.gammavariate(burstiness, 1.0 / (request_rate * burstiness)))
        results = list(await asyncio.gather(*tasks))
        duration = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return results, duration


def _samples(args: argparse.Namespace) -> list[SampleRequest]:
    tokenize = load_tokenizer(args.model, args.tokenizer)
    if args.dataset_name == "sharegpt":
        if not args.dataset_path:
            raise ValueError("--dataset-name sharegpt needs --dataset-path FILE.json")
        return sharegpt.sample(
            sharegpt.load(args.dataset_path),
            args.num_prompts,
            tokenize,
            seed=args.seed,
            output_len=args.sharegpt_output_len,
        )
    if args.dataset_name == "sonnet":
        lines = (
            Path(args.dataset_path).read_text(encoding="utf-8").splitlines() if args.dataset_path else None
        )
        return synthetic.sonnet(
            args.num_prompts,
            tokenize,
            seed=args.seed,
            lines=lines,
            input_len=args.sonnet_input_len,
            output_len=args.sonnet_output_len,
            prefix_len=args.sonnet_prefix_len,
        )
    return synthetic.synthetic(
        args.num_prompts,
        tokenize,
        seed=args.seed,
        shared_prefix_ratio=args.shared_prefix_ratio,
        output_len=args.synthetic_output_len,
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvtest bench serve", description="serving benchmark (vllm bench serve)")
    p.add_argument("--backend", default="vllm", help="accepted for vLLM compatibility; OpenAI completions")
    p.add_argument("--base-url", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--endpoint", default="/v1/completions")
    p.add_argument("--model", required=True)
    p.add_argument("--tokenizer", default=None, help="tokenizer.json or model dir for token counts")
    p.add_argument("--dataset-name", choices=["sharegpt", "synthetic", "sonnet"], default="synthetic")
    p.add_argument("--dataset-path", default=None)
    p.add_argument("--num-prompts", type=int, default=1000)
    p.add_argument("--sharegpt-output-len", type=int, default=None)
    p.add_argument("--shared-prefix-ratio", type=float, default=0.0)
    p.add_argument("--synthetic-output-len", type=int, default=None)
    p.add_argument("--sonnet-input-len", type=int, default=550)
    p.add_argument("--sonnet-output-len", type=int, default=150)
    p.add_argument("--sonnet-prefix-len", type=int, default=200)
    p.add_argument("--request-rate", type=float, default=float("inf"))
    p.add_argument("--burstiness", type=float, default=1.0)
    p.add_argument("--max-concurrency", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ignore-eos", action="store_true")
    p.add_argument("--percentile-metrics", default="ttft,tpot,itl")
    p.add_argument("--metric-percentiles", default="99")
    p.add_argument("--save-result", action="store_true")
    p.add_argument("--result-filename", default=None)
    p.add_argument("--disable-tqdm", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv or [])
    if not argv or argv[0] != "serve":
        print("usage: kvtest bench serve [ARGS...]  (see `kvtest bench serve --help`)", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv[1:])
    selected = [m.strip() for m in args.percentile_metrics.split(",") if m.strip()]
    unknown = [m for m in selected if m not in HEADERS]
    if unknown or args.burstiness <= 0 or args.request_rate <= 0:
        print(f"kvtest bench serve: bad metrics {unknown} or non-positive rate/burstiness", file=sys.stderr)
        return 2
    percentiles = [float(p) for p in args.metric_percentiles.split(",")]
    try:
        samples = _samples(args)
    except (OSError, ValueError, KeyError) as exc:
        print(f"kvtest bench serve: {exc}", file=sys.stderr)
        return 2
    if not samples:
        print("kvtest bench serve: the dataset yielded no valid requests", file=sys.stderr)
        return 2
    base = args.base_url or f"http://{args.host}:{args.port}"
    results, duration = asyncio.run(
        run_benchmark(
            base,
            args.model,
            samples,
            endpoint=args.endpoint,
            request_rate=args.request_rate,
            burstiness=args.burstiness,
            max_concurrency=args.max_concurrency,
            seed=args.seed,
            ignore_eos=args.ignore_eos,
            progress=not args.disable_tqdm and sys.stderr.isatty(),
        )
    )
    metrics = calculate_metrics(samples, results, duration, percentiles=percentiles)
    print(
        format_result(
            metrics,
            selected=selected,
            percentiles=percentiles,
            request_rate=args.request_rate,
            max_concurrency=args.max_concurrency,
        )
    )
    if args.save_result:
        path = Path(args.result_filename or f"kvtest-bench-{int(time.time())}.json")
        path.write_text(json.dumps({"metrics": metrics.__dict__, "num_prompts": len(samples)}, indent=2))
        print(f"saved {path}")
    failed = [r for r in results if not r.ok]
    for r in failed[:10]:
        print(f"request {r.index} failed: {r.error}", file=sys.stderr)
    return 1 if failed else 0
