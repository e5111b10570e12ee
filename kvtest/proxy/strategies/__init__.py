"""Routing strategies by name (`kvtest proxy --strategy NAME`, a cluster file's proxy.strategy).

A new strategy is one module here with a class that has `__init__(router)`, `prefill(body)` and
`decode(body)` (strategies/base.py), or a function of the router returning such an object, plus one
entry below; the CLI's choices and the cluster schema read their names from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvtest.proxy.strategies.base import Strategy
from kvtest.proxy.strategies.designate import Designate
from kvtest.proxy.strategies.kv_aware import kv_aware
from kvtest.proxy.strategies.prefix import PrefixAffinity
from kvtest.proxy.strategies.random_choice import RandomChoice
from kvtest.proxy.strategies.round_robin import RoundRobin

if TYPE_CHECKING:
    from kvtest.proxy.routing import Router

__all__ = ["STRATEGIES", "Strategy"]

STRATEGIES: dict[str, Callable[[Router], Strategy]] = {
    "designate": Designate,
    "round_robin": RoundRobin,
    "random": RandomChoice,
    "prefix": PrefixAffinity,
    "kv_aware": kv_aware,
}
