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

# Mooncake's own reading of a size string (mooncake-store/include/utils.h, string_to_byte_size):
# a decimal number, optional blanks, then a unit out of B, K/KB, M/MB, G/GB, T/TB in any case, all
# powers of 1024; no unit means bytes; "infinite" is the largest uint64. "MiB" and other units are
# refused: Mooncake returns 0 for them (an empty segment, silently); this parser raises instead.
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40}  # fmt: skip
_SIZE = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)")
INFINITE = (1 << 64) - 1


def parse_size(value: int | str) -> int:
    """A mooncake.json / mooncake_master size in bytes: 3355443200, "3355443200", "512MB", "512 mb",
    "3.2GB", "64K", "infinite". Raises ValueError for anything Mooncake would not read."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"not a size: {value!r} (negative)")
        return value
    text = str(value).strip()
    if text == "infinite":
        return INFINITE
    m = _SIZE.fullmatch(text)
    unit = m.group(2).upper() if m else None
    if m is None or unit not in _UNITS:
        units = ", ".join(u for u in _UNITS if u)
        raise ValueError(f"not a size: {value!r} (a number of bytes, optionally with a unit: {units})")
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
