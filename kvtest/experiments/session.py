"""One experiment session on a running cluster: send datasets, take metric deltas, judge every node.

    session = ExperimentSession.for_cluster(cluster, tolerance=spec.tolerances.hit_rate_abs)
    step = await session.send(requests, run=1)          # scrape, send in order, scrape
    rows = session.judge(step)                           # one NodeRow per node, PASS/FAIL

Why a session, not one expectation per experiment: the seed's prompts all begin "Shared context #", which
is a whole first KV block on a byte-level tokenizer (tiny-llama: 16 tokens = block 16). Every node that
served any earlier experiment therefore hits that block again, so "expected" depends on what the node saw
before. The session feeds EVERY request it sends into one kvtest.expect.ClusterModel (in order, with the
output token counts the nodes reported), and an experiment's expectation is the model's counters after
minus before: exact on a fake cluster whatever ran earlier in the session. On top, each experiment uses
its own context numbers, so nothing past that first block is shared between experiments. Metric deltas
(kvtest.metrics) keep the measured side per experiment. vLLM's POST /reset_prefix_cache is not used: the
fake vLLM serves a reset only under its admin switch (/sim/reset_prefix_cache), and real vLLM only with
VLLM_SERVER_DEV_MODE=1, so the numbers here are those the seed saw on long-running nodes.

A node that had already served requests before the session (its cache content is unknown) gets a note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.connectors import CONNECTORS
from kvtest.cluster.render import NodeEndpoint
from kvtest.expect import ClusterModel, NodeExpectation, Tokenize, load_tokenizer
from kvtest.metrics.scrape import NodeDelta, Snapshot, delta, scrape_all
from kvtest.report.model import NodeRow
from kvtest.report.verdict import judge
from kvtest.workload import dataset
from kvtest.workload.dataset import DatasetRequest
from kvtest.workload.send import RequestResult, send_all, write_results

DEFAULT_BLOCK_SIZE = 16  # vLLM's default --block-size


def hostport(node: NodeEndpoint) -> str:
    """The form the seed's `user` field names a node by (and the proxy resolves): host:port."""
    return node.url.split("://", 1)[-1].rstrip("/")


def node_tokenizer(node: NodeEndpoint, timeout_s: float = 10.0) -> Tokenize:
    """A local tokenizer.json when the node's model is a local dir, else the node's own POST /tokenize
    (exact for any model a real cluster serves; vLLM adds special tokens as a completions request does)."""
    local = Path(node.model)
    if (local / "tokenizer.json").is_file() or local.name.endswith(".json"):
        return load_tokenizer(node.model)
    cache: dict[str, list[int]] = {}

    def tokenize(text: str) -> list[int]:
        if text not in cache:
            resp = httpx.post(
                f"{node.url}/tokenize",
                json={"model": node.model, "prompt": text, "add_special_tokens": True},
                timeout=timeout_s,
            )
            resp.raise_for_status()
            cache[text] = list(resp.json()["tokens"])
        return cache[text]

    return tokenize


@dataclass
class Step:
    """What one send did: the requests, their results, and every node's counters before and after."""

    requests: list[DatasetRequest]
    results: list[RequestResult]
    measured: dict[str, NodeDelta]  # node name -> metric delta
    expected: dict[str, NodeExpectation]  # node name -> model delta (absent: the model sent it nothing)


