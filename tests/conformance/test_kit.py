"""The kit itself: it fails routers that break the rules, and says why a router did not come up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kvtest.conformance import run_conformance
from kvtest.conformance.router import fill
from kvtest.process import ProcessExitedError

SEED = (
    f"env PREFILL_URL={{prefill}} DECODE_URL={{decode}} PORT={{port}} {sys.executable} "
    "ci/bench/anchors/seed_proxy.py"
)
ROOT = Path(__file__).resolve().parents[2]


async def test_the_seeds_proxy_moves_no_kv_on_the_nixl_flow_and_fails_the_error_rules(tmp_path: Path) -> None:
    # the seed's proxy sends no kv_transfer_params, answers errors with 200 and no body, JSON as text/html
    run = await run_conformance("nixl", ["pd", "errors"], SEED, workdir=tmp_path, cwd=ROOT)
    verdicts = {r.id: r.verdict for r in run.results}
    assert run.kv_moved == "no"
    assert verdicts["pd.one_prefill_then_one_decode"] == "pass"  # it does disaggregate the requests
    assert verdicts["pd.prefill_leg_limited"] == "fail"  # max_tokens=1 but no do_remote_decode
    assert verdicts["pd.json_answer_complete"] == "fail"  # text/html
    assert verdicts["errors.backend_4xx_passed_through"] == "fail"  # 200 with an empty body
    assert verdicts["errors.prefill_5xx_is_5xx"] == "fail"


async def test_a_router_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ProcessExitedError, match="no such flag --port"):
        await run_conformance(
            "store", ["pd"], "echo 'no such flag --port {port}' >&2; exit 3", workdir=tmp_path
        )


def test_placeholders_are_filled_and_other_braces_kept() -> None:
    cmd = fill(
        "r --port {port} --p {prefill} --cfg '{\"a\": 1}' {unknown}", {"port": "9", "prefill": "http://h:1"}
    )
    assert cmd == "r --port 9 --p http://h:1 --cfg '{\"a\": 1}' {unknown}"
