"""One way to open a Mooncake store client, mock or real, from mooncake.json keys.

    store = open_store("mock", master_server_address=master.rpc_addr)   # or impl="real"
    store.put("k", b"v"); store.get("k"); store.close()

    cfg = MooncakeConfig.from_file()            # MOONCAKE_CONFIG_PATH
    store = open_store("real", cfg, global_segment_size=0)

The returned object is the client itself (`mooncake.store.MooncakeDistributedStore` or
`simulators.mooncake.MooncakeDistributedStore`), already set up: same methods, same return codes.
The fake vLLM's store connector opens its client here, and so do kvtest's facade (kvtest.store) and
a cluster's `store()`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from simulators.mooncake.config import MooncakeConfig

__all__ = ["MooncakeConfig", "StoreSetupError", "open_store", "real_store_available", "store_class"]

Impl = Literal["mock", "real"]


class StoreSetupError(RuntimeError):
    def __init__(self, impl: str, code: int, cfg: MooncakeConfig) -> None:
        super().__init__(f"{impl} MooncakeDistributedStore.setup() returned {code} for {cfg}")
        self.code = code


def real_store_available() -> tuple[bool, str]:
    try:
        from mooncake.store import MooncakeDistributedStore  # noqa: F401
    except Exception as e:  # ImportError, or a missing libibverbs raising OSError
        return False, f"mooncake.store does not import: {e}"
    return True, ""


def store_class(impl: Impl) -> Any:
    if impl == "real":
        from mooncake.store import MooncakeDistributedStore as RealStore

        return RealStore
    if impl == "mock":
        from simulators.mooncake.client import MooncakeDistributedStore as MockStore

        return MockStore
    raise ValueError(f"impl must be 'mock' or 'real', not {impl!r}")


def open_store(impl: Impl = "mock", config: MooncakeConfig | None = None, **keys: Any) -> Any:
    """A set-up client. `keys` are mooncake.json keys (sizes as Mooncake writes them, e.g. "64MB")
    and override `config`; raises StoreSetupError when setup() returns a non-zero code."""
    cfg = config or MooncakeConfig()
    if keys:
        cfg = MooncakeConfig.from_dict(dataclasses.asdict(cfg) | keys)
    if impl == "real":
        # Without it the real transfer engine binds the first non-loopback address it finds
        # (Mooncake's transfer engine reads MC_TCP_BIND_ADDRESS), unreachable on a loopback cluster.
        os.environ.setdefault("MC_TCP_BIND_ADDRESS", cfg.local_hostname)
        # The real client retries connecting to the master this many times, about 4 s apart (the
        # mock does the same, simulators/mooncake/client.py); one attempt turns a wrong address
        # into a quick StoreSetupError.
        os.environ.setdefault("MC_STORE_CLIENT_SETUP_RETRIES", "1")
    store = store_class(impl)()
    code = store.setup(*cfg.setup_args())
    if code != 0:
        store.close()
        raise StoreSetupError(impl, code, cfg)
    return store
