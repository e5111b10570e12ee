"""Injected faults (llm-d-inference-sim's failures.go, widened): what can go wrong, and a seeded draw.

Set by `--sim-fail-rate/--sim-fail-status/--sim-delay-ms/--sim-hang-rate/--sim-drop-rate/
--sim-drop-after-tokens/--sim-never-ready` (KV-connector faults: `--sim-kv-load-fail-rate/
--sim-kv-load-partial-rate/--sim-kv-store-unavailable/--sim-kv-bootstrap-fail`), or at run time with
`POST /sim/faults` (a JSON object with any of the field names below; admin endpoints need
`--sim-enable-admin`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from http import HTTPStatus
from typing import Any


@dataclass(slots=True)
class Faults:
    fail_rate: float = 0.0  # share of generation requests answered with fail_status
    fail_status: int = 503
    delay_ms: float = 0.0  # added before any generation request is handled
    hang_rate: float = 0.0  # share of requests that never answer (until the client gives up)
    drop_rate: float = 0.0  # share of requests whose connection is cut mid-answer
    drop_after_tokens: int = 1  # how many tokens a dropped stream sends first
    never_ready: bool = False  # /health answers 503 for ever
    # KV-connector faults (simulators/vllm/connectors/): the connector reads them on each transfer
    kv_load_fail_rate: float = 0.0  # share of KV loads where every block fails
    kv_load_partial_rate: float = 0.0  # share of KV loads where the second half of the blocks fails
    kv_store_unavailable: bool = False  # every Mooncake store call fails
    kv_bootstrap_fail: bool = False  # MooncakeConnector's bootstrap /query answers 500

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {sorted(known)}")
            if known[key] in (bool, "bool"):
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be a boolean")
            elif key in ("fail_status", "drop_after_tokens"):
                if not isinstance(value, int) or isinstance(value, bool):
                    raise ValueError(f"{key} must be an integer")
                if key == "fail_status" and not 400 <= value <= 599:
                    raise ValueError("fail_status must be a 4xx or 5xx status")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative number")
                if key.endswith("_rate") and value > 1:
                    raise ValueError(f"{key} must be between 0 and 1")
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    fail_status: int | None = None
    hang: bool = False
    drop_after: int | None = None


NO_FAULT = Verdict()


class FaultInjector:
    def __init__(self, faults: Faults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(f"faults:{seed}")

    def draw(self) -> Verdict:
        f = self.faults
        if not (f.fail_rate or f.hang_rate or f.drop_rate):
            return NO_FAULT
        r = self._rng.random
        if f.fail_rate and r() < f.fail_rate:
            return Verdict(fail_status=f.fail_status)
        if f.hang_rate and r() < f.hang_rate:
            return Verdict(hang=True)
        if f.drop_rate and r() < f.drop_rate:
            return Verdict(drop_after=f.drop_after_tokens)
        return NO_FAULT


def error_type_for(status: int) -> str:
    """vLLM's error `type` for a status (serving_engine.create_error_response and the app's handlers)."""
    return {
        400: "BadRequestError",
        404: "NotFoundError",
        422: "UnprocessableEntityError",
        500: "InternalServerError",
        501: "NotImplementedError",
    }.get(
        status,
        HTTPStatus(status).phrase.replace(" ", "") if status in HTTPStatus._value2member_map_ else "Error",
    )
