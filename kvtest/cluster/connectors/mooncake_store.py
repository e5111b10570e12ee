"""MooncakeStoreConnector (vLLM V1 vllm/distributed/kv_transfer/kv_connector/v1/mooncake/store/, and
the seed's V0 one): per-block keys through the Mooncake store."""

from __future__ import annotations

from kvtest.cluster.connectors.base import KVConnector, NodeSetup


class MooncakeStoreConnector(KVConnector):
    name = "MooncakeStoreConnector"
    uses_store = True
    reads_mooncake_json = True

    def configure(self, setup: NodeSetup) -> None:
        # vLLM names an IPC socket after lookup_rpc_port and the host (store/worker.py,
        # get_zmq_rpc_path_lookup): two instances on one host with the same value collide
        if "lookup_rpc_port" in setup.extra:
            return
        node = setup.node
        if node.lookup_rpc_port is not None:
            setup.extra["lookup_rpc_port"] = node.lookup_rpc_port
        else:
            setup.lookup_ports[node.host] = setup.lookup_ports.get(node.host, 0) + 1
            setup.extra["lookup_rpc_port"] = setup.lookup_ports[node.host]
