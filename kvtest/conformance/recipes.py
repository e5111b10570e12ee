"""How to rate each known P/D router: where it comes from, its --proxy-cmd, the flow, the nodes' roles.

A recipe is data, not vendored code: the routers are installed from PyPI or run from their projects'
checkouts. `runnable()` says why a row cannot run on this machine (ci/bench/bench_proxy.py runs every row
that can; kvtest/conformance/README.md prints the table). Locations come from the environment:
- KVTEST_VLLM_ROUTER: the vllm-router executable (default: the venv tests/conformance/test_vllm_router.py
  caches, ~/.cache/kvtest/routers/vllm-router-0.1.17/bin/vllm-router);
- KVTEST_SGLANG_ROUTER_PYTHON: a python with `pip install sglang-router==0.3.2`;
- KVTEST_EXAMPLES_PYTHON: a python with fastapi, uvicorn and httpx (vLLM's and Mooncake's example proxies;
  for Mooncake's, also the mooncake-transfer-engine wheel that ships it);
- KVTEST_VLLM_SRC: a vLLM source checkout (the example proxies are not in the vllm wheel).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from kvtest.conformance.router import kvtest_proxy_cmd

ROOT = Path(__file__).resolve().parents[2]
ROUTER_VENVS = Path(os.environ.get("KVTEST_ROUTER_VENVS", Path.home() / ".cache" / "kvtest" / "routers"))


@dataclass(frozen=True)
class Recipe:
    name: str
    flow: str
    get: str  # how to install it or where it lives
    cmd: str  # --proxy-cmd, with ${VAR} for the locations above
    roles: str  # the KV connector roles the fake nodes take
    note: str = ""

    def command(self) -> str:
        env = {
            "PY": shlex.quote(sys.executable),
            "ROOT": str(ROOT),
            "KVTEST_VLLM_ROUTER": os.environ.get(
                "KVTEST_VLLM_ROUTER", str(ROUTER_VENVS / "vllm-router-0.1.17" / "bin" / "vllm-router")
            ),
        }
        out = self.cmd
        for key in ("KVTEST_SGLANG_ROUTER_PYTHON", "KVTEST_EXAMPLES_PYTHON", "KVTEST_VLLM_SRC"):
            env[key] = os.environ.get(key, "")
        for key, value in env.items():
            out = out.replace("${" + key + "}", value)
        return out

    def runnable(self) -> str | None:
        """None when this row can run here, else why not."""
        if self.flow == "sglang":
            return "flow sglang is not applicable on vLLM-shaped nodes (kvtest/conformance/README.md)"
        for var in ("KVTEST_SGLANG_ROUTER_PYTHON", "KVTEST_EXAMPLES_PYTHON", "KVTEST_VLLM_SRC"):
            if "${" + var + "}" in self.cmd and not os.environ.get(var):
                return f"set {var}"
        if "${KVTEST_VLLM_ROUTER}" in self.cmd and not Path(self.command().split()[0]).exists():
            return "no vllm-router: run tests/conformance/test_vllm_router.py once, or set KVTEST_VLLM_ROUTER"
        return None


_VLLM_ROUTER = (
    "${KVTEST_VLLM_ROUTER} --vllm-pd-disaggregation --host 127.0.0.1 --port {port} --prefill {prefill} "
    "{bootstrap_port} --decode {decode} --worker-startup-check-interval 1 --prometheus-port {metrics_port} "
    "--kv-connector "
)
_TOY_ARGS = (
    "--host 127.0.0.1 --port {port} --prefiller-hosts {prefill_host} --prefiller-ports {prefill_port} "
    "--decoder-hosts {decode_host} --decoder-ports {decode_port}"
)
_NODES_P2P = "prefill kv_producer, decode kv_consumer"

RECIPES: list[Recipe] = [
    *(
        Recipe(f"kvtest-{f}", f, "this repository (`kvtest proxy`)", kvtest_proxy_cmd(f), r)
        for f, r in (
            ("nixl", "NixlConnector: " + _NODES_P2P),
            ("mooncake", "MooncakeConnector: " + _NODES_P2P),
            ("store", "MooncakeStoreConnector: " + _NODES_P2P + ", mock master"),
        )
    ),
    Recipe(
        "seed",
        "store",
        "ci/bench/anchors/seed_proxy.py (the seed's proxy_server.py; needs quart, aiohttp)",
        "env PREFILL_URL={prefill} DECODE_URL={decode} PORT={port} "
        "${PY} ${ROOT}/ci/bench/anchors/seed_proxy.py",
        "MooncakeStoreConnector: " + _NODES_P2P + ", mock master",
    ),
    Recipe(
        "vllm-router-nixl",
        "nixl",
        "pip install vllm-router==0.1.17 (own venv)",
        _VLLM_ROUTER + "nixl",
        "NixlConnector: " + _NODES_P2P,
    ),
    Recipe(
        "vllm-router-mooncake",
        "mooncake",
        "pip install vllm-router==0.1.17 (own venv)",
        _VLLM_ROUTER + "mooncake",
        "MooncakeConnector: " + _NODES_P2P,
        "queries the prefill's bootstrap /query once at start-up",
    ),
    Recipe(
        "sglang-router",
        "sglang",
        "pip install sglang-router==0.3.2 (own venv)",
        "${KVTEST_SGLANG_ROUTER_PYTHON} -m sglang_router.launch_router --pd-disaggregation --host 127.0.0.1 "
        "--port {port} --prefill {prefill} {bootstrap_port} --decode {decode} "
        "--worker-startup-check-interval 1 --prometheus-port {metrics_port}",
        "n/a",
        "SGLang's bootstrap protocol needs SGLang-shaped nodes; on vLLM nodes (--flow nixl) it sends the "
        "whole request to both at once: pd 3/6, KV moved no",
    ),
    Recipe(
        "toy_proxy_server.py",
        "nixl",
        "vLLM checkout: tests/v1/kv_connector/nixl_integration/toy_proxy_server.py (fastapi, uvicorn, httpx)",
        "${KVTEST_EXAMPLES_PYTHON} ${KVTEST_VLLM_SRC}/tests/v1/kv_connector/nixl_integration/"
        "toy_proxy_server.py " + _TOY_ARGS,
        "NixlConnector: " + _NODES_P2P,
    ),
    Recipe(
        "disagg_proxy_demo.py",
        "store",
        "vLLM checkout: examples/online_serving/disaggregated_serving/disagg_proxy_demo.py",
        "${KVTEST_EXAMPLES_PYTHON} ${KVTEST_VLLM_SRC}/examples/online_serving/disaggregated_serving/"
        "disagg_proxy_demo.py --model tiny-llama-pd --prefill {prefill_host}:{prefill_port} "
        "--decode {decode_host}:{decode_port} --port {port}",
        "MooncakeStoreConnector: " + _NODES_P2P + ", mock master",
    ),
    Recipe(
        "mooncake_connector_proxy.py",
        "mooncake",
        "vLLM checkout: examples/online_serving/disaggregated_serving/mooncake_connector/",
        "${KVTEST_EXAMPLES_PYTHON} ${KVTEST_VLLM_SRC}/examples/online_serving/disaggregated_serving/"
        "mooncake_connector/mooncake_connector_proxy.py --host 127.0.0.1 --port {port} "
        "--prefill {prefill} {bootstrap_port} --decode {decode}",
        "MooncakeConnector: " + _NODES_P2P,
    ),
    Recipe(
        "mooncake-vllm_v1_proxy_server",
        "nixl",
        "the mooncake-transfer-engine wheel: python -m mooncake.vllm_v1_proxy_server "
        "(+ fastapi, uvicorn, httpx)",
        "${KVTEST_EXAMPLES_PYTHON} -m mooncake.vllm_v1_proxy_server " + _TOY_ARGS,
        "NixlConnector: " + _NODES_P2P,
        "the toy proxy's protocol (prefill max_tokens=1 with do_remote_decode, then its kv_transfer_params "
        "to decode), so it is rated on the nixl flow",
    ),
]


def recipe(name: str) -> Recipe:
    for r in RECIPES:
        if r.name == name:
            return r
    raise ValueError(f"unknown recipe {name!r}; known: {', '.join(r.name for r in RECIPES)}")