@dataclass
class ExperimentSession:
    cluster: Cluster
    tolerance: float = 0.0
    # the cluster file's hash_seed (PYTHONHASHSEED of every node); None: each node has its own
    hash_seed: str | None = "0"
    seed: int = 0
    tokenize: Tokenize | None = None
    metric: Literal["v1", "v0"] = "v1"
    model: ClusterModel | None = None
    notes: list[str] = field(default_factory=list)
    # when set, each send writes <label>.jsonl (the dataset, `kvtest expect --datapath`) and
    # <label>.results.jsonl (`kvtest send --out` format) here
    record_dir: Path | None = None
    # in front of every prompt (kvtest.workload.dataset.DatasetSpec.salt): "" sends the seed's prompts;
    # an attached deployment gets one per run, so no cache holds this run's contexts already
    salt: str = ""
    _started: bool = False
    _used_before: dict[str, int] = field(default_factory=dict)  # node -> requests served before

    @classmethod
    def for_cluster(cls, cluster: Cluster, **kwargs: Any) -> ExperimentSession:
        """The one session of this running cluster in this process (scenario tests share it, so the model
        has seen every request sent to the cluster through experiments)."""
        key = str(cluster.run_dir)
        found = _SESSIONS.get(key)
        if found is None:
            found = _SESSIONS[key] = cls(cluster, **kwargs)
        return found

    @property
    def shared_hash_seed(self) -> bool:
        return self.hash_seed is not None

    # --- topology -------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[NodeEndpoint]:
        return list(self.cluster.nodes)

    @property
    def prefill(self) -> list[NodeEndpoint]:
        return [n for n in self.cluster.nodes if n.role in ("prefill", "both")]

    @property
    def decode(self) -> list[NodeEndpoint]:
        return [n for n in self.cluster.nodes if n.role in ("decode", "both")]

    @property
    def model_name(self) -> str:
        return self.cluster.nodes[0].model

    @property
    def block_size(self) -> int:
        return self.cluster.nodes[0].block_size or DEFAULT_BLOCK_SIZE

    @property
    def uses_store(self) -> bool:
        # a node of a cluster kvtest did not start may name a connector kvtest does not know
        kinds = [CONNECTORS.get(n.connector or "") for n in self.cluster.nodes]
        return any(kv is not None and kv.uses_store for kv in kinds)

    @property
    def is_fake(self) -> bool:
        return all(n.impl == "fake" for n in self.cluster.nodes)

    def by_hostport(self, hp: str) -> NodeEndpoint:
        for n in self.cluster.nodes:
            if hostport(n) == hp:
                return n
        raise KeyError(f"no node at {hp}")

    # --- running ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """First snapshot: the metric generation (V1 counters or the V0 gauge) and nodes already used."""
        if self._started:
            return
        snaps = await self._scrape()
        kinds = {s.kind for s in snaps.values() if not s.error}
        self.metric = "v0" if kinds == {"v0"} else "v1"
        for name, snap in snaps.items():
            used = snap.counters.get("requests", 0)
            if used:
                self._used_before[name] = int(used)
                self.notes.append(
                    f"{name} had served {int(used)} requests before this session: "
                    + (
                        f"every prompt starts with '[run {self.salt}]', so its cache cannot hold them "
                        "yet; counters are judged as deltas."
                        if self.salt
                        else "its cache holds blocks kvtest did not send, so its expected counters "
                        "may be too low."
                    )
                )
        if self.tokenize is None:
            self.tokenize = node_tokenizer(self.cluster.nodes[0])
        self.model = ClusterModel(
            self.tokenize,
            block_size=self.block_size,
            flow="pd",
            connector="store" if self.uses_store else "none",
            shared_hash_seed=self.shared_hash_seed,
        )
        self._started = True

    async def _scrape(self) -> dict[str, Snapshot]:
        by_url = await scrape_all([n.url for n in self.cluster.nodes])
        return {n.name: by_url[n.url] for n in self.cluster.nodes}

    async def send(self, requests: Sequence[DatasetRequest], *, run: int = 1, label: str = "") -> Step:
        """Send through the proxy one at a time in dataset order (what kvtest.expect models)."""
        await self.start()
        assert self.model is not None
        if not self.cluster.proxy_url:
            raise RuntimeError(f"cluster {self.cluster.name!r} has no proxy")
        before_model = self.model.counters()
        before = await self._scrape()
        results = await send_all(self.cluster.proxy_url, list(requests), concurrency=1, run=run)
        if self.record_dir is not None and label:
            dataset.write(self.record_dir / f"{label}.jsonl", requests)
            write_results(self.record_dir / f"{label}.results.jsonl", results)
        after = await self._scrape()
        for req, res in zip(requests, results, strict=True):
            # A failed request still reached the prefill node or not: unknowable here; the report
            # fails the experiment on it anyway. Generated tokens decide output blocks (eviction only).
            self.model.submit(req, output_tokens=res.completion_tokens or req.max_tokens)
        names = {hostport(n): n.name for n in self.cluster.nodes}
        expected = {names.get(k, k): _minus(v, before_model.get(k)) for k, v in self.model.counters().items()}
        measured = {n: delta(before[n], after[n]) for n in after}
        return Step(list(requests), results, measured, expected)

    # --- judging --------------------------------------------------------------------------------------
    def judge(self, steps: Sequence[Step], *, external: bool = False) -> list[NodeRow]:
        """One row per node over all `steps` (e.g. run 1 and run 2 of the seed's experiment)."""
        rows = []
        for node in self.cluster.nodes:
            measured = _sum_deltas([s.measured[node.name] for s in steps], node.name)
            expected = _sum_expectations([s.expected.get(node.name) for s in steps], node.name)
            # External queries are not judged: kvtest.expect counts every prompt token (vLLM <= 0.10),
            # vLLM 0.32 and the fake count the tokens the local cache lacked (scheduler.py,
            # connector_prefix_cache_queries = num_tokens - num_new_local_computed_tokens).
            measured = dataclasses.replace(measured, external_queries=0)
            if expected is not None:
                expected = dataclasses.replace(expected, external_queries=0)
            if not external:
                measured = dataclasses.replace(measured, external_hits=0)
                if expected is not None:
                    expected = dataclasses.replace(expected, external_hits=0)
            row = judge(
                measured,
                expected,
                role=node.role,
                machine=node.machine,
                metric=self.metric,
                tolerance=self.tolerance,
            )
            before = self._used_before.get(node.name)
            if before and expected is not None and measured.hits > expected.hits:
                # the one way a node hits more than this session sent it: it had the context already
                row = dataclasses.replace(
                    row,
                    note=f"cache already held {int(measured.hits - expected.hits)} tokens of these "
                    f"contexts (it served {before} requests before this session; a --salt avoids it); "
                    + row.note,
                )
            rows.append(row)
        return rows


