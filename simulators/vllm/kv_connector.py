"""The scheduler-side KV-connector hook, shaped like vLLM V1's KVConnectorBase_V1.

The fake's scheduler calls a connector at the same points vLLM's scheduler does
(vllm/v1/core/sched/scheduler.py, vllm/distributed/kv_transfer/kv_connector/v1/base.py):

0. (optional) `await prepare(request)` before the request enters the waiting queue: an async lookup
   (vLLM's lookup_async), so a connector can ask a store without blocking the event loop.
1. `get_num_new_matched_tokens(request, num_local_computed_tokens) -> int` when a waiting request is
   about to be scheduled, after the local prefix-cache lookup. It returns how many tokens *beyond* the
   local hits the connector can supply from outside (a store, a remote prefill). Those tokens are not
   prefilled (no TTFT cost beyond `sim_external_ms_per_token`), are counted in
   vllm:external_prefix_cache_hits_total and prompt_tokens_by_source{source="external_kv_transfer"},
   and in usage.prompt_tokens_details.cached_tokens. vLLM returns `(count, load_async)`; the fake has
   no async loading state, so it takes a plain int (None counts as 0). The engine caps it only at
   num_tokens - local hits; a connector applies its own cap (the store's n-1, NIXL's whole prompt).
2. `update_state_after_alloc(request, block_ids, num_external_tokens)` once the blocks are allocated.
3. `await load_kv(request, num_external_tokens)` before prefill (the worker side's start_load_kv /
   wait_for_layer_load, folded into one awaitable so a connector can really fetch from a store). It
   raises `simulators.vllm.connectors.KVLoadError(loaded_tokens)` when a load fails; the engine then
   applies kv_load_failure_policy (`fail`: finish_reason "error", HTTP 500; `recompute`).
4. `await save_kv(request, block_ids)` after prefill (the worker side's save_kv_layer/wait_for_save).
5. `request_finished(request, block_ids) -> (delay_free, kv_transfer_params | None)` when the request
   ends. `delay_free=True` keeps the blocks allocated until the connector calls
   `scheduler.free_delayed(request_id)` (vLLM: until get_finished reports the send done); the params
   dict is returned to the client as the response's `kv_transfer_params`.

The request object (`simulators.vllm.request.SimRequest`) exposes `prompt_token_ids`,
`all_token_ids`, `block_hashes` (the chained hashes of its full blocks, vLLM's exact bytes),
`kv_transfer_params` (from the request body), `finish_reason`, `num_computed_tokens`.

`NoKVConnector` is the default: it matches nothing and does nothing. `--kv-transfer-config` builds
one of simulators/vllm/connectors/ (vLLM's names); `FakeVLLMServer(cfg, kv_connector=...)` plugs any
other in; with one plugged in (or `--kv-transfer-config` given) the
external prefix-cache counters are exported, as vLLM does when a connector is configured.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from simulators.vllm.request import SimRequest


@runtime_checkable
class KVConnector(Protocol):
    def get_num_new_matched_tokens(
        self, request: SimRequest, num_local_computed_tokens: int
    ) -> int | None: ...

    def update_state_after_alloc(
        self, request: SimRequest, block_ids: list[int], num_external_tokens: int
    ) -> None: ...

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None: ...

    async def save_kv(self, request: SimRequest, block_ids: list[int]) -> None: ...

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]: ...


class NoKVConnector:
    """The default: no external KV, no transfer params."""

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        return 0

    def update_state_after_alloc(
        self, request: SimRequest, block_ids: list[int], num_external_tokens: int
    ) -> None:
        return None

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None:
        return None

    async def save_kv(self, request: SimRequest, block_ids: list[int]) -> None:
        return None

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        return False, None
