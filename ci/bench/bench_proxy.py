"""Benchmark kvtest's proxy against the seed's proxy (ci/bench/anchors/seed_proxy.py), same nodes, same run.

Two fake vLLM processes (prefill, decode; latency model off) serve both proxies, store flow (the seed's:
prefill with max_tokens=1, then decode). The load comes from a separate process (aiohttp):
- req/s at `--concurrency` connections, streaming and not; target >= 2x the seed proxy's req/s;
- added latency at concurrency 1: one request at a time, rotating over "direct" (the client itself sends
  prefill max_tokens=1, then decode), the kvtest proxy and the seed's proxy; added = a proxy's latency
  minus the direct pair's in the same round, p50/p99 of those differences; target: added p50 <= 1 ms.

Usage: .venv/bin/python ci/bench/bench_proxy.py [--duration S] [--concurrency N]
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvtest.ports import free_port  # noqa: E402

TARGET_RPS_RATIO = 2.0
TARGET_ADDED_P50_MS = 1.0
PROMPT = "Shared context #0: This is long context. " * 24  # ~250 tokens with the fake's tokenizer


# -- load generator (its own process) -------------------------------------------------------------------
def _bodies(stream: bool) -> tuple[bytes, bytes]:
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 16, "stream": stream}
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


def cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


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
    ap.add_argument("--proxy-arg", action="append", default=[], help="extra `kvtest proxy` argument")
    args = ap.parse_args()
    print(
        f"# proxy benchmark: kvtest proxy vs the seed's proxy, store flow, fake vLLM "
        f"({os.cpu_count()} cores, Python {sys.version.split()[0]})"
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        p_port, d_port, k_port, s_port = free_port(), free_port(), free_port(), free_port()
        p_url, d_url = f"http://127.0.0.1:{p_port}", f"http://127.0.0.1:{d_port}"
        procs.append(spawn(fake_node(p_port), p_url + "/health"))
        procs.append(spawn(fake_node(d_port), d_url + "/health"))
        kvtest_cmd = [sys.executable, "-m", "kvtest", "proxy", "--port", str(k_port), "--prefill", p_url,
                      "--decode", d_url, "--flow", "store", "--strategy", "round_robin"]  # fmt: skip
        kvtest_cmd += args.proxy_arg
        procs.append(spawn(kvtest_cmd, f"http://127.0.0.1:{k_port}/health"))
        kvtest_proc = procs[-1]
        env = {**os.environ, "PREFILL_URL": p_url, "DECODE_URL": d_url, "PORT": str(s_port)}
        seed_cmd = [sys.executable, str(ROOT / "ci/bench/anchors/seed_proxy.py")]
        # The seed's proxy has no GET route: any answer below 500 (its 405/404) means it is up.
        procs.append(spawn(seed_cmd, f"http://127.0.0.1:{s_port}/v1/completions", env=env))
        proxy_procs = {"kvtest": kvtest_proc, "seed": procs[-1]}
        proxies = {"kvtest": f"http://127.0.0.1:{k_port}", "seed": f"http://127.0.0.1:{s_port}"}
        direct = f"{p_url}/v1/completions,{d_url}/v1/completions"

        ok = True
        for stream in (False, True):
            kind = "stream" if stream else "non-stream"
            targets = {"direct": direct, **{n: u + "/v1/completions" for n, u in proxies.items()}}
            lat = run_worker("latency", {"targets": targets, "duration": 3 * args.duration, "stream": stream})
            thr: dict[str, dict[str, object]] = {}
            cpu_ms: dict[str, float] = {}
            for n, u in proxies.items():
                # CPU the proxy process spends per request: the figure the machine's other load cannot skew.
                before = cpu_seconds(proxy_procs[n].pid)
                thr[n] = run_worker(
                    "throughput",
                    {"url": u + "/v1/completions", "concurrency": args.concurrency, "duration": args.duration,
                     "stream": stream},
                )  # fmt: skip
                used = cpu_seconds(proxy_procs[n].pid) - before
                cpu_ms[n] = 1000 * used / max(1, int(thr[n]["done"]) + int(thr[n]["errors"]))  # type: ignore[call-overload]
            rps = {n: float(thr[n]["rps"]) for n in proxies}  # type: ignore[arg-type]
            ratio = rps["kvtest"] / rps["seed"] if rps["seed"] else float("inf")
            cpu_ratio = cpu_ms["seed"] / cpu_ms["kvtest"] if cpu_ms["kvtest"] else float("inf")
            base: dict[str, float] = lat["direct"]  # type: ignore[assignment]
            print(f"\n## {kind}")
            b50, b99 = base["p50_ms"], base["p99_ms"]
            print(f"direct (client drives both legs, c=1): p50 {b50:.2f} ms  p99 {b99:.2f} ms")
            for n in proxies:
                one: dict[str, float] = lat[n]  # type: ignore[assignment]
                print(
                    f"{n:7s} req/s {rps[n]:7.0f} (c={args.concurrency}, {thr[n]['errors']} errors)  "
                    f"added p50 {one['added_p50_ms']:6.2f} ms  p99 {one['added_p99_ms']:6.2f} ms  "
                    f"(c=1 p50 {one['p50_ms']:.2f} ms, p99 {one['p99_ms']:.2f} ms, "
                    f"{one['n']:.0f} paired rounds)  CPU {cpu_ms[n]:.2f} ms/req"
                )
            added = lat["kvtest"]["added_p50_ms"]  # type: ignore[index]
            print(
                f"kvtest/seed req/s ratio {ratio:.2f} (target >= {TARGET_RPS_RATIO})  "
                f"kvtest added p50 {added:.2f} ms (target <= {TARGET_ADDED_P50_MS})  "
                f"seed/kvtest CPU per request {cpu_ratio:.2f}"
            )
            ok = ok and ratio >= TARGET_RPS_RATIO and added <= TARGET_ADDED_P50_MS
        print(f"\ntargets {'met' if ok else 'NOT met'}")
    finally:
        for proc in procs:
            stop(proc)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        worker_main(sys.argv[2], json.loads(sys.argv[3]))
    else:
        raise SystemExit(main())
