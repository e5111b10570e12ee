"""`kvtest cluster up|down|status|logs --cluster FILE`.

up      start everything, print the proxy and node URLs, and return (processes keep running);
        --foreground stays until Ctrl-C/SIGTERM and then takes the cluster down (exit status 130
        or 143, as a shell reports a process ended by that signal); Ctrl-C during the start stops
        what was started, whatever was under way; --dry-run prints
        the rendered command lines and mooncake.json files and starts nothing.
down    stop what the last `up` of that cluster started (from its state.json), from any shell.
status  one line per process: name, URL, healthy or not.
logs    the last lines of every log (or of one: --name p0).
The last `up` of a cluster is found through runs/<cluster name>.current (or give --state FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kvtest import interrupts
from kvtest.cluster.render import describe, render
from kvtest.cluster.runner import down, new_run_dir, start, status
from kvtest.cluster.schema import ClusterFileError, ClusterSpec, load_cluster, parse_cluster
from kvtest.netns import NetnsNetwork
from kvtest.process import ProcessExitedError, ReadyTimeoutError, tail


def _pointer(runs: Path, name: str) -> Path:
    return runs / f"{name}.current"


def _state_path(args: argparse.Namespace) -> Path:
    if args.state:
        return Path(args.state)
    spec = load_cluster(args.cluster)
    pointer = _pointer(Path(args.runs), spec.name)
    if not pointer.exists():
        raise FileNotFoundError(f"no running cluster {spec.name!r} ({pointer} is missing; was `up` run?)")
    return Path(pointer.read_text().strip()) / "state.json"


def _say(msg: str) -> None:
    print(f"kvtest cluster: {msg}", file=sys.stderr, flush=True)


def _up(args: argparse.Namespace) -> int:
    spec = load_cluster(args.cluster)
    runs = Path(args.runs)
    if args.dry_run:
        if spec.attach is not None:
            print(f"# {spec.name}: an attached deployment; nothing is started there")
            for node in spec.attach.nodes:
                print(f"# {node.role:<8} {node.name}: {node.url}")
            print(f"# proxy: {spec.attach.proxy_url or 'kvtest proxy started here' if spec.proxy else '-'}")
            return 0
        print(describe(render(spec, (runs / f"dry-run-{spec.name}").resolve())))
        return 0
    try:
        with interrupts.deferred_interrupts():
            return _start(spec, runs, args)
    except interrupts.Interrupted as exc:
        _say("interrupted, everything stopped")
        return exc.exit_code


def _start(spec: ClusterSpec, runs: Path, args: argparse.Namespace) -> int:
    """Start, print the URLs, and (--foreground) serve until a signal; signals are deferred here, so
    every wait below answers Ctrl-C/SIGTERM at once and the teardown runs to its end."""
    run_dir = Path(args.run_dir).resolve() if args.run_dir else new_run_dir(spec, runs)
    topology = NetnsNetwork.for_spec(spec).start() if spec.uses_netns else None
    runs.mkdir(parents=True, exist_ok=True)
    _pointer(runs, spec.name).write_text(str(run_dir) + "\n")
    cluster = None
    try:
        cluster = start(spec, run_dir, cluster_file=str(args.cluster), log=_say)
        print(
            json.dumps(
                {
                    "run_dir": str(run_dir),
                    "proxy_url": cluster.proxy_url,
                    "nodes": {n.name: n.url for n in cluster.nodes},
                    "ready_s": cluster.ready_s,
                },
                indent=2,
            ),
            flush=True,
        )
        if args.foreground:
            _say("running until Ctrl-C or SIGTERM")
            while True:
                interrupts.sleep(3600.0)  # raises Interrupted on a signal
        interrupts.check()  # a signal during the last steps of the start: take it all down
        return 0
    except (ProcessExitedError, ReadyTimeoutError) as exc:
        _say(f"start failed, everything stopped:\n{exc}")
        if topology:
            topology.stop()
        return 1
    except BaseException:
        if cluster is not None:
            cluster.stop()
            _say("stopped")
        if topology:
            topology.stop()
        raise


def _down(args: argparse.Namespace) -> int:
    path = _state_path(args)
    if not path.exists():
        _say(f"nothing running ({path} is missing)")
        return 0
    down(path, log=_say)
    spec_path = path.parent / "cluster.json"
    if spec_path.exists():  # namespaces `up` made for this cluster's hosts
        spec = parse_cluster(json.loads(spec_path.read_text()), str(spec_path))
        if spec.uses_netns:
            NetnsNetwork.for_spec(spec).stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    rows = status(_state_path(args))
    for r in rows:
        print(f"{r['name']:<20} {r['kind']:<7} {r['url'] or '-':<28} {'healthy' if r['healthy'] else 'DOWN'}")
    return 0 if all(r["healthy"] for r in rows) else 1


def _logs(args: argparse.Namespace) -> int:
    path = _state_path(args)
    if not path.exists():
        path = path.with_name("state.stopped.json")
    state = json.loads(path.read_text())
    for record in state["processes"]:
        if args.name and record["name"] != args.name:
            continue
        print(f"==> {record['log']} <==")
        print(tail(Path(record["log"]), args.lines))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kvtest cluster", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("up", "down", "status", "logs"):
        sp = sub.add_parser(name)
        sp.add_argument("--cluster", required=name == "up", help="cluster file (YAML)")
        sp.add_argument("--runs", default="runs", help="where run directories go (default: runs)")
        if name == "up":
            sp.add_argument("--run-dir", default=None)
            sp.add_argument("--dry-run", action="store_true")
            sp.add_argument("--foreground", action="store_true")
        else:
            sp.add_argument(
                "--state", default=None, help="a run's state.json (default: the cluster's last up)"
            )
        if name == "logs":
            sp.add_argument("--name", default=None)
            sp.add_argument("-n", "--lines", type=int, default=40)
    args = p.parse_args(argv)
    if args.command != "up" and not args.cluster and not args.state:
        p.error("--cluster or --state is required")
    try:
        return {"up": _up, "down": _down, "status": _status, "logs": _logs}[args.command](args)
    except (ClusterFileError, FileNotFoundError) as exc:
        _say(str(exc))
        return 2
