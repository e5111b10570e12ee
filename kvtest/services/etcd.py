"""etcd for the transfer engine's metadata: a container when a Docker engine answers, else the
`etcd` binary (Debian's etcd-server). Same fixture either way.

    with EtcdServer() as etcd:
        store.setup("127.0.0.1", etcd.endpoint, ...)     # "etcd://127.0.0.1:PORT"
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvtest import interrupts
from kvtest.ports import free_port
from kvtest.process import ManagedProcess, ReadyTimeoutError, http_ok
from kvtest.service import SyncService

ETCD_IMAGE = "quay.io/coreos/etcd:v3.5.17"


@dataclasses.dataclass
class EtcdConfig:
    """Fields are etcd's flags; 0 ports are picked free at start()."""

    name: str = "kvtest"
    listen_client_port: int = 0
    listen_peer_port: int = 0
    host: str = "127.0.0.1"
    data_dir: str = ""
    use_docker: bool | None = None  # None: Docker when an engine answers


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


class EtcdServer(SyncService):
    def __init__(
        self, cfg: EtcdConfig | None = None, *, log_dir: Path | None = None, wrap: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg or EtcdConfig()
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="kvtest-etcd-"))
        self.log_path = self.log_dir / f"etcd-{self.cfg.name}.log"
        self.wrap = list(wrap)  # e.g. ["ip", "netns", "exec", "h0"]
        self.proc: ManagedProcess | None = None
        self._container: Any = None

    @property
    def client_url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.listen_client_port}"

    @property
    def endpoint(self) -> str:
        """What mooncake.json's metadata_server takes."""
        return f"etcd://{self.cfg.host}:{self.cfg.listen_client_port}"

    def url_for(self, *parts: str) -> str:
        return self.client_url + "/" + "/".join(p.strip("/") for p in parts)

    def start(self, timeout: float = 20.0) -> EtcdServer:
        c = self.cfg
        c.listen_client_port = c.listen_client_port or free_port()
        use_docker = docker_available() if c.use_docker is None else c.use_docker
        if use_docker and not self.wrap:
            self._start_container()
        else:
            self._start_binary()
        self.wait_ready(timeout)
        return self

    def _start_binary(self) -> None:
        c = self.cfg
        binary = shutil.which("etcd")
        if binary is None:
            raise FileNotFoundError("etcd not found (apt-get install etcd-server)")
        c.listen_peer_port = c.listen_peer_port or free_port()
        data_dir = c.data_dir or tempfile.mkdtemp(prefix="etcd-", dir=self.log_dir)
        client = f"http://{c.host}:{c.listen_client_port}"
        peer = f"http://{c.host}:{c.listen_peer_port}"
        argv = [*self.wrap, binary, "--name", c.name, "--data-dir", data_dir,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{c.name}={peer}", "--log-level", "warn"]  # fmt: skip
        self.proc = ManagedProcess(f"etcd-{c.name}", argv, log_path=self.log_path).start()

    def _start_container(self) -> None:
        from testcontainers.core.container import DockerContainer

        c = self.cfg
        container = DockerContainer(ETCD_IMAGE).with_command(
            "etcd --name kvtest --listen-client-urls http://0.0.0.0:2379 "
            "--advertise-client-urls http://0.0.0.0:2379"
        )
        container.with_bind_ports(2379, c.listen_client_port)
        self._container = container.start()

    def wait_ready(self, timeout: float = 20.0) -> float:
        probe = lambda: http_ok(self.url_for("health"))  # noqa: E731
        if self.proc is not None:
            return self.proc.wait_ready(probe, timeout)
        import time

        t0 = time.monotonic()
        while not probe():
            if time.monotonic() - t0 > timeout:
                raise ReadyTimeoutError(f"etcd container not healthy in {timeout:.0f}s")
            interrupts.sleep(0.05)
        return time.monotonic() - t0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None
        if self._container is not None:
            self._container.stop()
            self._container = None
