"""`python -m simulators.vllm serve MODEL [flags]`: run one fake vLLM server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from simulators.vllm.config import parse_serve_args


async def _serve(argv: list[str]) -> int:
    from simulators.vllm.server import FakeVLLMServer

    try:
        cfg, unknown = parse_serve_args(argv)
    except ValueError as e:  # vLLM's start-up refusals (KV memory, max_model_len): message, exit 1
        print(f"ValueError: {e}", file=sys.stderr, flush=True)
        return 1
    if unknown:
        print(
            f"fake vllm: ignoring flags it does not model: {' '.join(unknown)}", file=sys.stderr, flush=True
        )
    if cfg.enable_log_requests:
        from simulators.vllm.request_log import enable_on_stdout

        enable_on_stdout()  # vLLM's loggers write to stdout
    server = FakeVLLMServer(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"fake vllm: serving {cfg.model_names[0]} on {server.url}", file=sys.stderr, flush=True)
        await stop.wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m simulators.vllm serve MODEL [vllm serve flags] [--sim-* flags]")
        return 0 if args else 2
    if args[0] != "serve":
        print(f"unknown command {args[0]!r}; only `serve` exists", file=sys.stderr)
        return 2
    rest = args[1:]
    # vllm serve's defaults when run as a process: all interfaces, port 8000
    if "--host" not in rest and not any(a.startswith("--host=") for a in rest):
        rest += ["--host", "0.0.0.0"]
    if "--port" not in rest and not any(a.startswith("--port=") for a in rest):
        rest += ["--port", "8000"]
    try:
        import uvloop  # type: ignore[import-not-found]

        return uvloop.run(_serve(rest))  # type: ignore[no-any-return]
    except ImportError:
        return asyncio.run(_serve(rest))


if __name__ == "__main__":
    raise SystemExit(main())
