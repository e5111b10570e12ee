"""`python -m simulators.mooncake --rpc_port=50051 --metrics_port=9003 ...`: the mock master, with
mooncake_master's gflags. Unknown flags are reported on stderr and ignored."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from .flags import parse_flags
from .server import MockMooncakeMaster


class GlogFormatter(logging.Formatter):
    """`I1124 00:47:02.700508  5609 master_service.cpp:4428] ...`: glog's layout, so log greps written
    for the real master (e.g. `info=object_already_exists`) work on the mock's log too."""

    def format(self, record: logging.LogRecord) -> str:
        lvl = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}[record.levelname]
        t = time.localtime(record.created)
        usec = int((record.created % 1) * 1e6)
        stamp = time.strftime("%m%d %H:%M:%S", t)
        return f"{lvl}{stamp}.{usec:06d} {os.getpid():6d} mock_master.py:0] {record.getMessage()}"


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
