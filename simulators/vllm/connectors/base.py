"""What every fake KV connector shares: the parsed --kv-transfer-config, the engine it is bound to, the
fault switches it reads, and the load-failure error the engine turns into vLLM's kv_load_failure_policy.

vLLM: vllm/config/kv_transfer.py (KVTransferConfig: kv_connector, kv_role, kv_connector_extra_config,
kv_load_failure_policy Literal["recompute", "fail"] = "fail"); vllm/v1/core/sched/scheduler.py
(_handle_invalid_blocks: "fail" finishes the request with FinishReason.ERROR, which the OpenAI server
answers with 500 "Internal server error" (vllm/entrypoints/generate/base/serving.py, _raise_if_error);
"recompute" reschedules the request and recomputes the blocks that failed to load).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulators.vllm.kv_connector import NoKVConnector
from simulators.vllm.request import SimRequest

if TYPE_CHECKING:
    from simulators.vllm.engine import Engine
    from simulators.vllm.failures import Faults

ROLES = ("kv_producer", "kv_consumer", "kv_both")
POLICIES = ("fail", "recompute")


class KVLoadError(Exception):
    """A connector could not load all the tokens it promised; `loaded_tokens` of them (a prefix) arrived."""

    def __init__(self, loaded_tokens: int, reason: str) -> None:
        super().__init__(reason)
        self.loaded_tokens = loaded_tokens


class GenerationError(Exception):
    """The request finished with finish_reason "error" (kv_load_failure_policy=fail): HTTP 500."""


@dataclass
class TransferConfig:
    """--kv-transfer-config, the fields the fake acts on (named as vLLM's KVTransferConfig)."""

    kv_connector: str
    kv_role: str = "kv_both"
    kv_connector_extra_config: dict[str, Any] = field(default_factory=dict)
    kv_load_failure_policy: str = "fail"
    engine_id: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransferConfig:
        connector = d.get("kv_connector")
        if not isinstance(connector, str) or not connector:
            raise ValueError("kv_transfer_config needs kv_connector")
        role = d.get("kv_role") or "kv_both"
        if role not in ROLES:
            raise ValueError(f"kv_role must be one of {ROLES}, not {role!r}")
        policy = d.get("kv_load_failure_policy") or "fail"
        if policy not in POLICIES:
            raise ValueError(f"kv_load_failure_policy must be one of {POLICIES}, not {policy!r}")
        extra = d.get("kv_connector_extra_config") or {}
        if not isinstance(extra, dict):
            raise ValueError("kv_connector_extra_config must be an object")
        return cls(connector, role, dict(extra), policy, d.get("engine_id"))

    @property
    def is_producer(self) -> bool:
        return self.kv_role in ("kv_producer", "kv_both")

    @property
    def is_consumer(self) -> bool:
        return self.kv_role in ("kv_consumer", "kv_both")


class ConnectorBase(NoKVConnector):
    """NoKVConnector's no-op hooks plus what a real connector needs; a connector overrides what it
    does. The engine binds itself with `bind()`; the server calls `start()`/`stop()` around its own
    and appends `metrics_text()` to /metrics."""

    def __init__(self, tc: TransferConfig, env: dict[str, str] | None = None) -> None:
        self.tc = tc
        self.env = dict(os.environ if env is None else env)
        self.engine: Engine | None = None
        self.faults: Faults | None = None

    def bind(self, engine: Engine, faults: Faults | None = None) -> None:
        self.engine = engine
        self.faults = faults

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def prepare(self, request: SimRequest) -> None:
        """Before the request enters the waiting queue: an async lookup (vLLM's lookup_async)."""
        return None

    def render_metrics(self, base: list[tuple[str, str]], out: list[str]) -> None:
        """Connector series appended to /metrics (labels model_name, engine first, as vLLM's)."""
        return None

    def state(self) -> dict[str, Any]:
        return {}

    # -- faults the admin API and --sim-kv-* flags switch on ------------------------------------------
    def _fault(self, name: str) -> Any:
        return getattr(self.faults, name, 0) if self.faults is not None else 0
