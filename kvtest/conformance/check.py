"""A check: a named group, what it proves, and an async function that raises AssertionError to fail.

Checks register themselves with @check in kvtest/conformance/groups/; GROUPS lists the groups in the
order they run (errors last: its dead-node checks close the nodes' ports for a moment).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from kvtest.conformance.backends import Backends, Leg

GROUPS: dict[str, str] = {
    "pd": "disaggregation really happened: one prefill leg then one decode leg, KV moved, full answers",
    "kvtest": "stricter rules kvtest's proxy keeps beyond vLLM's (error shape, prefill never streamed)",
    "designate": "the seed's node designation in the OpenAI `user` field",
    "errors": "OpenAI compatibility as vLLM's server behaves: 4xx passed through, 5xx with a body, no hang",
}
DEFAULT_GROUPS_EXTERNAL = ("pd", "errors")  # kvtest and designate are kvtest's own rules


class NotApplicable(Exception):
    """The check cannot say anything about this router or flow (reported as n/a, not as a failure)."""


@dataclass
class Context:
    router_url: str
    backends: Backends
    client: httpx.AsyncClient
    model: str
    bound_s: float  # the longest a router may take to answer before "it hangs"

    def url(self, path: str) -> str:
        return self.router_url.rstrip("/") + "/" + path.lstrip("/")

    @staticmethod
    def marker() -> str:
        return f"kvtest-{uuid.uuid4().hex[:12]}"

    def prompt(self, marker: str) -> str:
        # ~70 tokens with the fake's tokenizer: a few full blocks for the KV to move
        return f"[{marker}] Shared context: the quick brown fox jumps over the lazy dog. " * 3

    def legs(self, marker: str) -> list[Leg]:
        return self.backends.log.for_marker(marker)

    def body(self, marker: str, **extra: Any) -> dict[str, Any]:
        return {"model": self.model, "prompt": self.prompt(marker), "max_tokens": 8, "temperature": 0} | extra


CheckFn = Callable[[Context], Awaitable[str | None]]


@dataclass(frozen=True)
class Check:
    group: str
    name: str
    proves: str
    fn: CheckFn = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.group}.{self.name}"


@dataclass
class Result:
    group: str
    name: str
    proves: str
    verdict: str  # pass | fail | n/a
    detail: str
    seconds: float

    @property
    def id(self) -> str:
        return f"{self.group}.{self.name}"


CHECKS: list[Check] = []


def check(group: str, proves: str) -> Callable[[CheckFn], CheckFn]:
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def register(fn: CheckFn) -> CheckFn:
        CHECKS.append(Check(group, fn.__name__, proves, fn))
        return fn

    return register


def checks_in(groups: list[str]) -> list[Check]:
    from kvtest.conformance import groups as _  # noqa: F401  (registers the checks)

    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    return [c for g in GROUPS if g in groups for c in CHECKS if c.group == g]
