"""A hypothesis-generated trace of >= 1,000 operations from three clients, run on the mock and on the
real master + clients side by side and compared op by op (identical codes and values)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kvtest.gating import skip_unless

from .harness import StoreCluster, real_available

KEYS = [f"t{i}" for i in range(10)]
N_CLIENTS = 3
TRACE_LEN = 1000

OPS = ["put", "get", "is_exist", "get_size", "remove", "upsert", "put_batch", "get_batch", "batch_is_exist",
       "remove_all", "batch_remove", "upsert_batch"]  # fmt: skip


def decode(x: int) -> tuple[Any, ...]:
    """One drawn integer -> one operation. A trace is a list of integers, not of nested tuples, so that
    1,000 operations stay within what hypothesis can generate and still shrink (toward `put` on t0)."""
    name, c = OPS[x % len(OPS)], (x // 12) % N_CLIENTS
    k, n = KEYS[(x // 36) % len(KEYS)], (x // 360) % 64 + 1
    if name in ("put", "upsert"):
        return (name, c, k, n)
    if name == "remove":
        return (name, c, k, bool(n % 2))
    if name in ("put_batch", "get_batch", "batch_is_exist", "batch_remove", "upsert_batch"):
        start = (x // 36) % len(KEYS)
        return (name, c, [KEYS[(start + 3 * i) % len(KEYS)] for i in range(n % 4 + 1)], bool(n % 2))
    if name == "remove_all":
        return (name, c)
    return (name, c, k)


def apply(clients: list[Any], step: int, o: tuple[Any, ...]) -> Any:
    name, c = o[0], clients[o[1]]
    if name in ("put", "upsert"):
        return getattr(c, name)(o[2], f"{o[2]}@{step}:".encode() * o[3])
    if name == "remove":
        return c.remove(o[2], o[3])
    if name in ("put_batch", "upsert_batch"):
        return getattr(c, name)(o[2], [f"{k}@{step}".encode() for k in o[2]])
    if name == "batch_remove":
        return c.batch_remove(o[2], o[3])
    if name in ("get_batch", "batch_is_exist"):
        return getattr(c, name)(o[2])
    if name == "remove_all":
        return c.remove_all()
    return getattr(c, name)(o[2])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Any], list[Any]]]:
    ok, reason = real_available()
    skip_unless("real", ok, reason)
    clusters = [StoreCluster(impl, Path(tmp_path_factory.mktemp(impl))) for impl in ("mock", "real")]
    try:
        sides = []
        for c in clusters:
            # leases outlive the test, so every lease decision is the same on both sides
            m = c.master(default_kv_lease_ttl=600_000)
            sides.append([c.client(m) for _ in range(N_CLIENTS)])
        yield sides[0], sides[1]
    finally:
        for c in clusters:
            c.close()


@pytest.mark.real
@settings(
    max_examples=5,
    deadline=None,
    # shrinking replays thousands of real-store operations (minutes); the failing step is reported instead
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(trace=st.lists(st.integers(0, (1 << 20) - 1), min_size=TRACE_LEN, max_size=TRACE_LEN + 50))
def test_mock_and_real_agree_op_by_op(pair: tuple[list[Any], list[Any]], trace: list[int]) -> None:
    mock, real = pair
    for side in (mock, real):
        side[0].remove_all(True)  # a fresh store for each example
    done: list[str] = []
    for step, x in enumerate(trace):
        o = decode(x)
        want = apply(real, step, o)
        got = apply(mock, step, o)
        done.append(f"{step}: {o!r} -> {want!r}")
        assert got == want, "\n".join(
            [*done[-30:], f"step {step} of {len(trace)}: {o!r}: mock {got!r} != real {want!r}"]
        )
