"""Start masters (real or mock) and in-process store clients for one test; stop them all after."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack

from kvtest.metrics.exposition import sums
from kvtest.services import MooncakeMaster, mooncake_master_binary
from kvtest.store import real_store_available, store_class

SEG = 64 << 20
BUF = 16 << 20

# The real transfer engine binds the first non-loopback address unless MC_TCP_BIND_ADDRESS names one,
# and a real client's setup() against a dead master retries ~90 s unless this is 1.
os.environ.setdefault("MC_TCP_BIND_ADDRESS", "127.0.0.1")
os.environ.setdefault("MC_STORE_CLIENT_SETUP_RETRIES", "1")


def real_available() -> tuple[bool, str]:
    if mooncake_master_binary() is None:
        return False, "mooncake_master not installed (make install-system)"
    return real_store_available()


ROOT = Path(__file__).resolve().parents[2]


class ClientProcess:
    """A store client (mock or real) in a child process; methods are proxied. kill() is a crash."""

    def __init__(
        self, impl: str, log_path: Path, env: dict[str, str] | None = None, wrap: list[str] | None = None
    ) -> None:
        self.log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*(wrap or []), sys.executable, "-m", "tests.store.client_host", impl],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT,
            env=os.environ | (env or {}),
        )  # fmt: skip

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = msgpack.packb([method, list(args), kwargs], use_bin_type=True)
        self.proc.stdin.write(len(data).to_bytes(4, "big") + data)
        self.proc.stdin.flush()
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            raise ConnectionError(f"client process died (exit {self.proc.poll()})")
        ok, result = msgpack.unpackb(self.proc.stdout.read(int.from_bytes(head, "big")), raw=False)
        if not ok:
            raise RuntimeError(result)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: self.call(name, *a, **k)

    def kill(self) -> None:
        if self.proc.poll() is None:  # ip netns exec execs the command: this pid is the client
            self.proc.kill()
        self.proc.wait(5)
        self.log.close()


class StoreCluster:
    def __init__(self, impl: str, run_dir: Path) -> None:
        self.impl = impl
        self.run_dir = run_dir
        self.masters: list[MooncakeMaster] = []
        self.clients: list[Any] = []
        self.setup_codes: list[int] = []

    def master(self, process: bool = False, **flags: Any) -> MooncakeMaster:
        # the mock master runs on a thread here (cheap); tests/store/test_mock_cli.py runs it as a process
        m = MooncakeMaster(self.impl, flags, log_dir=self.run_dir, name=f"master{len(self.masters)}",  # type: ignore[arg-type]
                           in_process=self.impl == "mock" and not process)  # fmt: skip
        self.masters.append(m)
        m.start()
        return m

    def client(
        self,
        master: MooncakeMaster,
        *,
        segment: int = SEG,
        buffer: int = BUF,
        metadata: str = "P2PHANDSHAKE",
        host: str = "127.0.0.1",
        check: bool = True,
        inproc: bool = False,
        process: bool = False,
        protocol: str = "tcp",
    ) -> Any:
        """A set-up client: in its own process unless inproc (needed for the pointer APIs)."""
        # mock clients close at once, so they stay in this process unless the test needs to kill one
        if inproc or (self.impl == "mock" and not process):
            store = store_class(self.impl)()  # type: ignore[arg-type]
        else:
            n = len(self.clients)
            store = ClientProcess(self.impl, self.run_dir / f"client{n}-{self.impl}.log")
        self.clients.append(store)
        code = store.setup(host, metadata, segment, buffer, protocol, "", master.rpc_addr)
        self.setup_codes.append(code)
        if check:
            assert code == 0, f"{self.impl} setup returned {code}"
        return store

    def close(self) -> None:
        for m in self.masters:
            m.kill()  # a crash is enough for a test's master, and much faster than a clean stop
            m.stop()
        for c in self.clients:
            if isinstance(c, ClientProcess):
                c.kill()
            else:
                c.close()


def metrics(master: MooncakeMaster) -> dict[str, float]:
    return sums(httpx.get(master.url_for("metrics"), timeout=5).text)


# How late an event the master produces by itself (a log line, an expired lease or client, an eviction
# by its background thread) may come on a loaded machine beyond its own schedule (a TTL). wait_for
# returns as soon as it happens, so this only bounds a hang; fixed 5-8 s budgets did not survive load.
EVENT_CAP_S = 60.0


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until pred() is truthy (a deadline, never a fixed sleep); returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
