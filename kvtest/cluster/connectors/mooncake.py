"""MooncakeConnector (vLLM vllm/distributed/kv_transfer/kv_connector/v1/mooncake/mooncake_connector.py):
point to point through Mooncake's transfer engine; each prefill node runs a bootstrap server on
VLLM_MOONCAKE_BOOTSTRAP_PORT that the proxy asks for the engine id (flow "mooncake")."""

from __future__ import annotations

from kvtest.cluster.connectors.base import KVConnector, NodeSetup


class MooncakeConnector(KVConnector):
    name = "MooncakeConnector"
    reads_mooncake_json = True
    # measured on vLLM 0.25.1 + H100: a 1,225-token prompt gave decode external_prefix_cache_hits_total
    # 1225, not its 1,216 full-block tokens
    transfers_whole_prompt = True

    def configure(self, setup: NodeSetup) -> None:
        setup.extra.setdefault("mooncake_protocol", setup.spec.mooncake.protocol)
        bootstrap = setup.port(setup.node.bootstrap_port)
        setup.env["VLLM_MOONCAKE_BOOTSTRAP_PORT"] = str(bootstrap)
        setup.ports.append(bootstrap)
