"""One generation request as the scheduler, cache and KV connector see it (vllm/v1/request.py's shape)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    PREEMPTED = "preempted"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class SimRequest:
    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int
    output_plan: list[int]  # the tokens this request will emit, fixed by (seed, prompt)
    kv_transfer_params: dict[str, Any] | None = None
    cache_salt: str | None = None
    skip_reading_prefix_cache: bool = False  # vLLM skips the lookup when prompt_logprobs are asked for
    output_token_ids: list[int] = field(default_factory=list)
    block_hashes: list[bytes] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_cached_tokens: int = -1  # local + external hits at first scheduling; -1 until scheduled
    num_local_cached_tokens: int = 0
    num_external_computed_tokens: int = 0
    num_preemptions: int = 0
    status: RequestStatus = RequestStatus.WAITING
    finish_reason: str | None = None
    result_kv_transfer_params: dict[str, Any] | None = None  # from the connector's request_finished
    arrival_time: float = 0.0
    scheduled_time: float | None = None
    first_token_time: float | None = None
    last_token_time: float | None = None

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def is_finished(self) -> bool:
        return self.status is RequestStatus.FINISHED
