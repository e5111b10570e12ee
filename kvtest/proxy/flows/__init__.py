"""P/D flows by name (`kvtest proxy --flow NAME`, a cluster file's proxy.flow): what each leg is sent,
field by field, and in which order (vLLM's own proxies are the reference, cited in each module).

A new flow is one module here with a class that has `forward(legs, request, endpoint, body, prefill,
decode, headers, stream)` (flows/base.py), plus one entry below; the CLI's choices and the cluster
schema read their names from this table.
"""

from __future__ import annotations

from kvtest.proxy.flows.base import Flow, Legs
from kvtest.proxy.flows.mooncake import MooncakeFlow
from kvtest.proxy.flows.nixl import NixlFlow
from kvtest.proxy.flows.store import StoreFlow

__all__ = ["FLOWS", "Flow", "Legs"]

FLOWS: dict[str, type[Flow]] = {
    "store": StoreFlow,
    "nixl": NixlFlow,
    "mooncake": MooncakeFlow,
}
