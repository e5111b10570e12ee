"""The seed's experiments 1-5 (kvtest/experiments) on the `cluster` fixture, with the numbers a user reads.

On simulators every node row must equal kvtest.expect exactly; on a real cluster within the cluster file's
tolerance. The seed's own sentences ("that node 50%, the others nothing", "below 50%", "90%") are asserted
on top, so a regression in routing or prefix caching shows as the number the seed's screenshots showed.
"""

from __future__ import annotations

import pytest

from kvtest.experiments.putget import NotAvailable
from kvtest.experiments.runner import format_result, run_experiment
from kvtest.experiments.session import ExperimentSession
from kvtest.report.model import ExperimentResult, NodeRow


def _rows(res: ExperimentResult) -> dict[str, NodeRow]:
    return {r.node: r for r in res.nodes}


def _assert_passed(res: ExperimentResult, session: ExperimentSession) -> None:
    # the per-node tables a GPU run reports (tests/gpu/README.md) stay beside the nodes' logs
    session.cluster.run_dir.mkdir(parents=True, exist_ok=True)
    with (session.cluster.run_dir / "experiments.txt").open("a") as fh:
        fh.write(format_result(res) + "\n\n")
    assert res.passed, format_result(res)
    assert not res.failed_requests


async def test_designate_hits_half_on_the_designated_node_and_nothing_elsewhere(
    experiments: ExperimentSession,
) -> None:
    res = await run_experiment(experiments, "designate")
    _assert_passed(res, experiments)
    rows = _rows(res)
    p, d = experiments.prefill[0].name, experiments.decode[0].name
    assert rows[p].requests == 40 and rows[d].requests == 40
    assert rows[p].hit_rate is not None and 0.4 < rows[p].hit_rate < 0.6
    others = [r for name, r in rows.items() if name not in (p, d)]
    assert all(r.requests == 0 and r.queries == 0 and r.note == "untouched" for r in others)


async def test_round_robin_gives_every_prefill_node_half(experiments: ExperimentSession) -> None:
    res = await run_experiment(experiments, "rr")
    _assert_passed(res, experiments)
    rows = _rows(res)
    prefill = [rows[n.name] for n in experiments.prefill]
    assert sum(r.requests for r in prefill) == 40
    assert max(r.requests for r in prefill) - min(r.requests for r in prefill) <= 2
    assert all(r.hit_rate is not None and 0.4 < r.hit_rate < 0.6 for r in prefill)


async def test_random_stays_below_half_exactly_as_expected(experiments: ExperimentSession) -> None:
    res = await run_experiment(experiments, "random")
    _assert_passed(res, experiments)
    used = [r for r in res.nodes if r.requests]
    assert sum(r.requests for r in used if r.role == "prefill") == 40
    for r in used:
        if experiments.tolerance == 0:
            assert r.hit_rate == r.expected  # the exact counters are in the row's verdict
    if len(experiments.prefill) > 1:
        assert all(r.hit_rate is not None and r.hit_rate < 0.5 for r in used if r.role == "prefill")


async def test_same_prefix_reaches_ninety_percent(experiments: ExperimentSession) -> None:
    res = await run_experiment(experiments, "same_prefix")
    _assert_passed(res, experiments)
    rows = _rows(res)
    p = experiments.prefill[-1].name
    assert rows[p].requests == 10
    assert rows[p].hit_rate is not None and rows[p].hit_rate > 0.8


async def test_put_get_one_copy_and_decode_loads_it(experiments: ExperimentSession) -> None:
    try:
        res = await run_experiment(experiments, "putget")
    except NotAvailable as exc:
        pytest.skip(f"experiment 5 not available: {exc}")
    _assert_passed(res, experiments)
    checks = {c.name: c for c in res.checks}
    if experiments.shared_hash_seed:
        assert checks["one copy stored"].verdict == "PASS"
    assert any("loaded the KV from the store" in name for name in checks)
