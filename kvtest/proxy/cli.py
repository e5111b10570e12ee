"""`kvtest proxy`: run the P/D proxy until SIGINT/SIGTERM.

    kvtest proxy --port 8000 --prefill http://10.0.13.1:8100 --decode http://10.0.14.1:8200 \\
        --strategy round_robin --flow store
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from kvtest.proxy.config import ProxyConfig
from kvtest.proxy.flows import FLOWS
from kvtest.proxy.server import PDProxy
from kvtest.proxy.strategies import STRATEGIES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kvtest proxy", description="P/D disaggregation proxy for vLLM nodes")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed on start)")
    p.add_argument("--prefill", nargs="+", required=True, metavar="URL", help="prefill node URLs")
    p.add_argument("--decode", nargs="+", required=True, metavar="URL", help="decode node URLs")
    p.add_argument("--strategy", choices=list(STRATEGIES), default="round_robin")
    p.add_argument("--flow", choices=list(FLOWS), default="store")
    p.add_argument("--connect-timeout", type=float, default=5.0, metavar="S")
    p.add_argument(
        "--read-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="longest silence allowed between two reads from a backend",
    )
    p.add_argument("--health-timeout", type=float, default=2.0, metavar="S")
    p.add_argument(
        "--allow-any-designation",
        action="store_true",
        help="let the user field designate nodes that are not configured (an open relay: beware)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random strategy")
    p.add_argument(
        "--bootstrap-port",
        type=int,
        nargs="+",
        default=[8998],
        metavar="PORT",
        help="MooncakeConnector bootstrap port: one for all prefill nodes or one per node",
    )
    p.add_argument("--prefix-block-chars", type=int, default=64)
    p.add_argument("--prefix-block-tokens", type=int, default=16)
    p.add_argument("--prefix-blocks", type=int, default=4)
    p.add_argument("--prefix-load-factor", type=float, default=1.25)
    p.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024)
    kv = p.add_argument_group("kv_aware", "KV-event routing (--strategy kv_aware)")
    kv.add_argument(
        "--kv-events",
        nargs="+",
        default=[],
        metavar="ENDPOINT",
        help="each prefill node's --kv-events-config endpoint (tcp://host:port), in --prefill order",
    )
    kv.add_argument(
        "--kv-replay",
        nargs="+",
        default=[],
        metavar="ENDPOINT",
        help="each prefill node's replay_endpoint, in --prefill order",
    )
    kv.add_argument("--kv-model", default=None, metavar="DIR", help="the nodes' model dir (tokenizer)")
    kv.add_argument("--kv-block-size", type=int, default=16)
    kv.add_argument("--kv-hash-algo", default="sha256")
    kv.add_argument("--kv-hash-seed", default=None, help="the nodes' PYTHONHASHSEED")
    kv.add_argument("--kv-topic", default="")
    kv.add_argument(
        "--kv-match-threshold",
        type=float,
        default=0.5,
        help="below this share of a request's blocks cached on the best node, pick the emptiest node",
    )
    p.add_argument("--body-timeout", type=float, default=60.0, help="seconds; a slower request body gets 408")
    return p


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    return ProxyConfig(
        prefill=args.prefill,
        decode=args.decode,
        strategy=args.strategy,
        flow=args.flow,
        host=args.host,
        port=args.port,
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        health_timeout=args.health_timeout,
        allow_any_designation=args.allow_any_designation,
        seed=args.seed,
        bootstrap_port=args.bootstrap_port,
        prefix_block_chars=args.prefix_block_chars,
        prefix_block_tokens=args.prefix_block_tokens,
        prefix_blocks=args.prefix_blocks,
        prefix_load_factor=args.prefix_load_factor,
        max_body_bytes=args.max_body_bytes,
        kv_events=args.kv_events,
        kv_replay=args.kv_replay,
        kv_model=args.kv_model,
        kv_block_size=args.kv_block_size,
        kv_hash_algo=args.kv_hash_algo,
        kv_hash_seed=args.kv_hash_seed,
        kv_topic=args.kv_topic,
        kv_match_threshold=args.kv_match_threshold,
        body_timeout=args.body_timeout,
    )


async def _serve(config: ProxyConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with PDProxy(config) as proxy:
        print(
            f"kvtest proxy on {proxy.url} strategy={config.strategy} flow={config.flow} "
            f"prefill={','.join(config.prefill)} decode={','.join(config.decode)}",
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"kvtest proxy: {exc}", file=sys.stderr)
        return 2
    # Plain asyncio: uvloop measured no better here (bench_proxy.py on a 16-core host, same run).
    asyncio.run(_serve(config))
    return 0
