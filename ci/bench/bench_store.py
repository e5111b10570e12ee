"""Benchmark the mock Mooncake store against the real one (mooncake 0.3.13.post1), same run, same shape.

For each impl: a master process, a storage process that only mounts a segment (256 MiB), a writer and a
reader process that mount none (global_segment_size=0), so every put and every get crosses processes:
writer -> storage -> reader, over loopback TCP (the real one: its transfer engine's TCP transport).
Figures: is_exist ops/s (one client, sequential), put and get MB/s for 1 MiB and 16 MiB values, and the
master's RSS at the end, as the median of --rounds rounds that alternate mock and real (the machine is
shared: interleaving spreads a noisy neighbour over both). Targets: mock >= 5,000 is_exist/s, mock >= 0.3x
the real put/get MB/s.

Usage: .venv/bin/python ci/bench/bench_store.py [--seconds S] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from kvtest.services import MooncakeMaster, mooncake_master_binary  # noqa: E402
from kvtest.store import real_store_available  # noqa: E402

MB = 1 << 20
SIZES = {"1MiB": (1 * MB, 64), "16MiB": (16 * MB, 6)}  # value size, values per round
TARGET_EXISTS = 5000.0
TARGET_RATIO = 0.3


# -- worker processes ---------------------------------------------------------------------------------
def worker(argv: list[str]) -> int:
    role, impl, addr, seconds, rep = argv[0], argv[1], argv[2], float(argv[3]), argv[4]
    from kvtest.store import store_class

    store = store_class(impl)()  # type: ignore[arg-type]
    segment = 256 * MB if role == "storage" else 0
    code = store.setup("127.0.0.1", "P2PHANDSHAKE", segment, 32 * MB, "tcp", "", addr)
    if code != 0:
        print(json.dumps({"error": f"setup {code}"}), flush=True)
        return 1
    out: dict[str, float] = {}
    if role == "storage":
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.read()  # serve the segment until the parent closes our stdin
        os._exit(0)  # skip close(): it holds the GIL ~2 s in the real client
    for name, (size, count) in SIZES.items():
        keys = [f"{rep}-{name}-{i}" for i in range(count)]
        if role == "writer":
            value = os.urandom(size)
            t0 = time.perf_counter()
            for k in keys:
                assert store.put(k, value) == 0
            out[f"put_{name}_MBps"] = size * count / MB / (time.perf_counter() - t0)
        else:
            t0 = time.perf_counter()
            for k in keys:
                assert len(store.get(k)) == size
            out[f"get_{name}_MBps"] = size * count / MB / (time.perf_counter() - t0)
    if role == "reader":
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(200):
                store.is_exist(f"{rep}-1MiB-0")
            n += 200
        out["is_exist_ops"] = n / (time.perf_counter() - t0)
        store.remove_all(True)  # room for the next round
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    os._exit(0)


def spawn(role: str, impl: str, addr: str, seconds: float, log: Path, rep: int = 0) -> subprocess.Popen[str]:
    env = os.environ | {"MC_TCP_BIND_ADDRESS": "127.0.0.1", "MC_STORE_CLIENT_SETUP_RETRIES": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", role, impl, addr, str(seconds), str(rep)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, env=env, cwd=ROOT,
    )  # fmt: skip


class Side:
    """One impl's master and storage process, kept up across rounds."""

    def __init__(self, impl: str, seconds: float, run_dir: Path) -> None:
        self.impl, self.seconds, self.run_dir = impl, seconds, run_dir
        self.master = MooncakeMaster(impl, {}, log_dir=run_dir).start()  # type: ignore[arg-type]
        self.storage = spawn("storage", impl, self.master.rpc_addr, seconds, run_dir / f"storage-{impl}.log")
        assert self.storage.stdout is not None
        ready = json.loads(self.storage.stdout.readline() or '{"error": "storage died"}')
        if "error" in ready:
            self.close()
            raise RuntimeError(f"{impl} storage: {ready}")

    def round(self, rep: int) -> dict[str, float]:
        res: dict[str, float] = {}
        for role in ("writer", "reader"):
            log = self.run_dir / f"{role}-{self.impl}.log"
            p = spawn(role, self.impl, self.master.rpc_addr, self.seconds, log, rep)
            stdout, _ = p.communicate(timeout=300)
            line = stdout.strip().splitlines()[-1] if stdout.strip() else '{"error": "no output"}'
            got = json.loads(line)
            if "error" in got:
                raise RuntimeError(f"{self.impl} {role}: {got}")
            res |= got
        res["master_rss_MB"] = self.master.rss_bytes() / MB
        return res

    def close(self) -> None:
        self.storage.kill()
        self.storage.wait()
        self.master.stop()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--worker":
        return worker(args[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="is_exist loop length")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved mock/real rounds (median reported)")
    opts = ap.parse_args(args)
    run_dir = Path(os.environ.get("KVTEST_RUN_DIR", "/tmp")) / f"bench-store-{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    impls = ["mock"]
    ok, reason = real_store_available()
    if ok and mooncake_master_binary():
        impls.append("real")
    else:
        print(f"real store not available ({reason}): mock figures only, no ratios")
    sides = {impl: Side(impl, opts.seconds, run_dir) for impl in impls}
    rounds: dict[str, list[dict[str, float]]] = {impl: [] for impl in impls}
    try:
        for rep in range(opts.rounds):  # interleaved, so a noisy neighbour hits both sides alike
            for impl in impls:
                rounds[impl].append(sides[impl].round(rep))
    finally:
        for side in sides.values():
            side.close()
    results = {impl: {n: statistics.median(r[n] for r in rs) for n in rs[0]} for impl, rs in rounds.items()}
    print(f"median of {opts.rounds} interleaved rounds")
    names = list(results["mock"])
    print(
        f"{'metric':<22}"
        + "".join(f"{impl:>12}" for impl in results)
        + ("   mock/real" if "real" in results else "")
    )
    for n in names:
        row = f"{n:<22}" + "".join(f"{results[i][n]:>12.1f}" for i in results)
        if "real" in results:
            row += f"   {results['mock'][n] / results['real'][n]:>9.2f}x"
        print(row)
    exists = results["mock"]["is_exist_ops"]
    verdicts = [
        f"mock is_exist {exists:.0f}/s {'>=' if exists >= TARGET_EXISTS else '<'} target {TARGET_EXISTS:.0f}"
    ]
    if "real" in results:
        for n in names:
            if n.endswith("MBps"):
                ratio = results["mock"][n] / results["real"][n]
                verdicts.append(
                    f"{n}: mock/real {ratio:.2f}x {'>=' if ratio >= TARGET_RATIO else '<'} {TARGET_RATIO}x"
                )
    print("\n".join(verdicts))
    print(f"logs: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
