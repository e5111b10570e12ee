"""Benchmark kvtest's proxy against the seed's proxy (bench/anchors/seed_proxy.py), same nodes, same run.

Two fake vLLM processes (prefill, decode; latency model off) serve both proxies, store flow (the seed's:
prefill with max_tokens=1, then decode). The load comes from a separate process (aiohttp):
- req/s at `--concurrency` connections, streaming and not; target >= 2x the seed proxy's req/s;
- added latency at concurrency 1: p50/p99 through a proxy minus p50/p99 of the same two calls made
  directly by the client (prefill max_tokens=1, then decode); target: added p50 <= 1 ms.

Usage: .venv/bin/python bench/bench_proxy.py [--duration S] [--concurrency N]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kvtest.ports import free_port  # noqa: E402

TARGET_RPS_RATIO = 2.0
TARGET_ADDED_P50_MS = 1.0
PROMPT = "Shared context #0: This is long context. " * 24  # ~250 tokens with the fake's tokenizer


# -- load generator (its own process) -------------------------------------------------------------------
async def _load(mode: str, url: str, concurrency: int, duration: float, stream: bool) -> dict[str, float]:
    import aiohttp

    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 16, "stream": stream}
    full = json.dumps(body).encode()
    prefill_only = json.dumps({**body, "max_tokens": 1, "stream": False}).encode()
    done = errors = 0
    lat: list[float] = []
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers={"Content-Type": "application/json"}) as s:

        async def one() -> bool:
            if mode == "direct":  # the client drives both legs itself: prefill url, then decode url
                p_url, d_url = url.split(",")
                async with s.post(p_url, data=prefill_only) as r:
                    await r.read()
                    if r.status != 200:
                        return False
                async with s.post(d_url, data=full) as r:
                    raw = await r.read()
                    return r.status == 200 and bool(raw)
            async with s.post(url, data=full) as r:
                raw = await r.read()
                # the seed's proxy answers 200 with no body on errors: an empty body is an error here
                return r.status == 200 and bool(raw)

        async def worker(stop_at: float) -> None:
            nonlocal done, errors
            while time.monotonic() < stop_at:
                t = time.perf_counter()
                ok = await one()
                if ok:
                    done += 1
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker(time.monotonic() + min(0.5, duration)) for _ in range(concurrency)))
        done = errors = 0
        lat.clear()
        t0 = time.monotonic()
        await asyncio.gather(*(worker(t0 + duration) for _ in range(concurrency)))
        elapsed = time.monotonic() - t0
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else float("nan")

    return {"rps": done / elapsed, "done": done, "errors": errors, "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


def run_load(mode: str, url: str, concurrency: int, duration: float, stream: bool) -> dict[str, float]:
    argv = [
        sys.executable,
        __file__,
        "--load-worker",
        mode,
        url,
        str(concurrency),
        str(duration),
        str(int(stream)),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- processes ------------------------------------------------------------------------------------------
def wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def spawn(cmd: list[str], probe: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True, cwd=ROOT
    )
    try:
        wait_health(probe, proc, 30)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(8)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            os.killpg(proc.pid, 9)
            proc.wait()


def fake_node(port: int) -> list[str]:
    return [sys.executable, "-m", "simulators.vllm", "serve", "tiny",
            "--host", "127.0.0.1", "--port", str(port), "--max-num-seqs", "1024"]  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    print(
        f"# proxy benchmark: kvtest proxy vs the seed's proxy ({os.cpu_count()} cores, store flow, fake vLLM)"
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        p_port, d_port, k_port, s_port = free_port(), free_port(), free_port(), free_port()
        p_url, d_url = f"http://127.0.0.1:{p_port}", f"http://127.0.0.1:{d_port}"
        procs.append(spawn(fake_node(p_port), p_url + "/health"))
        procs.append(spawn(fake_node(d_port), d_url + "/health"))
        kvtest_cmd = [sys.executable, "-m", "kvtest", "proxy", "--port", str(k_port), "--prefill", p_url,
                      "--decode", d_url, "--flow", "store", "--strategy", "round_robin"]  # fmt: skip
        procs.append(spawn(kvtest_cmd, f"http://127.0.0.1:{k_port}/health"))
        env = {**os.environ, "PREFILL_URL": p_url, "DECODE_URL": d_url, "PORT": str(s_port)}
        seed_cmd = [sys.executable, str(ROOT / "bench/anchors/seed_proxy.py")]
        # The seed's proxy has no GET route: any answer below 500 (its 405/404) means it is up.
        procs.append(spawn(seed_cmd, f"http://127.0.0.1:{s_port}/v1/completions", env=env))
        proxies = {"kvtest": f"http://127.0.0.1:{k_port}", "seed": f"http://127.0.0.1:{s_port}"}
        direct = f"{p_url}/v1/completions,{d_url}/v1/completions"

        ok = True
        for stream in (False, True):
            kind = "stream" if stream else "non-stream"
            base = run_load("direct", direct, 1, args.duration, stream)
            lat = {
                n: run_load("proxy", u + "/v1/completions", 1, args.duration, stream)
                for n, u in proxies.items()
            }
            thr = {
                n: run_load("proxy", u + "/v1/completions", args.concurrency, args.duration, stream)
                for n, u in proxies.items()
            }
            ratio = thr["kvtest"]["rps"] / thr["seed"]["rps"] if thr["seed"]["rps"] else float("inf")
            print(f"\n## {kind}")
            b50, b99 = base["p50_ms"], base["p99_ms"]
            print(f"direct (client drives both legs, c=1): p50 {b50:.2f} ms  p99 {b99:.2f} ms")
            for n in proxies:
                added50 = lat[n]["p50_ms"] - base["p50_ms"]
                added99 = lat[n]["p99_ms"] - base["p99_ms"]
                print(
                    f"{n:7s} req/s {thr[n]['rps']:8.0f} "
                    f"(c={args.concurrency}, {thr[n]['errors']:.0f} errors)  "
                    f"added p50 {added50:6.2f} ms  added p99 {added99:6.2f} ms  "
                    f"(c=1 p50 {lat[n]['p50_ms']:.2f} ms, p99 {lat[n]['p99_ms']:.2f} ms)"
                )
            added = lat["kvtest"]["p50_ms"] - base["p50_ms"]
            print(
                f"kvtest/seed req/s ratio {ratio:.2f} (target >= {TARGET_RPS_RATIO})  "
                f"kvtest added p50 {added:.2f} ms (target <= {TARGET_ADDED_P50_MS})"
            )
            ok = ok and ratio >= TARGET_RPS_RATIO and added <= TARGET_ADDED_P50_MS
        print(f"\ntargets {'met' if ok else 'NOT met'}")
    finally:
        for proc in procs:
            stop(proc)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        mode, url, conc, dur, stream = sys.argv[2:7]
        print(json.dumps(asyncio.run(_load(mode, url, int(conc), float(dur), stream == "1"))))
    else:
        raise SystemExit(main())
