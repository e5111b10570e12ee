"""Benchmark `kvtest replay`: Mooncake's whole conversation trace (12,031 requests) over 16, 64 and 256
simulated nodes, block size 16, each node the fake's own engine (8,192 blocks, its default pool).

Targets (16 nodes): <= 60 s wall and RSS <= 1 GB on the project's 2-core machine. Printed per run:
wall and CPU seconds (CPU time is what to compare on a shared, loaded machine), simulated requests per wall
second, simulated seconds per wall second, peak RSS. Anchor,
measured in the same run: the token-by-token decode path (one event per output token) on the trace's
first 300 requests, 16 nodes, against the aggregate path on the same slice; their counters must agree.
Each run is its own process, so each RSS is its own.

Usage: .venv/bin/python ci/bench/bench_replay.py [--limit N] [--nodes 16 64 256] [--cache-tokens T]
       [--also kv_aware ...]   (strategies also timed at 16 nodes; the node counts run round robin)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvtest.replay.simulation import Progress, ReplayConfig, replay  # noqa: E402
from kvtest.replay.trace import load_trace  # noqa: E402

TRACE = ROOT / "fixtures" / "traces" / "mooncake_conversation_trace.jsonl"
TARGET_WALL_S = 60.0
TARGET_RSS_MB = 1024.0
ANCHOR_SLICE = 300


def one(
    nodes: int, limit: int | None, cache_tokens: int, token_by_token: bool, strategy: str
) -> dict[str, object]:
    trace = load_trace(TRACE, limit)
    cfg = ReplayConfig(
        nodes=nodes,
        block_size=16,
        cache_tokens=cache_tokens,
        aggregate_decode=not token_by_token,
        strategy=strategy,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    r = replay(trace, cfg, TRACE.stem, Progress(every_s=30.0))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    t = r.total()
    return {
        "nodes": nodes,
        "requests": len(trace),
        "wall_s": wall,
        "cpu_s": cpu,
        "req_per_s": len(trace) / wall,
        "sim_s": r.simulated_s,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "hit_rate": t.local_hit_rate,
        "counters": [n.counters() for n in r.nodes],
    }


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    )
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, nargs="*", default=[16, 64, 256])
    p.add_argument("--limit", type=int, help="only the first N requests (default: all 12,031)")
    p.add_argument("--cache-tokens", type=int, default=8192 * 16)
    p.add_argument(
        "--also",
        nargs="*",
        default=["kv_aware"],
        help="strategies also timed at 16 nodes (the node counts run round robin)",
    )
    p.add_argument(
        "--child", nargs=5, metavar=("NODES", "LIMIT", "CACHE", "TBT", "S"), help=argparse.SUPPRESS
    )
    a = p.parse_args()
    if a.child:
        nodes, limit, cache, tbt, strategy = a.child
        res = one(int(nodes), int(limit) or None, int(cache), tbt == "1", strategy)
        print(json.dumps(res))
        return 0
    fast = run_child("16", str(ANCHOR_SLICE), str(a.cache_tokens), "0", "round_robin")
    slow = run_child("16", str(ANCHOR_SLICE), str(a.cache_tokens), "1", "round_robin")
    same = fast["counters"] == slow["counters"]
    # CPU seconds: on a shared machine the wall clock of a 2 s run is mostly the neighbours'
    ratio = float(slow["cpu_s"]) / float(fast["cpu_s"])
    print(f"anchor: first {ANCHOR_SLICE} requests, 16 nodes: aggregate decode {fast['cpu_s']:.1f} CPU s, "
          f"token by token {slow['cpu_s']:.1f}: {ratio:.1f}x the CPU; counters equal: {same}")  # fmt: skip
    head = ("nodes", "strategy", "requests", "wall s", "CPU s", "req/s", "sim s/wall s", "RSS MB", "hit")
    print("{:>5} {:<11} {:>8} {:>8} {:>8} {:>7} {:>12} {:>7} {:>6}  target".format(*head))
    ok = same
    for n, strategy in [(n, "round_robin") for n in a.nodes] + [(16, s) for s in a.also]:
        r = run_child(str(n), str(a.limit or 0), str(a.cache_tokens), "0", strategy)
        wall, rss = float(r["wall_s"]), float(r["rss_mb"])
        verdict = ""
        if n == 16 and strategy == "round_robin" and not a.limit:
            met = wall <= TARGET_WALL_S and rss <= TARGET_RSS_MB
            verdict = f"{'MET' if met else 'MISSED'} (<= {TARGET_WALL_S:.0f} s, <= {TARGET_RSS_MB:.0f} MB)"
        cells = (n, strategy, r["requests"], wall, r["cpu_s"], r["req_per_s"], r["sim_s"] / wall, rss)
        row = "{:>5} {:<11} {:>8} {:>8.1f} {:>8.1f} {:>7.0f} {:>12.1f} {:>7.0f}".format(*cells)
        print(f"{row} {r['hit_rate']:>6.1%}", verdict)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
