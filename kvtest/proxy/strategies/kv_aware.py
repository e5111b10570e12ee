"""kv_aware: the prefill node holding the longest cached prefix of the request, from the nodes' KV
events (kvtest/proxy/kv_aware.py has the index, the subscribers and the pick). Loaded when chosen:
its KV-event subscribers need pyzmq and msgspec, which no other strategy does."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvtest.proxy.kv_aware import KVAware
    from kvtest.proxy.routing import Router


def kv_aware(router: Router) -> KVAware:
    from kvtest.proxy.kv_aware import KVAware

    return KVAware(router)
