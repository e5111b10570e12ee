"""mooncake.json: the store client's config file (path in MOONCAKE_CONFIG_PATH), with the keys vLLM's
MooncakeStoreConnector reads (vllm/distributed/kv_transfer/kv_connector/v1/mooncake_store*: local_hostname,
metadata_server, global_segment_size, local_buffer_size, protocol, device_name, master_server_address)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


def parse_size(value: int | str) -> int:
    """3355443200, "3355443200", "512MB", "3.2GB" -> bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?i?b?)\s*", str(value).lower())
    if not m:
        raise ValueError(f"not a size: {value!r}")
    unit = m.group(2).replace("i", "")
    return int(float(m.group(1)) * _UNITS[unit])


@dataclasses.dataclass
class MooncakeConfig:
    local_hostname: str = "127.0.0.1"
    metadata_server: str = "P2PHANDSHAKE"
    global_segment_size: int = 64 << 20
    local_buffer_size: int = 16 << 20
    protocol: str = "tcp"
    device_name: str = ""
    master_server_address: str = "127.0.0.1:50051"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MooncakeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for size_key in ("global_segment_size", "local_buffer_size"):
            if size_key in kw:
                kw[size_key] = parse_size(kw[size_key])
        return cls(**kw)

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> MooncakeConfig:
        path = path or os.environ.get("MOONCAKE_CONFIG_PATH")
        if not path:
            raise ValueError("no mooncake.json: pass a path or set MOONCAKE_CONFIG_PATH")
        return cls.from_dict(json.loads(Path(path).read_text()))

    def setup_args(self) -> tuple[str, str, int, int, str, str, str]:
        """Positional arguments of MooncakeDistributedStore.setup(), in its order."""
        return (
            self.local_hostname,
            self.metadata_server,
            self.global_segment_size,
            self.local_buffer_size,
            self.protocol,
            self.device_name,
            self.master_server_address,
        )
