"""random: `random.Random(seed)`, one stream for both roles (prefill drawn first), so a run is
reproducible from its seed."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvtest.proxy.config import Node
    from kvtest.proxy.routing import Router


class RandomChoice:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.rng = random.Random(router.config.seed)

    def prefill(self, body: dict[str, Any]) -> Node:
        return self.rng.choice(self.router.prefill)

    def decode(self, body: dict[str, Any]) -> Node:
        return self.rng.choice(self.router.decode)
