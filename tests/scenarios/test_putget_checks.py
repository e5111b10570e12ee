"""Experiment 5's verdicts from what the master and the nodes report, on a stubbed cluster: the checks a
user reads (one copy, the dedup where the connector generation puts it, decode's external hits, the
PYTHONHASHSEED case in plain words) pass and fail on the right numbers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.render import NodeEndpoint
from kvtest.expect import NodeExpectation
from kvtest.experiments.putget import NO_HASH_SEED, NotAvailable, run_putget
from kvtest.experiments.session import ExperimentSession, Step
from kvtest.metrics.scrape import NodeDelta
from kvtest.workload.dataset import DatasetRequest

PROMPT_TOKENS = 470
CACHEABLE = 464  # full 16-token blocks of 470 - 1
DEDUP = "second producer found the KV and did not put it"


def _node(name: str, role: str, machine: str) -> NodeEndpoint:
    port = {"p0": 1, "p1": 2, "d0": 3, "d1": 4}[name]
    return NodeEndpoint(
        name, f"http://h:{port}", role, machine, "fake", "MooncakeStoreConnector", "kv_both", "m", "", 16
    )


class StubCluster(Cluster):
    """The master's answers per request: keys after each step, metric deltas per step."""

    def __init__(self, keys: list[int], metrics: list[dict[str, float]]) -> None:
        nodes = [
            _node("p0", "prefill", "a"),
            _node("p1", "prefill", "b"),
            _node("d0", "decode", "a"),
            _node("d1", "decode", "b"),
        ]
        super().__init__("stub", Path("/nonexistent"), "http://proxy", nodes, master_admin_url="http://m")
        self._keys, self._metrics, self.calls = keys, metrics, 0

    def master_keys(self) -> list[str]:
        return ["k"] * self._keys[min(self.calls, len(self._keys) - 1)]

    def master_metrics(self) -> dict[str, float]:
        return self._metrics[min(self.calls, len(self._metrics) - 1)]


class StubSession(ExperimentSession):
    """Each send answers with the node deltas given; the expectation is the seed's arithmetic."""

    def __init__(self, cluster: StubCluster, external_hits: int, **kw: object) -> None:
        super().__init__(cluster, tokenize=lambda s: [1] * PROMPT_TOKENS, **kw)  # type: ignore[arg-type]
        self.stub = cluster
        self.external_hits = external_hits
        self._started = True

    async def send(self, requests: Sequence[DatasetRequest], *, run: int = 1, label: str = "") -> Step:
        req = requests[0]
        p, d = self.by_hostport(req.prefill or "").name, self.by_hostport(req.decode or "").name
        want_ext = CACHEABLE if (run == 2 and self.shared_hash_seed) else 0
        measured = {n.name: NodeDelta(n.name, "v1") for n in self.cluster.nodes}
        expected: dict[str, NodeExpectation] = {}
        for name in (p, d):
            ext = self.external_hits if (name == d and run == 2) else 0
            measured[name] = NodeDelta(name, "v1", requests=1, queries=PROMPT_TOKENS, external_hits=ext)
            expected[name] = NodeExpectation(
                name, requests=1, queries=PROMPT_TOKENS, external_hits=want_ext if name == d else 0
            )
        self.stub.calls += 1
        return Step(list(requests), [], measured, expected)


def _v1_metrics(exists_b: float, puts_b: float) -> list[dict[str, float]]:
    before = {"master_batch_exist_key_requests_total": 0.0, "master_batch_put_start_requests_total": 0.0}
    after_a = {"master_batch_exist_key_requests_total": 1.0, "master_batch_put_start_requests_total": 1.0}
    after_b = {
        "master_batch_exist_key_requests_total": 1.0 + exists_b,
        "master_batch_put_start_requests_total": 1.0 + puts_b,
    }
    return [before, after_a, after_b]


