"""Connectors, strategies and flows are registry entries: the cluster schema takes its allowed names
from the registries (and lists them when a file names another), and adding one is one module plus one
entry, which is what these tests do (the entry is added for the test only)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from kvtest.cluster.connectors import CONNECTORS, KVConnector, NodeSetup
from kvtest.cluster.pd_run import expected_external_hits
from kvtest.cluster.render import render
from kvtest.cluster.schema import ClusterFileError, parse_cluster
from kvtest.proxy import PDProxy, ProxyConfig
from kvtest.proxy.cli import build_parser
from kvtest.proxy.config import Node
from kvtest.proxy.flows import FLOWS
from kvtest.proxy.flows.store import StoreFlow
from kvtest.proxy.routing import Router
from kvtest.proxy.strategies import STRATEGIES
from simulators.vllm.connectors import CONNECTORS as FAKE_CONNECTORS

ROOT = Path(__file__).resolve().parents[2]


def cluster(connector: str | None = None, strategy: str = "round_robin", flow: str = "store") -> dict:
    return {
        "name": "t",
        "hosts": [{"name": "h"}],
        "mooncake_master": {"impl": "mock", "host": "h"},
        "node_defaults": {"host": "h", "model": "m", "impl": "fake", "connector": connector},
        "nodes": [{"name": "p0", "role": "prefill"}, {"name": "d0", "role": "decode"}],
        "proxy": {"host": "h", "strategy": strategy, "flow": flow},
    }


@pytest.mark.parametrize(
    ("field", "data", "names"),
    [
        ("nodes[0] (p0).connector", cluster(connector="LMCacheConnectorV1"), CONNECTORS),
        ("proxy.strategy", cluster(strategy="least_loaded"), STRATEGIES),
        ("proxy.flow", cluster(flow="p2p_nccl"), FLOWS),
    ],
)
def test_an_unregistered_name_is_refused_with_the_registered_ones(
    field: str, data: dict, names: dict[str, Any]
) -> None:
    with pytest.raises(ClusterFileError) as exc:
        parse_cluster(data, "c.yaml")
    message = str(exc.value)
    assert message.startswith(f"c.yaml: {field}: unknown ")
    assert f"(registered: {', '.join(names)})" in message


class _LoudConnector(KVConnector):
    """A made-up connector that goes through the store and names its node in an env variable."""

    name = "LoudConnector"
    uses_store = True
    reads_mooncake_json = True
    transfers_whole_prompt = True

    def configure(self, setup: NodeSetup) -> None:
        setup.env["LOUD_NODE"] = setup.node.name
        setup.extra["loudness"] = 11


def test_a_connector_is_one_class_and_one_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(CONNECTORS, "LoudConnector", _LoudConnector())
    data = cluster(connector="LoudConnector")
    plan = render(parse_cluster(data), tmp_path)
    p0 = next(la for la in plan.launches if la.name == "p0")
    kv = json.loads(p0.argv[p0.argv.index("--kv-transfer-config") + 1])
    assert kv == {
        "kv_connector": "LoudConnector",
        "kv_role": "kv_producer",
        "kv_connector_extra_config": {"loudness": 11},
    }
    assert p0.env["LOUD_NODE"] == "p0" and p0.env["MOONCAKE_CONFIG_PATH"] in p0.files
    assert expected_external_hits("LoudConnector", 100, 16) == 100  # its trait, read by pd_run
    # its store trait: the schema asks for a master
    del data["mooncake_master"]
    with pytest.raises(ClusterFileError, match="nodes use LoudConnector but there is no mooncake_master"):
        parse_cluster(data)


class _LastNode:
    """A made-up strategy: always the last node of each role."""

    def __init__(self, router: Router) -> None:
        self.router = router

    def prefill(self, body: dict[str, Any]) -> Node:
        return self.router.prefill[-1]

    def decode(self, body: dict[str, Any]) -> Node:
        return self.router.decode[-1]


def test_a_strategy_is_one_class_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES, "last", _LastNode)
    assert parse_cluster(cluster(strategy="last")).proxy.strategy == "last"  # type: ignore[union-attr]
    assert "last" in build_parser().format_help()
    config = ProxyConfig(prefill=["a:1", "b:2"], decode=["c:3", "d:4"], strategy="last")
    prefill, decode = Router(config).pick({"prompt": "x"}, None)
    assert (prefill.hostport, decode.hostport) == ("b:2", "d:4")


class _QuietFlow(StoreFlow):
    """A made-up flow (the store flow under another name)."""


def test_a_flow_is_one_class_and_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FLOWS, "quiet", _QuietFlow)
    assert parse_cluster(cluster(flow="quiet")).proxy.flow == "quiet"  # type: ignore[union-attr]
    assert "quiet" in build_parser().format_help()
    assert isinstance(PDProxy(ProxyConfig(prefill=["a:1"], decode=["b:2"], flow="quiet")).flow, _QuietFlow)
    with pytest.raises(
        ValueError, match="unknown flow 'loud' \\(choose from store, nixl, mooncake, quiet\\)"
    ):
        ProxyConfig(prefill=["a:1"], decode=["b:2"], flow="loud")


def test_the_fake_vllm_models_every_connector_a_cluster_file_may_name() -> None:
    assert set(CONNECTORS) <= set(FAKE_CONNECTORS)


def test_simulators_never_import_kvtest() -> None:
    """The layers run one way: kvtest builds on simulators/, never the reverse."""
    offenders = []
    for path in sorted((ROOT / "simulators").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "kvtest"]
    assert not offenders
