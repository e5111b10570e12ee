"""`python -m simulators.mooncake --rpc_port=50051 --metrics_port=9003 ...`: the mock master, with
mooncake_master's gflags. Unknown flags are reported on stderr and ignored."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from .flags import parse_flags
from .glog import GlogFormatter
from .server import MockMooncakeMaster


def main(argv: list[str] | None = None) -> int:
    cfg, unknown = parse_flags(sys.argv[1:] if argv is None else argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GlogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    if unknown:
        logging.getLogger("mooncake.master").warning("ignoring unknown flags: %s", " ".join(unknown))
    return asyncio.run(_run(cfg))


async def _run(cfg: object) -> int:
    master = MockMooncakeMaster(cfg)  # type: ignore[arg-type]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with master:
        await stop.wait()
        logging.getLogger("mooncake.master").info("Shutdown signal received, exiting gracefully")
    return 0


if __name__ == "__main__":
    sys.exit(main())
