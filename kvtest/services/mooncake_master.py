"""mooncake_master, real or mock, as one service class with the real binary's flags.

with MooncakeMaster("mock", {"client_ttl": 2}) as master:
    store.setup("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", master.rpc_addr)
    httpx.get(master.url_for("metrics"))
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from kvtest import interrupts
from kvtest.ports import free_port
from kvtest.process import ManagedProcess, ReadyTimeoutError, http_ok
from kvtest.service import SyncService

Impl = Literal["real", "mock"]


def mooncake_master_binary() -> str | None:
    """The real master: next to this interpreter (the .venv the wheel went into), else on PATH."""
    beside = Path(sys.executable).parent / "mooncake_master"
    if beside.exists():
        return str(beside)
    return shutil.which("mooncake_master")


def _flag(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f"--{name}={'true' if value else 'false'}"
    return f"--{name}={value}"


class MooncakeMaster(SyncService):
    def __init__(
        self,
        impl: Impl = "mock",
        flags: Mapping[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        log_dir: Path | None = None,
        wrap: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        name: str = "master",
        in_process: bool = False,
        probe: Callable[[str], bool] | None = None,
    ) -> None:
        if impl not in ("real", "mock"):
            raise ValueError(f"impl must be 'real' or 'mock', not {impl!r}")
        self.impl = impl
        self.host = host
        self.flags: dict[str, Any] = dict(flags or {})
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="kvtest-master-"))
        self.log_path = self.log_dir / f"{name}-{impl}.log"
        self.wrap = list(wrap)
        self.env = dict(env or {})
        self.name = name
        # how to GET a URL for readiness; a namespaced master needs a probe run inside its namespace
        self.probe = probe
        self.proc: ManagedProcess | None = None
        # mock only: run the master on a thread of this process (no interpreter start-up per test)
        self.in_process = in_process and impl == "mock"
        self._threaded: _ThreadedMock | None = None

    # --- addresses --------------------------------------------------------------------------------
    @property
    def rpc_port(self) -> int:
        return int(self.flags["rpc_port"])

    @property
    def rpc_addr(self) -> str:
        """What mooncake.json's master_server_address takes."""
        return f"{self.host}:{self.rpc_port}"

    @property
    def metadata_url(self) -> str:
        """The HTTP metadata server (needs enable_http_metadata_server)."""
        return f"http://{self.host}:{self.flags['http_metadata_server_port']}/metadata"

    def url_for(self, *parts: str) -> str:
        """The admin/metrics server: url_for("metrics"), url_for("query_key") ..."""
        return f"http://{self.host}:{self.flags['metrics_port']}/" + "/".join(p.strip("/") for p in parts)

    def argv(self) -> list[str]:
        if self.impl == "real":
            binary = mooncake_master_binary()
            if binary is None:
                raise FileNotFoundError(
                    "mooncake_master not found (pip install mooncake-transfer-engine-non-cuda)"
                )
            cmd = [binary]
        else:
            cmd = [sys.executable, "-m", "simulators.mooncake"]
        return [*self.wrap, *cmd, *self.flag_args()]

    def flag_args(self) -> list[str]:
        return [_flag(k, v) for k, v in self.flags.items()]

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> MooncakeMaster:
        f = self.flags
        f.setdefault("rpc_port", free_port())
        f.setdefault("metrics_port", free_port())
        f.setdefault("rpc_address", self.host)
        f.setdefault("metrics_host", self.host)
        if f.get("enable_http_metadata_server"):
            f.setdefault("http_metadata_server_port", free_port())
            f.setdefault("http_metadata_server_host", self.host)
        if self.in_process:
            self._threaded = _ThreadedMock(self.flag_args(), self.log_path)
            self._threaded.start()
            self.wait_ready(timeout)
            return self
        root = Path(__file__).resolve().parents[2]  # so `-m simulators.mooncake` imports from any cwd
        self.proc = ManagedProcess(f"{self.name}-{self.impl}", self.argv(), env=self.env, cwd=root,
                                   log_path=self.log_path).start()  # fmt: skip
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> float:
        probes = [self.url_for("health")]
        if self.flags.get("enable_http_metadata_server"):
            # the real master answers /health before its metadata server listens (about 1 s later)
            probes.append(self.metadata_url + "?key=kvtest-probe")
        if self.probe is not None:
            probe = self.probe
            ready = lambda: all(probe(u) for u in probes[:1])  # noqa: E731
        else:
            ready = lambda: all(_answers(u) for u in probes)  # noqa: E731
        if self._threaded is not None:
            t0 = time.monotonic()
            while not ready():
                if time.monotonic() - t0 > timeout:
                    raise ReadyTimeoutError(f"in-process mock master not ready in {timeout:.1f}s")
                interrupts.sleep(0.01)
            return time.monotonic() - t0
        assert self.proc is not None, "start() first"
        return self.proc.wait_ready(ready, timeout)

    def alive(self) -> bool:
        if self._threaded is not None:
            return self._threaded.alive()
        return self.proc is not None and self.proc.alive()

    def kill(self) -> None:
        """SIGKILL: a crash, as a nemesis would cause it (in-process: every socket closes at once)."""
        if self._threaded is not None:
            self._threaded.stop()
        if self.proc is not None:
            self.proc.kill()

    def pause(self) -> None:
        if self.proc is not None:
            self.proc.signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._threaded is not None:
            self._threaded.stop()
        if self.proc is not None:
            self.proc.stop()

    def rss_bytes(self) -> int:
        """Resident memory of the master process (its whole process group when wrapped)."""
        import psutil

        if self.proc is None or self.proc.pid is None:
            return 0  # in process: not separable from the test's own memory
        p = psutil.Process(self.proc.pid)
        procs = [p, *p.children(recursive=True)]
        return max(q.memory_info().rss for q in procs)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _answers(url: str) -> bool:
    """The server is up: any HTTP answer (the metadata probe key is missing, so 404 is fine)."""
    import httpx

    if url.endswith("/health"):
        return http_ok(url)
    try:
        httpx.get(url, timeout=1.0)
        return True
    except httpx.HTTPError:
        return False


class _ThreadedMock:
    """The mock master's asyncio loop on a daemon thread, logging to its own file."""

    def __init__(self, flags: list[str], log_path: Path) -> None:
        from simulators.mooncake.flags import parse_flags
        from simulators.mooncake.glog import GlogFormatter

        cfg, unknown = parse_flags(flags)
        self.logger = logging.getLogger(f"mooncake.master.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(log_path)
        self.handler.setFormatter(GlogFormatter())
        self.logger.addHandler(self.handler)
        if unknown:
            self.logger.warning("ignoring unknown flags: %s", " ".join(unknown))
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="mock-master", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        from simulators.mooncake.server import MockMooncakeMaster

        master = MockMooncakeMaster(self.cfg, self.logger)
        try:
            self.loop.run_until_complete(master.start())
        except BaseException as e:
            self._error = e
            self._started.set()
            return
        self._started.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(master.stop())
            self.loop.close()

    def start(self) -> None:
        self.thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.logger.removeHandler(self.handler)
        self.handler.close()
