"""KV connectors a cluster file's nodes may name (`connector:`), by vLLM's kv_connector name.

A new connector is one module here with a KVConnector subclass (base.py: its traits and what it adds
to a node's launch) plus one entry below; the cluster schema, the renderer, the P/D expectations and
the experiments read everything they need from it. The fake vLLM models connectors separately, in
simulators/vllm/connectors/ (its own registry), since simulators never import kvtest.
"""

from __future__ import annotations

from kvtest.cluster.connectors.base import KVConnector, NodeSetup
from kvtest.cluster.connectors.example import ExampleConnector
from kvtest.cluster.connectors.mooncake import MooncakeConnector
from kvtest.cluster.connectors.mooncake_store import MooncakeStoreConnector
from kvtest.cluster.connectors.nixl import NixlConnector

__all__ = ["CONNECTORS", "KVConnector", "NodeSetup", "connector"]

CONNECTORS: dict[str, KVConnector] = {
    c.name: c
    for c in (
        MooncakeStoreConnector(),
        MooncakeConnector(),
        NixlConnector(),
        ExampleConnector(),
    )
}


def connector(name: str | None) -> KVConnector | None:
    """The registered connector called `name`; None for None (a node without a connector)."""
    if name is None:
        return None
    try:
        return CONNECTORS[name]
    except KeyError:
        raise ValueError(f"unknown connector {name!r} (registered: {', '.join(CONNECTORS)})") from None
