"""What kvtest needs to know about a KV connector to run a node with it (vLLM's --kv-transfer-config
kv_connector names it): whether it goes through the Mooncake store, whether it reads mooncake.json,
how much of a prompt decode takes from outside, and what it adds to a node's config, env and ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from kvtest.cluster.schema import ClusterSpec, Node


@dataclass
class NodeSetup:
    """One node's connector settings while its launch is rendered; `configure` adds to them."""

    spec: ClusterSpec
    node: Node
    extra: dict[str, Any]  # kv_connector_extra_config
    env: dict[str, str]
    ports: list[int]  # ports the node holds (freed again after teardown)
    lookup_ports: dict[str, int]  # per host: the last lookup_rpc_port handed out
    port: Callable[[int | None], int]  # the given port, or a free one


class KVConnector:
    name: ClassVar[str]
    # moves KV through the Mooncake store: needs a mooncake_master section; decode's external hits
    # are the stored full blocks (the expectation model's "store" connector)
    uses_store: ClassVar[bool] = False
    # reads mooncake.json (MOONCAKE_CONFIG_PATH), which kvtest writes per node
    reads_mooncake_json: ClassVar[bool] = False
    # moves a request's KV from its own prefill (kv_transfer_params / transfer_id), so decode's
    # external hits are the whole prompt, not only the full blocks of its first n-1 tokens
    transfers_whole_prompt: ClassVar[bool] = False

    def configure(self, setup: NodeSetup) -> None:
        """Connector-specific extra config, env and ports of one node (none by default)."""
