"""The `kvtest` command: one subcommand per job, each living in the module that owns it.

Subcommands are imported lazily so `kvtest proxy` does not pay for matplotlib and
`kvtest report` does not pay for aiohttp.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> ("module:function", one-line help). Each function takes argv (list[str]) and returns an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "proxy": ("kvtest.proxy.cli:main", "run the P/D proxy"),
    "dataset": (
        "kvtest.workload.cli:dataset_main",
        "write a prefix-caching dataset (the seed's JSONL format)",
    ),
    "send": ("kvtest.workload.cli:send_main", "post a dataset through a proxy and record timings"),
    "bench": ("kvtest.workload.bench_serve:main", "serving benchmark (`kvtest bench serve`)"),
    "metrics": ("kvtest.metrics.cli:main", "scrape /metrics from nodes and print hit counters"),
    "expect": ("kvtest.expect:main", "compute the counters each node must show for a dataset"),
    "demo": ("kvtest.experiments.cli:demo_main", "run the seed's experiments on a cluster, with a report"),
    "experiment": ("kvtest.experiments.cli:experiment_main", "run one of the seed's experiments"),
    "kv-routing": (
        "kvtest.experiments.kv_routing:main",
        "compare kv_aware / prefix / round robin / random by prefix-cache hit rate",
    ),
    "report": ("kvtest.report.cli:main", "render a run directory as Markdown, PNG charts and JUnit XML"),
    "cluster": ("kvtest.cluster.cli:main", "bring a cluster file up or down, show status and logs"),
    "conformance": ("kvtest.conformance.cli:main", "rate a P/D router (any command) on fake vLLM nodes"),
    "replay": (
        "kvtest.replay.cli:main",
        "replay a Mooncake trace through simulated nodes on a virtual clock",
    ),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: kvtest COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"kvtest: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"kvtest: command {name!r} is not available in this build ({exc})", file=sys.stderr)
            return 2
        raise
    result = getattr(module, func_name)(rest)
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
