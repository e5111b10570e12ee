"""mooncake_master's command line, parsed the way gflags parses it, into a typed config.

gflags accepts `--flag=value`, `--flag value`, `-flag=value`, booleans as `--flag`, `--noflag`,
`--flag=true|false|1|0`. Unknown flags make the real binary exit ("ERROR: unknown command line flag");
the mock reports them and carries on, so a cluster file written for a newer master still starts it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass
class MasterConfig:
    """Fields are named after mooncake_master's gflags (defaults as `mooncake_master --help` prints)."""

    rpc_port: int = 50051
    rpc_address: str = "0.0.0.0"
    rpc_thread_num: int = 4
    metrics_port: int = 9003
    metrics_host: str = "0.0.0.0"
    enable_metric_reporting: bool = True
    default_kv_lease_ttl: int = 10000  # ms
    default_kv_soft_pin_ttl: int = 1800000  # ms
    eviction_ratio: float = 0.05
    eviction_high_watermark_ratio: float = 0.90
    client_ttl: int = 10  # s
    enable_http_metadata_server: bool = False
    http_metadata_server_port: int = 8080
    http_metadata_server_host: str = "0.0.0.0"
    enable_ha: bool = False
    ha_backend_type: str = "etcd"
    ha_backend_connstring: str = ""
    etcd_endpoints: str = ""
    cluster_id: str = "mooncake_cluster"
    put_start_discard_timeout_sec: int = 30
    put_start_release_timeout_sec: int = 600
    allocation_strategy: str = "random"
    memory_allocator: str = "offset"
    config_path: str = ""
    # Not a real flag: the mock's random choices (segment picking) come from it.
    seed: int = 0


_DURATION_SUFFIX = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def _parse_duration_ms(text: str) -> int:
    """default_kv_lease_ttl takes raw milliseconds or `500ms`, `10s`, `1m`, `1h` (see --help)."""
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return int(float(text[: -len(suffix)]) * _DURATION_SUFFIX[suffix])
    return int(text)


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "t", "yes", "y"):
        return True
    if low in ("0", "false", "f", "no", "n"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_flags(argv: Sequence[str]) -> tuple[MasterConfig, list[str]]:
    """Parse gflags-style argv into a MasterConfig; returns (config, unknown flags)."""
    cfg = MasterConfig()
    fields = {f.name: f for f in dataclasses.fields(MasterConfig)}
    unknown: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            unknown.append(arg)
            continue
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        field = fields.get(name)
        negated = fields.get(name[2:]) if name.startswith("no") and not eq else None
        if field is None and negated is not None and negated.type in (bool, "bool"):
            setattr(cfg, negated.name, False)
            continue
        if field is None:
            unknown.append(arg)
            # `--unknown value`: swallow the value too so it is not read as a positional
            if not eq and i < len(args) and not args[i].startswith("-"):
                unknown.append(args[i])
                i += 1
            continue
        is_bool = field.type in (bool, "bool")
        if not eq:
            if is_bool:  # gflags never reads a boolean's value from the next argument
                setattr(cfg, name, True)
                continue
            if i >= len(args):
                raise SystemExit(f"ERROR: flag '--{name}' is missing its argument")
            value = args[i]
            i += 1
        setattr(cfg, name, _convert(field.type, name, value))
    if cfg.config_path:
        _apply_config_file(cfg, args)
    return cfg, unknown


def _apply_config_file(cfg: MasterConfig, argv: Sequence[str]) -> None:
    """--config_path: a JSON object of flag names; flags given on the command line win."""
    given = {a.lstrip("-").partition("=")[0] for a in argv if a.startswith("-")}
    data = json.loads(Path(cfg.config_path).read_text())
    fields = {f.name: f for f in dataclasses.fields(MasterConfig)}
    for name, value in data.items():
        if name in fields and name not in given:
            setattr(cfg, name, _convert(fields[name].type, name, str(value).lower() if isinstance(value, bool)
                                        else str(value)))  # fmt: skip


def _convert(typ: object, name: str, value: str) -> object:
    try:
        if typ in (bool, "bool"):
            return _parse_bool(value)
        if name in ("default_kv_lease_ttl", "default_kv_soft_pin_ttl"):
            return _parse_duration_ms(value)
        if typ in (int, "int"):
            return int(value)
        if typ in (float, "float"):
            return float(value)
        return value
    except ValueError:
        print(f"ERROR: illegal value '{value}' specified for flag '{name}'", file=sys.stderr)
        raise SystemExit(1) from None