async def test_one_copy_dedup_by_exists_check_and_decode_loads_the_prompt() -> None:
    session = StubSession(StubCluster([0, 29, 29], _v1_metrics(1, 0)), external_hits=CACHEABLE)
    res = await run_putget(session)
    checks = {c.name: c for c in res.checks}
    assert res.passed, [(c.name, c.verdict, c.detail) for c in res.checks]
    assert "one copy stored" in checks and "29 keys for one prompt" in checks["one copy stored"].detail
    assert checks["second producer found the KV and did not put it"].verdict == "PASS"
    assert checks["d1 loaded the KV from the store"].verdict == "PASS"
    assert "PYTHONHASHSEED=0" in " ".join(res.notes)


@pytest.mark.parametrize(
    ("keys", "metrics", "ext", "failing"),
    [
        # the second producer stored its own copy: two keys per block, and it did put
        ([0, 29, 58], _v1_metrics(1, 1), CACHEABLE, ["one copy stored", DEDUP]),
        ([0, 29, 29], _v1_metrics(0, 1), CACHEABLE, [DEDUP]),  # it put without asking
        ([0, 29, 29], _v1_metrics(1, 0), 0, ["d1 loaded the KV from the store"]),  # decode recomputed
    ],
)
async def test_each_failure_is_named(
    keys: list[int], metrics: list[dict[str, float]], ext: int, failing: list[str]
) -> None:
    res = await run_putget(StubSession(StubCluster(keys, metrics), external_hits=ext))
    assert not res.passed
    assert [c.name for c in res.checks if c.verdict == "FAIL"] == failing


async def test_v0_dedup_is_the_masters_already_exists_rejection() -> None:
    def m(rejected: float, lookups: float) -> dict[str, float]:
        return {
            "master_put_start_failures_total": rejected,
            "master_get_replica_list_requests_total": lookups,
        }

    session = StubSession(StubCluster([0, 29, 29], [m(0, 0), m(0, 1), m(29, 2)]), external_hits=0)
    session.metric = "v0"  # no external-hit counter: the master's lookups show decode's get
    res = await run_putget(session)
    check = next(c for c in res.checks if "object_already_exists" in c.name)
    assert check.verdict == "PASS" and check.detail.startswith("29 put_start rejections")
    fetched = next(c for c in res.checks if c.name == "d1 fetched the KV from the store")
    assert fetched.verdict == "PASS" and fetched.detail.startswith("1 lookups")


async def test_without_a_common_hash_seed_nothing_is_shared_and_it_says_so() -> None:
    session = StubSession(StubCluster([0, 29, 58], _v1_metrics(1, 1)), external_hits=0, hash_seed=None)
    res = await run_putget(session)
    assert res.passed, [(c.name, c.verdict, c.detail) for c in res.checks]
    assert NO_HASH_SEED in res.notes
    assert "no sharing without a common PYTHONHASHSEED" in {c.name for c in res.checks}


async def test_a_fake_cluster_whose_producers_store_nothing_is_not_available() -> None:
    session = StubSession(StubCluster([0, 0, 0], _v1_metrics(0, 0)), external_hits=0)
    with pytest.raises(NotAvailable, match="no store connector"):
        await run_putget(session)


async def test_the_producers_own_save_exists_count_is_the_evidence_when_exported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = iter([{"save_exists": 3.0}, {"save_exists": 4.0}])

    async def ops(node: NodeEndpoint) -> dict[str, float]:
        assert node.name == "p1"  # the second producer is the one asked
        return next(calls)

    monkeypatch.setattr("kvtest.experiments.putget.store_operations", ops)
    # the master saw no exist-key request at all: only the node's own counter can pass this
    res = await run_putget(StubSession(StubCluster([0, 29, 29], _v1_metrics(0, 0)), external_hits=CACHEABLE))
    check = next(c for c in res.checks if c.name == DEDUP)
    assert check.verdict == "PASS" and check.detail.startswith("1 p1's save_exists operations")
