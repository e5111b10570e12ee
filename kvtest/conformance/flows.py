"""What each P/D flow needs from the nodes and what it promises the decode node will load.

The external prefix-cache hits a decode node counts (vllm:external_prefix_cache_hits_total, vLLM's
scheduler connector_prefix_cache_stats) tell whether KV moved: NIXL and MooncakeConnector hand over the
whole prompt (nixl push_scheduler get_num_new_matched_tokens), the store connectors the full blocks of the
first n-1 tokens (mooncake store worker lookup keeps the last token for the decode to compute).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Flow:
    name: str
    connector: str | None  # the nodes' kv_connector; None: the flow is not applicable on fake vLLM nodes
    prefill_role: str
    decode_role: str
    expected_hits: Callable[[int, int], int]  # (prompt tokens, block size) -> decode's external hits
    ordered: bool  # prefill must finish before decode starts (False: the legs may run concurrently)
    why_not: str = ""


def _whole_prompt(n: int, block: int) -> int:
    return n


def _full_blocks_below_last(n: int, block: int) -> int:
    return (n - 1) // block * block


FLOWS: dict[str, Flow] = {
    "nixl": Flow("nixl", "NixlConnector", "kv_producer", "kv_consumer", _whole_prompt, ordered=True),
    "mooncake": Flow(
        "mooncake", "MooncakeConnector", "kv_producer", "kv_consumer", _whole_prompt, ordered=False
    ),
    "store": Flow(
        "store", "MooncakeStoreConnector", "kv_producer", "kv_consumer", _full_blocks_below_last, ordered=True
    ),
    "sglang": Flow(
        "sglang",
        None,
        "-",
        "-",
        _whole_prompt,
        ordered=False,
        why_not=(
            "not applicable: SGLang's P/D sends the full request to prefill and decode at once with "
            "bootstrap_host/bootstrap_port/bootstrap_room and the KV moves over SGLang's own bootstrap "
            "server; the fake nodes are vLLM-shaped and real vLLM has no such fields or endpoints"
        ),
    ),
}
