"""Mock Mooncake store: a master (`python -m simulators.mooncake`) and a client with the API of
`mooncake.store.MooncakeDistributedStore`. README.md lists where it knowingly differs from the real one.

Imports are lazy so a client process does not pay for aiohttp (the master's HTTP side).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MooncakeDistributedStore": ".client",
    "MooncakeConfig": ".config",
    "ErrorCode": ".errors",
    "MasterConfig": ".flags",
    "parse_flags": ".flags",
    "MockMooncakeMaster": ".server",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
