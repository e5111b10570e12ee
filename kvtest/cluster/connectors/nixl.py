"""NixlConnector (vLLM vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py): decode reads the
blocks its prefill holds, named by the prefill's kv_transfer_params (flow "nixl")."""

from __future__ import annotations

from kvtest.cluster.connectors.base import KVConnector, NodeSetup


class NixlConnector(KVConnector):
    name = "NixlConnector"
    transfers_whole_prompt = True

    def configure(self, setup: NodeSetup) -> None:
        if "VLLM_NIXL_SIDE_CHANNEL_PORT" not in setup.node.env:
            # every NIXL instance listens on a side channel for the handshake (vLLM's default port
            # 5600 for all): two on one host collide without a port each (seen on an H200)
            side = setup.port(None)
            setup.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] = str(side)
            setup.ports.append(side)
        setup.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] = setup.spec.host(setup.node.host).address
