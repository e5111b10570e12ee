"""ExampleConnector (vLLM vllm/distributed/kv_transfer/kv_connector/v1/example_connector.py, named
SharedStorageConnector before vLLM 0.11): KV as files under kv_connector_extra_config's
shared_storage_path (flow "store")."""

from __future__ import annotations

from kvtest.cluster.connectors.base import KVConnector


class ExampleConnector(KVConnector):
    name = "ExampleConnector"
