"""vllm-router (the router vLLM's project ships, PyPI `vllm-router`) through the `pd` and `errors` groups.

It is installed from PyPI into its own venv, cached under ~/.cache/kvtest/routers (KVTEST_ROUTER_VENVS).
Without PyPI the test is skipped with the pip output as the reason; KVTEST_REQUIRE=vllm-router makes that
a failure. The verdicts are pinned for the pinned version: a change in vllm-router's behaviour, or in
what a check accepts, shows up here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvtest.gating import skip_unless

from .conftest import run_and_record

VERSION = "0.1.17"
# vllm-router --help (0.1.17): PD mode, one URL per --prefill (an optional bootstrap port after it), the
# KV connector protocol, a 1 s worker health poll instead of the default 30 s before it serves, and its
# Prometheus exporter on a free port (the default port is fixed)
CMD = (
    "{venv}/bin/vllm-router --vllm-pd-disaggregation --host 127.0.0.1 --port {{port}} "
    "--prefill {{prefill}} {{bootstrap_port}} --decode {{decode}} --kv-connector {connector} "
    "--worker-startup-check-interval 1 --prometheus-port {{metrics_port}}"
)
# what 0.1.17 did on the fake nodes: disaggregates exactly (nixl fields, one leg each, KV moved, cancels
# both legs), passes statuses through, but answers malformed JSON with a text/plain 400
EXPECTED_FAILURES = {"errors.malformed_json_is_4xx_json"}


def vllm_router_venv() -> Path:
    root = Path(os.environ.get("KVTEST_ROUTER_VENVS", Path.home() / ".cache" / "kvtest" / "routers"))
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"vllm-router-{VERSION}"
    done = venv / ".kvtest-installed"  # written last: a half-installed venv is never taken for a cached one
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers share the cache
        if done.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--timeout", "30",
             f"vllm-router=={VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if pip.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            why = " | ".join((pip.stderr or pip.stdout).strip().splitlines()[-3:])
            skip_unless("vllm-router", False, f"pip install vllm-router=={VERSION} failed: {why}")
        done.touch()
    return venv


@pytest.mark.timeout(900)
@pytest.mark.parametrize("flow", ["nixl", "mooncake"])
def test_vllm_router_pd_and_errors(request: pytest.FixtureRequest, flow: str, tmp_path: Path) -> None:
    venv = vllm_router_venv()
    cmd = CMD.format(venv=venv, connector=flow)
    run = run_and_record(request, flow, ["pd", "errors"], cmd, router="vllm-router", tmp=tmp_path)
    assert len(run.results) == 11 and not [r for r in run.results if r.verdict == "n/a"]
    assert run.kv_moved == "yes"
    assert {r.id for r in run.failed} == EXPECTED_FAILURES, [(r.id, r.detail) for r in run.failed]
