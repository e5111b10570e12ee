"""`kvtest demo` (all five experiments, a report) and `kvtest experiment NAME` (one of them).

    kvtest demo                                   # fixtures/clusters/seed.yaml on simulators
    kvtest demo --cluster my-gpus.yaml            # the same run against a real cluster
    kvtest experiment designate --cluster FILE    # designate | rr | random | same_prefix | putget
    kvtest experiment rr --cluster-state runs/.../state.json   # a cluster `kvtest cluster up` started

Both start the cluster (or attach to a running one), print each experiment's per-node table, write a run
directory (runs/<time>-<name>/, the layout kvtest/report documents) and stop what they started. Exit
status: 0 when every experiment that could run passed, 1 when any FAILed or none could run, 2 for a usage
or start error; an experiment the cluster cannot run is printed as "not available: <reason>" (and listed in
run.json) and is not a pass. The run directory also keeps every dataset sent (requests/*.jsonl, the seed's
format, for `kvtest expect --datapath`) and its results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.schema import ClusterFileError, ClusterSpec, load_cluster
from kvtest.cluster.shipped import resolve_cluster_file
from kvtest.experiments.runner import (
    ORDER,
    Outcome,
    format_result,
    format_unavailable,
    run_experiments,
    write_run,
)
from kvtest.experiments.session import ExperimentSession

DEFAULT_CLUSTER = "seed"


def resolve_cluster(value: str) -> Path:
    """A path as given, else fixtures/clusters/<name>.yaml under the current directory, else the
    copy shipped with kvtest."""
    return resolve_cluster_file(value)


@contextlib.contextmanager
def running_cluster(spec: ClusterSpec, run_dir: Path, say: bool) -> Iterator[Cluster]:
    from kvtest.cluster.runner import start
    from kvtest.netns import NetnsNetwork

    with contextlib.ExitStack() as stack:
        if spec.uses_netns:
            stack.enter_context(NetnsNetwork.for_spec(spec))
        t0 = time.monotonic()
        cluster = start(
            spec, run_dir / "cluster", log=(lambda m: print(f"  {m}")) if say else (lambda m: None)
        )
        stack.callback(cluster.stop)
        print(f"cluster {spec.name!r} up in {time.monotonic() - t0:.1f}s: {len(cluster.nodes)} vLLM nodes")
        yield cluster


def session_for(
    cluster: Cluster, spec: ClusterSpec | None, seed: int = 0, salt: str | None = None
) -> ExperimentSession:
    """The experiment session of a running cluster. salt None: a fresh one per run on an attached
    deployment (its caches may hold an earlier run's contexts), none on a cluster kvtest started."""
    if salt is None:
        salt = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f") if cluster.attached else ""
    real = spec is not None and (spec.attached or any(n.impl == "real" for n in spec.nodes))
    return ExperimentSession.for_cluster(
        cluster,
        tolerance=spec.tolerances.hit_rate_abs if (spec is not None and real) else 0.0,
        hash_seed=spec.hash_seed if spec is not None else "0",
        seed=seed,
        salt=salt,
    )


def report(run_dir: Path, meta: dict[str, object], outcome: Outcome) -> int:
    from kvtest.report.cli import render_run

    for res in outcome.results:
        print(format_result(res), end="\n\n")
    for name, why in outcome.unavailable.items():
        print(format_unavailable(name, why), end="\n\n")
    if not outcome.results:
        print("no experiment could run")
        return 1
    write_run(run_dir, meta, outcome)
    rendered = render_run(run_dir)
    passed = sum(r.passed for r in outcome.results)
    print(
        f"{passed} passed, {len(outcome.results) - passed} failed, {len(outcome.unavailable)} not available"
    )
    print(f"report: {rendered.report}")
    return 0 if outcome.passed else 1


def _run(args: argparse.Namespace, names: Sequence[str], title: str) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    spec: ClusterSpec | None = None
    spec_of_state: ClusterSpec | None = None
    if args.cluster_state:
        cluster = Cluster.from_state(args.cluster_state)
        name = cluster.name
        # `kvtest cluster up` saved the spec beside its state: tolerances and hash_seed come from it
        saved = cluster.run_dir / "cluster.json"
        if saved.is_file():
            spec_of_state = ClusterSpec.model_validate_json(saved.read_text())
    else:
        try:
            spec = load_cluster(resolve_cluster(args.cluster))
        except ClusterFileError as exc:
            print(f"kvtest: {exc}", file=sys.stderr)
            return 2
        name = spec.name
    run_dir = Path(args.out or Path("runs") / f"{stamp}-{title.replace(' ', '-')}-{name}").resolve()
    meta: dict[str, object] = {
        "title": f"kvtest {title} on {name}",
        "cluster": str(args.cluster_state or resolve_cluster(args.cluster)),
        "started_at": stamp,
        "seed": args.seed,
        "requests": "requests/<experiment>-run<k>.jsonl: each dataset sent (kvtest expect --datapath), "
        "with .results.jsonl beside it",
    }

    async def go(cluster: Cluster) -> Outcome:
        session = session_for(cluster, spec or spec_of_state, args.seed, args.salt)
        meta["salt"] = session.salt
        session.record_dir = run_dir / "requests"
        return await run_experiments(session, names)

    try:
        if spec is None:
            outcome = asyncio.run(go(cluster))
        else:
            with running_cluster(spec, run_dir, args.verbose) as cluster:
                outcome = asyncio.run(go(cluster))
    except Exception as exc:  # a start failure already carries the log tail
        print(f"kvtest {title}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return report(run_dir, meta, outcome)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", default=DEFAULT_CLUSTER, help=f"cluster file (default {DEFAULT_CLUSTER})")
    p.add_argument("--cluster-state", default=None, help="state.json of a cluster `kvtest cluster up` runs")
    p.add_argument("--seed", type=int, default=0, help="seed of every dataset (routes, context numbers)")
    p.add_argument(
        "--salt",
        default=None,
        help="prefix every prompt with '[run SALT] ' (default: the run's time on an attached cluster, "
        "none on a cluster kvtest starts)",
    )
    p.add_argument("--out", default=None, help="run directory (default runs/<time>-<command>-<cluster>)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each process as it starts")


def demo_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kvtest demo", description="the seed's five experiments on a cluster, with a report"
    )
    _common(p)
    args = p.parse_args(argv)
    return _run(args, ORDER, "demo")


def experiment_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kvtest experiment", description="run one of the seed's experiments")
    p.add_argument("name", choices=ORDER)
    _common(p)
    args = p.parse_args(argv)
    return _run(args, [args.name], f"experiment {args.name}")
