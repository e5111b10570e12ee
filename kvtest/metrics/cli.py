"""`kvtest metrics --node URL...`: scrape now, print per-node counters, or the delta from a saved snapshot."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from kvtest.metrics.scrape import delta, format_table, load, save, scrape_all


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kvtest metrics", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--node", nargs="+", required=True, metavar="URL", help="node base URL or HOST:PORT")
    p.add_argument("--model", default=None, help="count only samples with this model_name label")
    p.add_argument("--save", default=None, metavar="FILE", help="write this snapshot as JSON")
    p.add_argument("--since", default=None, metavar="FILE", help="print the delta from a saved snapshot")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    snaps = asyncio.run(scrape_all(args.node, model=args.model))
    if args.save:
        save(args.save, snaps)
    before = {}
    if args.since:
        try:
            before = load(args.since)
        except (OSError, ValueError, KeyError) as exc:
            print(f"kvtest metrics: cannot read {args.since}: {exc}", file=sys.stderr)
            return 2
    rows = [delta(before.get(n), s) for n, s in snaps.items()]
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    bad = [r for r in rows if r.error]
    for r in bad:
        print(f"{r.node}: {r.error}", file=sys.stderr)
    return 1 if bad else 0