_SESSIONS: dict[str, ExperimentSession] = {}


def _minus(after: NodeExpectation, before: NodeExpectation | None) -> NodeExpectation:
    if before is None:
        return after
    out = dataclasses.replace(after)
    for f in (
        "requests",
        "queries",
        "hits",
        "external_queries",
        "external_hits",
        "block_queries",
        "block_hits",
    ):
        setattr(out, f, getattr(after, f) - getattr(before, f))
    return out  # v0_hit_rate stays cumulative: the V0 gauge is since the node started, like vLLM's


def _sum_deltas(parts: Sequence[NodeDelta], node: str) -> NodeDelta:
    out = NodeDelta(node=node, kind=parts[-1].kind if parts else "none")
    for p in parts:
        out.error = out.error or p.error
        for f in ("requests", "queries", "hits", "external_queries", "external_hits"):
            setattr(out, f, getattr(out, f) + getattr(p, f))
        for f in ("prompt_tokens", "generation_tokens"):
            setattr(out, f, getattr(out, f) + getattr(p, f))
        out.v0_hit_rate = p.v0_hit_rate if p.v0_hit_rate is not None else out.v0_hit_rate
    return out


def _sum_expectations(parts: Sequence[NodeExpectation | None], node: str) -> NodeExpectation | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    out = NodeExpectation(node=node, roles=list(present[-1].roles), v0_hit_rate=present[-1].v0_hit_rate)
    for p in present:
        for f in (
            "requests",
            "queries",
            "hits",
            "external_queries",
            "external_hits",
            "block_queries",
            "block_hits",
        ):
            setattr(out, f, getattr(out, f) + getattr(p, f))
    return out
