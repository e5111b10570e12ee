"""KV connectors for the fake vLLM, chosen by --kv-transfer-config's kv_connector (vLLM's names).

| kv_connector | module | what moves |
|---|---|---|
| MooncakeStoreConnector | store.py | per-block keys through a Mooncake store (V0: VLLM_USE_V1=0) |
| NixlConnector | nixl.py | decode reads the prefill's held blocks over the prefill's side channel (HTTP) |
| MooncakeConnector | mooncake_p2p.py | bootstrap /query; prefill pushes to the decode's transfer_id |
| ExampleConnector | example.py | files under shared_storage_path |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simulators.vllm.connectors.base import ConnectorBase, GenerationError, KVLoadError, TransferConfig

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig

__all__ = ["ConnectorBase", "GenerationError", "KVLoadError", "TransferConfig", "build_connector"]

# ExampleConnector was SharedStorageConnector before vLLM 0.11; both names are accepted
NAMES = (
    "MooncakeStoreConnector",
    "NixlConnector",
    "MooncakeConnector",
    "ExampleConnector",
    "SharedStorageConnector",
)


def build_connector(cfg: SimConfig, **kw: Any) -> ConnectorBase:
    """The connector `cfg.kv_transfer_config` names (`kw` reaches its constructor, e.g. store=...)."""
    import os

    assert cfg.kv_transfer_config is not None
    tc = TransferConfig.from_dict(cfg.kv_transfer_config)
    env = dict(os.environ if cfg.sim_env is None else cfg.sim_env)
    name = tc.kv_connector
    if name == "MooncakeStoreConnector":
        from simulators.vllm.connectors.store import MooncakeStoreConnectorV0, MooncakeStoreConnectorV1

        cls = MooncakeStoreConnectorV0 if env.get("VLLM_USE_V1") == "0" else MooncakeStoreConnectorV1
        args: dict[str, Any] = {
            "model": cfg.model,
            "block_size": cfg.block_size,
            "store_impl": cfg.sim_store,
            "env": env,
            "put_delay_s": cfg.sim_kv_put_delay_ms / 1000,
            "seed": cfg.seed,
        }
        return cls(tc, **(args | kw))
    if name == "NixlConnector":
        from simulators.vllm.connectors.nixl import NixlConnector

        return NixlConnector(tc, env=env, host=cfg.host, block_size=cfg.block_size, model=cfg.model, **kw)
    if name == "MooncakeConnector":
        from simulators.vllm.connectors.mooncake_p2p import MooncakeConnector

        return MooncakeConnector(tc, env=env, host=cfg.host, block_size=cfg.block_size, model=cfg.model, **kw)
    if name in ("ExampleConnector", "SharedStorageConnector"):
        from simulators.vllm.connectors.example import ExampleConnector

        return ExampleConnector(tc, env=env, block_size=cfg.block_size, model=cfg.model, **kw)
    raise ValueError(f"kv_connector {name!r} is not modelled; the fake knows {', '.join(NAMES)}")
