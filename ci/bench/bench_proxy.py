"""Rate and time every P/D router recipe runnable here (kvtest/conformance/recipes.py), in one run.

For each router command (the recipes, or `--router NAME=FLOW:CMD` for any other):
- conformance: `kvtest conformance` groups pd and errors (plus kvtest and designate for kvtest's proxy) on
  its own fake nodes with the flow's KV connector: pass/total per group, and whether KV moved;
- performance over the same two fake vLLM processes (prefill, decode; NixlConnector, latency model off),
  all routers up at once, load from a separate process (aiohttp):
  - req/s at `--concurrency` connections (default 32);
  - added latency at concurrency 1: one request at a time, rotating over "direct" (the client itself sends
    prefill max_tokens=1, then decode) and every router; added = a router's latency minus the direct
    pair's in the same round, p50/p99 of those differences;
  - CPU per request: the router's process tree's CPU seconds over the requests it served.
The seed's proxy is the anchor: kvtest's req/s must be >= 2x the seed's, its added p50 <= 1 ms.
Flow mooncake rows are rated but not timed (their routers need a bootstrap server the plain nodes lack).

Usage: .venv/bin/python ci/bench/bench_proxy.py [--duration S] [--concurrency N] [--router NAME=FLOW:CMD]
       [--only NAME,...] [--no-conformance]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvtest.conformance import run_conformance  # noqa: E402
from kvtest.conformance.backends import SERVED_MODEL  # noqa: E402
from kvtest.conformance.check import GROUPS  # noqa: E402
from kvtest.conformance.recipes import RECIPES  # noqa: E402
from kvtest.conformance.router import fill  # noqa: E402
from kvtest.ports import free_port  # noqa: E402
from kvtest.process import ManagedProcess, ProcessExitedError, ReadyTimeoutError  # noqa: E402

LOG_DIR = Path(tempfile.mkdtemp(prefix="kvtest-bench-proxy-"))

TARGET_RPS_RATIO = 2.0
TARGET_ADDED_P50_MS = 1.0
PROMPT = "Shared context #0: This is long context. " * 24  # ~250 tokens with the fake's tokenizer


# -- load generator (its own process) -------------------------------------------------------------------
def _bodies(stream: bool) -> tuple[bytes, bytes]:
    body = {"model": SERVED_MODEL, "prompt": PROMPT, "max_tokens": 16, "stream": stream}
    return json.dumps(body).encode(), json.dumps({**body, "max_tokens": 1, "stream": False}).encode()


async def _one(s: object, url: str, full: bytes, prefill_only: bytes) -> bool:
    """One request; a `url` "P,D" means the client drives both legs (prefill max_tokens=1, then decode)."""
    import aiohttp

    assert isinstance(s, aiohttp.ClientSession)
    if "," in url:
        p_url, d_url = url.split(",")
        async with s.post(p_url, data=prefill_only) as r:
            await r.read()
            if r.status != 200:
                return False
        url = d_url
    async with s.post(url, data=full) as r:
        raw = await r.read()
        # the seed's proxy answers 200 with no body on errors: an empty body counts as an error here
        return r.status == 200 and bool(raw)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


async def _throughput(url: str, concurrency: int, duration: float, stream: bool) -> dict[str, float]:
    import aiohttp

    full, prefill_only = _bodies(stream)
    done = errors = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": "application/json"}) as s:

        async def worker(stop_at: float) -> None:
            nonlocal done, errors
            while time.monotonic() < stop_at:
                if await _one(s, url, full, prefill_only):
                    done += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker(time.monotonic() + min(0.5, duration)) for _ in range(concurrency)))
        done = errors = 0
        t0 = time.monotonic()
        await asyncio.gather(*(worker(t0 + duration) for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    return {"rps": done / elapsed, "done": done, "errors": errors}


async def _latency(targets: dict[str, str], duration: float, stream: bool) -> dict[str, dict[str, float]]:
    """One request at a time, the targets in turn, so slow drifts of the machine hit all of them alike.

    Added latency of a proxy = its latency minus the direct pair's in the same round (paired differences).
    """
    import aiohttp

    full, prefill_only = _bodies(stream)
    lat: dict[str, list[float]] = {name: [] for name in targets}
    errors = dict.fromkeys(targets, 0)
    async with aiohttp.ClientSession(headers={"Content-Type": "application/json"}) as s:
        for warm in (True, False):
            stop_at = time.monotonic() + (min(0.5, duration) if warm else duration)
            while time.monotonic() < stop_at:
                for name, url in targets.items():
                    t = time.perf_counter()
                    ok = await _one(s, url, full, prefill_only)
                    if warm:
                        continue
                    if ok:
                        lat[name].append(time.perf_counter() - t)
                    else:
                        errors[name] += 1
                        lat[name].append(float("nan"))
    out: dict[str, dict[str, float]] = {}
    for name in targets:
        pairs = [a - b for a, b in zip(lat[name], lat["direct"], strict=True) if a == a and b == b]
        out[name] = {
            "p50_ms": _pct([x for x in lat[name] if x == x], 0.5),
            "p99_ms": _pct([x for x in lat[name] if x == x], 0.99),
            "added_p50_ms": _pct(pairs, 0.5),
            "added_p99_ms": _pct(pairs, 0.99),
            "errors": errors[name],
            "n": len(pairs),
        }
    return out


def run_worker(kind: str, payload: dict[str, object]) -> dict[str, object]:
    argv = [sys.executable, __file__, "--load-worker", kind, json.dumps(payload)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def worker_main(kind: str, payload: dict[str, object]) -> None:
    if kind == "throughput":
        res: object = asyncio.run(_throughput(**payload))  # type: ignore[arg-type]
    else:
        res = asyncio.run(_latency(**payload))  # type: ignore[arg-type]
    print(json.dumps(res))


# -- processes ------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += float(t.user + t.system)
    except psutil.Error:
        pass
    return total


def fake_node(port: int, role: str) -> list[str]:
    # NixlConnector nodes serve both kinds of router: a nixl router's legs move KV over the side channel,
    # a store-flow router's legs (no kv_transfer_params) are plain requests
    kv = json.dumps({"kv_connector": "NixlConnector", "kv_role": role})
    # the byte-tokenizer model "tiny": the nodes should cost little next to the routers they time
    return [sys.executable, "-m", "simulators.vllm", "serve", "tiny",
            "--served-model-name", SERVED_MODEL, "--host", "127.0.0.1", "--port", str(port),
            "--max-num-seqs", "1024", "--kv-transfer-config", kv]  # fmt: skip


def start(name: str, argv: list[str], probe: str, env: dict[str, str] | None = None) -> ManagedProcess:
    proc = ManagedProcess(name, argv, env=env, cwd=ROOT, log_path=LOG_DIR / f"{name}.log").start()
    try:
        proc.wait_ready(lambda: answers(probe), 60, interval=0.1)
    except BaseException:
        proc.stop()
        raise
    return proc


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Row:
    name: str
    flow: str
    cmd: str
    groups: list[str]
    rated: dict[str, str] = field(default_factory=dict)  # group -> "p/t"
    kv_moved: str = "-"
    perf: dict[str, float] = field(default_factory=dict)
    why_not_timed: str = ""

    def reproduce(self) -> str:
        base = f"kvtest conformance --flow {self.flow} --groups {','.join(self.groups)}"
        return base if self.name.startswith("kvtest") else f"{base} --proxy-cmd {shlex.quote(self.cmd)}"


def rows_from(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    rows, skipped = [], []
    only = set(args.only.split(",")) if args.only else None
    for r in RECIPES:
        if only and r.name not in only:
            continue
        why = r.runnable()
        if why:
            skipped.append(f"{r.name}: {why}")
            continue
        groups = list(GROUPS) if r.name.startswith("kvtest") else ["pd", "errors"]
        rows.append(Row(r.name, r.flow, r.command(), groups))
    for spec in args.router:
        name, _, rest = spec.partition("=")
        flow, _, cmd = rest.partition(":")
        rows.append(Row(name, flow, cmd, ["pd", "errors"]))
    return rows, skipped


def rate(rows: list[Row]) -> None:
    for row in rows:
        print(f"rating {row.name} ({row.flow}) ...", file=sys.stderr, flush=True)
        try:
            run = asyncio.run(run_conformance(row.flow, row.groups, row.cmd, router=row.name,
                                              workdir=LOG_DIR / f"conformance-{row.name}"))  # fmt: skip
        except (ProcessExitedError, ReadyTimeoutError) as e:
            row.rated = {g: "did not start" for g in row.groups}
            print(f"  {row.name}: {str(e).splitlines()[0]}", file=sys.stderr)
            continue
        row.rated = {g: f"{p}/{t}" for g, (p, t) in run.by_group().items()}
        row.kv_moved = run.kv_moved


def time_rows(rows: list[Row], args: argparse.Namespace) -> None:
    timed = [r for r in rows if r.flow != "mooncake"]
    for r in rows:
        if r.flow == "mooncake":
            r.why_not_timed = "needs a bootstrap server"
    procs: list[ManagedProcess] = []
    try:
        p_port, d_port = free_port(), free_port()
        p_url, d_url = f"http://127.0.0.1:{p_port}", f"http://127.0.0.1:{d_port}"
        env = {"VLLM_NIXL_SIDE_CHANNEL_PORT": "0", "PYTHONHASHSEED": "0"}
        procs.append(start("prefill", fake_node(p_port, "kv_producer"), p_url + "/health", env))
        procs.append(start("decode", fake_node(d_port, "kv_consumer"), d_url + "/health", env))
        values = {"prefill": p_url, "decode": d_url, "prefill_host": "127.0.0.1",
                  "prefill_port": str(p_port), "decode_host": "127.0.0.1", "decode_port": str(d_port),
                  "bootstrap_port": "8998"}  # fmt: skip
        urls: dict[str, str] = {}
        running: dict[str, ManagedProcess] = {}
        for r in timed:
            port = free_port()
            cmd = fill(r.cmd, values | {"port": str(port), "metrics_port": str(free_port())})
            try:
                running[r.name] = start(r.name, ["/bin/sh", "-c", cmd], f"http://127.0.0.1:{port}/v1/models")
            except (ProcessExitedError, ReadyTimeoutError) as e:
                r.why_not_timed = str(e).splitlines()[0][:80]
                continue
            procs.append(running[r.name])
            urls[r.name] = f"http://127.0.0.1:{port}/v1/completions"
        direct = f"{p_url}/v1/completions,{d_url}/v1/completions"
        lat = run_worker("latency", {"targets": {"direct": direct, **urls}, "duration": 3 * args.duration,
                                     "stream": False})  # fmt: skip
        base: dict[str, float] = lat["direct"]  # type: ignore[assignment]
        print(
            f"direct (client drives both legs, c=1): p50 {base['p50_ms']:.2f} ms  p99 {base['p99_ms']:.2f} ms"
        )
        for r in timed:
            if r.name not in urls:
                continue
            pid = running[r.name].pid
            assert pid is not None
            before = cpu_seconds(pid)
            thr = run_worker("throughput", {"url": urls[r.name], "concurrency": args.concurrency,
                                            "duration": args.duration, "stream": False})  # fmt: skip
            served = max(1, int(thr["done"]) + int(thr["errors"]))  # type: ignore[call-overload]
            one: dict[str, float] = lat[r.name]  # type: ignore[assignment]
            r.perf = {"rps": float(thr["rps"]), "errors": float(thr["errors"]),  # type: ignore[arg-type]
                      "added_p50_ms": one["added_p50_ms"], "added_p99_ms": one["added_p99_ms"],
                      "cpu_ms": 1000 * (cpu_seconds(pid) - before) / served}  # fmt: skip
    finally:
        for proc in reversed(procs):
            proc.stop()


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    groups = list(GROUPS)
    head = ["router", "flow", *groups, "KV moved", f"req/s c={args.concurrency}", "added p50 ms",
            "added p99 ms", "CPU ms/req"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        perf = r.perf
        timing = (
            [f"{perf['rps']:.0f}" + (f" ({perf['errors']:.0f} err)" if perf["errors"] else ""),
             f"{perf['added_p50_ms']:.2f}", f"{perf['added_p99_ms']:.2f}", f"{perf['cpu_ms']:.2f}"]
            if perf else [f"not timed: {r.why_not_timed}", "", "", ""]
        )  # fmt: skip
        cells = [r.name, r.flow, *(r.rated.get(g, "-") for g in groups), r.kv_moved, *timing]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n" + "\n".join(lines))
    print("\nreproduce (conformance):")
    for r in rows:
        print(f"  {r.name}: {r.reproduce()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--router", action="append", default=[], metavar="NAME=FLOW:CMD",
                    help="another router command (placeholders as in kvtest conformance)")  # fmt: skip
    ap.add_argument("--only", help="recipe names, comma-separated")
    ap.add_argument("--no-conformance", action="store_true")
    args = ap.parse_args()
    print(f"# P/D routers: conformance and overhead on fake vLLM ({os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]})")  # fmt: skip
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    rows, skipped = rows_from(args)
    for why in skipped:
        print(f"not runnable here: {why}")
    if not args.no_conformance:
        rate(rows)
    time_rows(rows, args)
    print_table(rows, args)
    by = {r.name: r.perf for r in rows}
    k, s = by.get("kvtest-store"), by.get("seed")
    if k and s:
        ratio = k["rps"] / s["rps"] if s["rps"] else float("inf")
        ok = ratio >= TARGET_RPS_RATIO and k["added_p50_ms"] <= TARGET_ADDED_P50_MS
        print(f"\nanchor: kvtest-store/seed req/s {ratio:.2f} (target >= {TARGET_RPS_RATIO}), "
              f"kvtest added p50 {k['added_p50_ms']:.2f} ms (target <= {TARGET_ADDED_P50_MS}), "
              f"seed/kvtest CPU per request "
              f"{s['cpu_ms'] / k['cpu_ms']:.2f}; targets {'met' if ok else 'NOT met'}")  # fmt: skip
    print(f"logs: {LOG_DIR}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        worker_main(sys.argv[2], json.loads(sys.argv[3]))
    else:
        raise SystemExit(main())
