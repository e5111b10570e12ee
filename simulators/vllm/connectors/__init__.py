"""KV connectors for the fake vLLM, chosen by --kv-transfer-config's kv_connector (vLLM's names).

| kv_connector | module | what moves |
|---|---|---|
| MooncakeStoreConnector | store.py | per-block keys through a Mooncake store (V0: VLLM_USE_V1=0) |
| NixlConnector | nixl.py | decode reads the prefill's held blocks over the prefill's side channel (HTTP) |
| MooncakeConnector | mooncake_p2p.py | bootstrap /query; prefill pushes to the decode's transfer_id |
| ExampleConnector | example.py | files under shared_storage_path |
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simulators.vllm.connectors.base import ConnectorBase, GenerationError, KVLoadError, TransferConfig

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig

__all__ = [
    "CONNECTORS",
    "ConnectorBase",
    "GenerationError",
    "KVLoadError",
    "TransferConfig",
    "build_connector",
]

# kv_connector name -> the module whose `build(cfg, tc, env, **kw)` makes it (imported when a node
# names it). ExampleConnector was SharedStorageConnector before vLLM 0.11: both names are accepted.
# A new connector is one module with a ConnectorBase subclass and a build() function, plus one entry.
CONNECTORS: dict[str, str] = {
    "MooncakeStoreConnector": "simulators.vllm.connectors.store",
    "NixlConnector": "simulators.vllm.connectors.nixl",
    "MooncakeConnector": "simulators.vllm.connectors.mooncake_p2p",
    "ExampleConnector": "simulators.vllm.connectors.example",
    "SharedStorageConnector": "simulators.vllm.connectors.example",
}


def build_connector(cfg: SimConfig, **kw: Any) -> ConnectorBase:
    """The connector `cfg.kv_transfer_config` names (`kw` reaches its constructor, e.g. store=...)."""
    assert cfg.kv_transfer_config is not None
    tc = TransferConfig.from_dict(cfg.kv_transfer_config)
    env = dict(os.environ if cfg.sim_env is None else cfg.sim_env)
    module = CONNECTORS.get(tc.kv_connector)
    if module is None:
        raise ValueError(
            f"kv_connector {tc.kv_connector!r} is not modelled; the fake knows {', '.join(CONNECTORS)}"
        )
    build: Callable[..., ConnectorBase] = importlib.import_module(module).build
    return build(cfg, tc, env, **kw)
