"""mooncake_master, real or mock, as one service class with the real binary's flags.

with MooncakeMaster("mock", {"client_ttl": 2}) as master:
    store.setup("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", master.rpc_addr)
    httpx.get(master.url_for("metrics"))
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from kvtest.ports import free_port
from kvtest.process import ManagedProcess
from kvtest.readiness import CallProbe, HttpProbe, Probe, wait_ready
from kvtest.service import READY_CAP_S, SyncService

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
        use_docker: bool | None = None,
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
        # a container from the kvtest host image (testcontainers); KVTEST_MASTER=docker asks for it
        if use_docker is None:
            use_docker = os.environ.get("KVTEST_MASTER") == "docker" and not wrap and not in_process
        self.use_docker = use_docker
        self.handle: Any = None  # what the launcher returned, or the ServiceContainer
        self._launcher: Any = None

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
    def start(self, timeout: float = READY_CAP_S) -> MooncakeMaster:
        """In this process (in_process), in a container (use_docker) or as a process; one waiter."""
        f = self.flags
        f.setdefault("rpc_port", free_port())
        f.setdefault("metrics_port", free_port())
        if self.use_docker:
            # its own network namespace: bind everything, and the container's address is the host's
            f.setdefault("rpc_address", "0.0.0.0")
            f.setdefault("metrics_host", "0.0.0.0")
        f.setdefault("rpc_address", self.host)
        f.setdefault("metrics_host", self.host)
        if f.get("enable_http_metadata_server"):
            f.setdefault("http_metadata_server_port", free_port())
            f.setdefault("http_metadata_server_host", "0.0.0.0" if self.use_docker else self.host)
        if self.use_docker:
            return self._start_container(timeout)
        from kvtest.cluster.launchers.inprocess import InProcessLauncher
        from kvtest.cluster.launchers.local import LocalLauncher
        from kvtest.cluster.render import Launch
        from kvtest.cluster.schema import Host

        root = Path(__file__).resolve().parents[2]  # so `-m simulators.mooncake` imports from any cwd
        reach = "inprocess" if self.in_process else "local"
        self._launcher = (InProcessLauncher if self.in_process else LocalLauncher)(self.log_dir)
        launch = Launch(name=f"{self.name}-{self.impl}", kind="master", argv=self.argv(), env=self.env,
                        host=Host(name="local", reach=reach, workdir=str(root)), probes=self.probes(),
                        ready_timeout_s=timeout)  # fmt: skip
        self.handle = self._launcher.spawn(launch, self.log_path)
        self.proc = getattr(self.handle, "proc", None)
        wait_ready(self.handle, launch.probes, timeout)
        return self

    def _start_container(self, timeout: float) -> MooncakeMaster:
        from kvtest.services.container import ServiceContainer

        program = [str(Path(sys.executable).parent / "mooncake_master")] if self.impl == "real" else \
            [sys.executable, "-m", "simulators.mooncake"]  # fmt: skip
        container = ServiceContainer(f"{self.name}-{self.impl}", [*program, *self.flag_args()],
                                     self.log_path, self.env)  # fmt: skip
        self.handle = container
        self.host = container.start("Master service started on port", timeout)
        wait_ready(container, self.probes(), timeout)
        return self

    def probes(self) -> list[Probe]:
        probes: list[Probe] = [HttpProbe(self.url_for("health"))]
        if self.flags.get("enable_http_metadata_server"):
            # the real master answers /health before its metadata server listens (about 1 s later);
            # the probe key is missing, so any answer (404) means it listens
            probes.append(HttpProbe(self.metadata_url + "?key=kvtest-probe", any_status=True))
        if self.probe is not None:  # a namespaced master: GET from inside its namespace
            probe = self.probe
            url = self.url_for("health")
            probes = [CallProbe(f"GET {url} in the namespace", lambda: probe(url))]
        return probes

    def alive(self) -> bool:
        return self.handle is not None and self.handle.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, as a nemesis would cause it (in-process: every socket closes at once)."""
        if self.handle is not None:
            self.handle.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.kill()  # and reap it

    def pause(self) -> None:
        if self.handle is not None:
            self.handle.signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.handle is not None:
            self.handle.signal(signal.SIGCONT)

    def stop(self) -> None:
        handle, self.handle = self.handle, None
        try:
            if handle is not None:
                handle.stop()
        finally:
            if self._launcher is not None:
                self._launcher.close()
                self._launcher = None

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
