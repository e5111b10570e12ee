"""A fake vLLM server: vLLM's OpenAI API, V1 prefix cache, metrics, latency model and faults.

    from simulators.vllm import FakeVLLMServer, SimConfig, fake_vllm_nodes

    async with FakeVLLMServer(SimConfig(model="tiny", port=0)) as node:
        node.url_for("v1", "completions")

Command line: `python -m simulators.vllm serve MODEL [vllm serve flags] [--sim-* flags]`.
Where it knowingly differs from vLLM: simulators/vllm/README.md.
"""

from simulators.vllm.config import SimConfig
from simulators.vllm.kv_connector import KVConnector, NoKVConnector
from simulators.vllm.request import SimRequest
from simulators.vllm.server import FakeVLLMServer, fake_vllm_nodes

__all__ = ["FakeVLLMServer", "KVConnector", "NoKVConnector", "SimConfig", "SimRequest", "fake_vllm_nodes"]
