"""Experiments 1-4: the prefix-caching tests of the seed's test plan ("Test prefix caching"), each with
a verdict.

- designate: 20 requests to one prefill (and decode) node, sent twice. Seed: that node ~50%, the
  others received no requests.
- rr: 20 requests round robin over the prefill nodes, sent twice. Seed: each prefill node ~50%.
- random: 20 requests on random nodes, sent twice with new draws. Seed: every node below 50%.
- same_prefix: 10 byte-identical requests to one pair, sent once. Seed: ~90%.

Every node row is judged against kvtest.expect exactly on a fake cluster (the cluster file's tolerance on a
real one); on top, a check states the seed's claim (about 50%, below 50%, about 90%) within CLAIM_SLACK,
so a user sees the number the seed's screenshots showed. The local prefix cache is judged here; the KV
connector's external counters are experiment 5's subject. Each experiment uses its own context numbers
(`first_index`), so only the prompts' common first block ("Shared context #") carries over between
experiments, and the session's model accounts for that (kvtest/experiments/session.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from kvtest.experiments.session import ExperimentSession, Step, hostport
from kvtest.report.model import Check, ExperimentResult, NodeRow
from kvtest.workload.dataset import DatasetRequest, DatasetSpec, Strategy, build

# "About 50%": the seed read rates off screenshots, and V1 counts tokens with the n-1 cap, so every
# prompt loses up to one block (block 32 on the 470-token prompt: 50% -> 47.4%, 90% -> 85.2%).
CLAIM_SLACK = 0.1


@dataclass(frozen=True)
class PrefixExperiment:
    name: str
    title: str
    description: str
    strategy: Strategy
    request_num: int
    runs: int
    first_index: int
    claim: Literal["half_on_designated", "half_each", "below_half", "ninety"]
    same_prefix_batch: int = 1
    redraw_routes: bool = False  # the seed's Random script drew new routes for its second run
    pair: Literal["first", "last"] = "first"


EXPERIMENTS: dict[str, PrefixExperiment] = {
    e.name: e
    for e in (
        PrefixExperiment(
            "designate",
            "1. Designate",
            "20 requests designating one prefill and one decode node, sent twice: the designated prefill "
            "node reaches about 50% (the second run hits what the first cached); the others get nothing.",
            "Designate",
            20,
            2,
            first_index=0,
            claim="half_on_designated",
        ),
        PrefixExperiment(
            "rr",
            "2. Round robin",
            "20 requests round robin over the prefill nodes (decode drawn at random, as the seed did), sent "
            "twice: every prefill node reaches about 50%.",
            "RR",
            20,
            2,
            first_index=100,
            claim="half_each",
        ),
        PrefixExperiment(
            "random",
            "3. Random",
            "20 requests on random nodes, sent twice with new draws: the first run's cache is spread over "
            "the nodes and the second run rarely lands where its prompt was, so every node stays below 50%, "
            "exactly as the expectation computes for the routes the datasets recorded.",
            "Random",
            20,
            2,
            first_index=200,
            claim="below_half",
            redraw_routes=True,
        ),
        PrefixExperiment(
            "same_prefix",
            "4. Same prefix",
            "10 byte-identical requests to one prefill/decode pair, sent once: all but the first hit, "
            "about 90%.",
            "Designate",
            10,
            1,
            first_index=300,
            claim="ninety",
            same_prefix_batch=10,
            pair="last",
        ),
    )
}


def datasets(exp: PrefixExperiment, session: ExperimentSession) -> list[list[DatasetRequest]]:
    """The dataset of each run (the same file twice, except Random's second draw)."""
    prefill = [hostport(n) for n in session.prefill]
    decode = [hostport(n) for n in session.decode]
    if exp.pair == "last":
        prefill, decode = prefill[::-1], decode[::-1]
    out = []
    for run in range(exp.runs):
        seed = session.seed + (run if exp.redraw_routes else 0)
        spec = DatasetSpec(
            strategy=exp.strategy,
            request_num=exp.request_num,
            prefill=prefill,
            decode=decode,
            model=session.model_name,
            seed=seed,
            first_index=exp.first_index,
            same_prefix_batch=exp.same_prefix_batch,
            salt=session.salt,
        )
        out.append(build(spec))
    return out


async def run_prefix(exp: PrefixExperiment, session: ExperimentSession) -> ExperimentResult:
    steps: list[Step] = []
    for run, requests in enumerate(datasets(exp, session), 1):
        steps.append(await session.send(requests, run=run, label=f"{exp.name}-run{run}"))
    rows = session.judge(steps)
    result = ExperimentResult(
        name=exp.name,
        title=exp.title,
        description=exp.description,
        metric=session.metric,
        nodes=rows,
        latencies=[_latency(r) for s in steps for r in s.results],
        notes=list(session.notes),
    )
    claim_checks(exp, session, steps, result)
    if session.metric == "v0":
        result.notes.append(
            "V0 nodes export only vllm:gpu_prefix_cache_hit_rate, a block hit rate since the node started "
            "(vLLM 0.9.2 CacheMetricData). Each verdict matched that gauge to the expectation over the "
            "whole session; the table shows this experiment's own block hit rate, '-' on a node it did "
            "not reach."
        )
    result.notes.append(
        "External (KV connector) counters are not judged here: experiment 5 judges them."
        if session.uses_store
        else "No KV connector on these nodes."
    )
    return result


def _latency(res: object) -> dict[str, object]:
    from dataclasses import asdict

    d = asdict(res)  # type: ignore[call-overload]
    d.pop("text", None)
    d.pop("itl_s", None)
    return d  # type: ignore[no-any-return]


def _rate(row: NodeRow) -> str:
    return "-" if row.hit_rate is None else f"{row.hit_rate:.1%}"


def _experiment_rates(session: ExperimentSession, steps: list[Step], rows: dict[str, NodeRow]) -> None:
    """On V0 nodes, make each row's hit rate the seed's figure for THIS experiment, or "-".

    vllm:gpu_prefix_cache_hit_rate is cumulative since the node started, so after earlier
    experiments a node cannot show the seed's 90% (the seed measured fresh nodes), and a node this
    experiment never reached would show the gauge earlier experiments left (46.7% "measured" beside
    0.0% "expected" on a node that saw nothing). The row's verdict has already matched the gauge to the
    model exactly (or within the tolerance); the model's block counts for this experiment's own
    requests then give the rate the seed would have read, and a node with no block queries in this
    experiment has no rate of its own: "-".
    """
    if session.metric != "v0":
        return
    for name, row in rows.items():
        queries = sum(s.expected[name].block_queries for s in steps if name in s.expected)
        hits = sum(s.expected[name].block_hits for s in steps if name in s.expected)
        rate = hits / queries if queries else None
        rows[name] = dataclasses.replace(row, hit_rate=rate, expected=rate)


def claim_checks(
    exp: PrefixExperiment, session: ExperimentSession, steps: list[Step], result: ExperimentResult
) -> None:
    """The seed's sentence about this experiment, as a check (the node rows carry the exact numbers)."""
    rows = {r.node: r for r in result.nodes}
    _experiment_rates(session, steps, rows)
    result.nodes = [rows[r.node] for r in result.nodes]  # the table shows what the checks judge
    slack = CLAIM_SLACK + session.tolerance
    prefill_rows = [rows[n.name] for n in session.prefill]
    first_req = steps[0].requests[0]
    if exp.claim in ("half_on_designated", "ninety"):
        target = session.by_hostport(first_req.prefill or "").name
        row = rows[target]
        want = 0.5 if exp.claim == "half_on_designated" else 0.9
        ok = row.hit_rate is not None and abs(row.hit_rate - want) <= slack
        result.checks.append(
            Check(
                f"{target} hit rate about {want:.0%}",
                "PASS" if ok else "FAIL",
                f"{target} (the designated prefill node) shows {_rate(row)}; the seed saw {want:.0%} "
                f"(accepted: within {slack:.0%})",
            )
        )
        if exp.claim == "half_on_designated":
            busy = [r.node for r in prefill_rows if r.node != target and (r.requests or r.queries)]
            result.checks.append(
                Check(
                    "other prefill nodes untouched",
                    "FAIL" if busy else "PASS",
                    f"{', '.join(busy)} received requests"
                    if busy
                    else f"{len(prefill_rows) - 1} other prefill nodes received no requests at all"
                    if len(prefill_rows) > 1
                    else "this cluster has no other prefill node",
                )
            )
    elif exp.claim == "half_each":
        off = [r for r in prefill_rows if r.hit_rate is None or abs(r.hit_rate - 0.5) > slack]
        result.checks.append(
            Check(
                "every prefill node about 50%",
                "FAIL" if off else "PASS",
                ", ".join(f"{r.node} {_rate(r)}" for r in prefill_rows) + f" (accepted: 50% ± {slack:.0%})",
            )
        )
    elif exp.claim == "below_half":
        if len(session.prefill) < 2:
            result.notes.append(
                "With one prefill node, Random routes like Designate: the seed's 'below 50%' needs several "
                "prefill nodes, so only the exact expectation is checked here."
            )
            return
        used = [r for r in prefill_rows if r.requests]
        high = [r for r in used if r.hit_rate is None or r.hit_rate >= 0.5]
        result.checks.append(
            Check(
                "every prefill node below 50%",
                "FAIL" if high else "PASS",
                ", ".join(f"{r.node} {_rate(r)}" for r in used),
            )
        )
