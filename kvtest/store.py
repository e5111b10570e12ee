"""One way to open a Mooncake store client, mock or real, from mooncake.json keys.

    store = open_store("mock", master_server_address=master.rpc_addr)   # or impl="real"
    store.put("k", b"v"); store.get("k"); store.close()

    cfg = MooncakeConfig.from_file()            # MOONCAKE_CONFIG_PATH
    store = open_store("real", cfg)

The opener lives in the lower layer, simulators.mooncake.store_client, because the fake vLLM's store
connector needs it too (simulators never import kvtest); this module is kvtest's name for it.
"""

from __future__ import annotations

from simulators.mooncake.config import MooncakeConfig, parse_size
from simulators.mooncake.store_client import (
    StoreSetupError,
    open_store,
    real_store_available,
    store_class,
)

__all__ = [
    "MooncakeConfig",
    "StoreSetupError",
    "open_store",
    "parse_size",
    "real_store_available",
    "store_class",
]
