"""Mock Mooncake store: a master (`python -m simulators.mooncake`) and a client with the API of
`mooncake.store.MooncakeDistributedStore`. README.md lists where it knowingly differs from the real one."""

from .client import MooncakeDistributedStore
from .config import MooncakeConfig
from .errors import ErrorCode
from .flags import MasterConfig, parse_flags
from .server import MockMooncakeMaster

__all__ = [
    "ErrorCode",
    "MasterConfig",
    "MockMooncakeMaster",
    "MooncakeConfig",
    "MooncakeDistributedStore",
    "parse_flags",
]
