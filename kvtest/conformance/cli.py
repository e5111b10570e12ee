"""`kvtest conformance`: rate a P/D router on fake vLLM nodes.

    kvtest conformance --flow nixl                      # kvtest's own proxy, every group
    kvtest conformance --flow nixl --proxy-cmd 'vllm-router --vllm-pd-disaggregation --host 127.0.0.1 \
        --port {port} --prefill {prefill} --decode {decode} --worker-startup-check-interval 1'

Exit status: 0 when every check of the selected groups passed (or is n/a), 1 when one failed,
2 when the router did not come up (its log tail is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from kvtest.conformance.check import DEFAULT_GROUPS_EXTERNAL, GROUPS, Result
from kvtest.conformance.flows import FLOWS
from kvtest.conformance.recipes import RECIPES, recipe
from kvtest.conformance.report import table, write
from kvtest.conformance.runner import run_conformance
from kvtest.process import ProcessExitedError, ReadyTimeoutError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvtest conformance", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "--proxy-cmd",
        help="the router's command line with {port} {prefill} {decode} {prefill_host} {prefill_port} "
        "{decode_host} {decode_port} {bootstrap_port} {metrics_port}; default: kvtest's own proxy",
    )
    p.add_argument("--flow", choices=list(FLOWS), help="default: nixl, or the recipe's")
    p.add_argument("--recipe", help="a known router's --proxy-cmd and flow (kvtest/conformance/README.md); "
                   "'list' prints them")  # fmt: skip
    p.add_argument(
        "--groups",
        help=f"comma-separated, of {', '.join(GROUPS)}; default: all for kvtest's proxy, "
        f"{','.join(DEFAULT_GROUPS_EXTERNAL)} for another router",
    )
    p.add_argument("--name", help="the router's name in the table (default: the command's first word)")
    p.add_argument("--out", type=Path, default=Path("runs/conformance"), help="where JUnit and JSON go")
    p.add_argument("--bound", type=float, default=30.0, metavar="S",
                   help="longest wait for one answer before the router counts as hanging")  # fmt: skip
    p.add_argument("--ready-within", type=float, default=120.0, metavar="S")
    return p


def groups_for(arg: str | None, proxy_cmd: str | None) -> list[str]:
    if arg:
        return [g.strip() for g in arg.split(",") if g.strip()]
    return list(GROUPS) if proxy_cmd is None else list(DEFAULT_GROUPS_EXTERNAL)


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    if a.recipe == "list":
        for r in RECIPES:
            print(f"{r.name:<30} {r.flow:<9} {r.runnable() or 'runnable here'}")
        return 0
    if a.recipe:
        try:
            chosen = recipe(a.recipe)
        except ValueError as e:
            print(f"kvtest conformance: {e}", file=sys.stderr)
            return 2
        a.flow = a.flow or chosen.flow
        a.name = a.name or chosen.name
        if not chosen.name.startswith("kvtest"):
            a.proxy_cmd = a.proxy_cmd or chosen.command()
    a.flow = a.flow or "nixl"
    try:
        groups = groups_for(a.groups, a.proxy_cmd)
    except ValueError as e:
        print(f"kvtest conformance: {e}", file=sys.stderr)
        return 2

    def progress(r: Result) -> None:
        print(f"  {r.verdict.upper():<4} {r.id} ({r.seconds:.1f}s)", file=sys.stderr, flush=True)

    try:
        run = asyncio.run(run_conformance(a.flow, groups, a.proxy_cmd, router=a.name, bound_s=a.bound,
                                          ready_within_s=a.ready_within, progress=progress))  # fmt: skip
    except (ProcessExitedError, ReadyTimeoutError) as e:
        print(f"kvtest conformance: the router did not come up: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"kvtest conformance: {e}", file=sys.stderr)
        return 2
    print(table(run))
    paths = write(run, a.out)
    print(f"JUnit: {paths['junit']}\nJSON:  {paths['json']}")
    if run.failed:
        print(f"--- router log (last lines) ---\n{run.log_tail}", file=sys.stderr)
    return 1 if run.failed else 0
