"""The router under test: a shell command with placeholders, started in its own process group."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from kvtest.ports import free_port
from kvtest.process import ManagedProcess
from kvtest.readiness import HttpProbe, wait_ready_async

PLACEHOLDERS = ("port", "prefill", "decode", "prefill_host", "prefill_port", "decode_host", "decode_port",
                "bootstrap_port", "metrics_port")  # fmt: skip
# {metrics_port}: a second free port, for routers that open their own metrics listener (vllm-router's
# Prometheus exporter binds a fixed default port, so two of them on one host collide)


def kvtest_proxy_cmd(flow: str) -> str:
    """kvtest's own proxy as a router command (what `kvtest conformance` rates without --proxy-cmd)."""
    return (
        f"{shlex.quote(sys.executable)} -m kvtest proxy --port {{port}} --prefill {{prefill}} "
        f"--decode {{decode}} --flow {flow} --bootstrap-port {{bootstrap_port}}"
    )


def fill(template: str, values: dict[str, str]) -> str:
    """Replace the known {name}s; anything else in braces (JSON in a flag, say) is left as written."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


class RouterProcess:
    def __init__(
        self, template: str, values: dict[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.port = free_port()
        ports = {"port": str(self.port), "metrics_port": str(free_port())}
        self.cmd = fill(template, values | ports)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc = ManagedProcess(
            "router under test", ["/bin/sh", "-c", self.cmd], cwd=cwd, log_path=log_path
        )

    async def start(self, within: float) -> float:
        """Start it and wait until it answers HTTP below 500 on its port; the seconds that took.

        ProcessExitedError / ReadyTimeoutError carry the command and the tail of its log."""
        self.proc.start()
        probe = HttpProbe(self.url + "/v1/models", below=500, timeout=2.0)
        return await wait_ready_async(self.proc, [probe], within, interval=0.2)

    def stop(self) -> int | None:
        return self.proc.stop()
