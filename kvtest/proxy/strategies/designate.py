"""designate: requests are expected to name their nodes in the OpenAI `user` field (the seed's
Designate); a half they leave out is filled round robin."""

from __future__ import annotations

from kvtest.proxy.strategies.round_robin import RoundRobin


class Designate(RoundRobin):
    pass
