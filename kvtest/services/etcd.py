"""etcd for the transfer engine's metadata: a container (testcontainers, on the locally built kvtest
host image) when a Docker engine answers, else the `etcd` binary (Debian's etcd-server). Same
fixture either way; the command line is etcd_argv's, which kvtest.cluster.render uses too.

    with EtcdServer() as etcd:
        store.setup("127.0.0.1", etcd.endpoint, ...)     # "etcd://127.0.0.1:PORT" (or the container's)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kvtest.ports import free_port
from kvtest.readiness import HttpProbe, Probe, wait_ready
from kvtest.service import READY_CAP_S, SyncService
from kvtest.services.container import ServiceContainer, docker_available

__all__ = ["EtcdConfig", "EtcdServer", "docker_available", "etcd_argv"]


def etcd_argv(
    program: Sequence[str], data_dir: str, client_url: str, peer_url: str,
    name: str = "kvtest", log_level: str = "warn",
) -> list[str]:  # fmt: skip
    """A one-member etcd cluster listening on client_url (clients) and peer_url."""
    return [*program, f"--name={name}", f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={name}={peer_url}", f"--log-level={log_level}"]  # fmt: skip


@dataclasses.dataclass
class EtcdConfig:
    """Fields are etcd's flags; 0 ports are picked free at start()."""

    name: str = "kvtest"
    listen_client_port: int = 0
    listen_peer_port: int = 0
    host: str = "127.0.0.1"
    data_dir: str = ""
    # None: a container when an engine answers (KVTEST_ETCD=binary|docker forces one path)
    use_docker: bool | None = None


def _want_docker(cfg: EtcdConfig) -> bool:
    if cfg.use_docker is not None:
        return cfg.use_docker
    forced = os.environ.get("KVTEST_ETCD")
    if forced:
        return forced == "docker"
    return docker_available()


class EtcdServer(SyncService):
    def __init__(
        self, cfg: EtcdConfig | None = None, *, log_dir: Path | None = None, wrap: Sequence[str] = ()
    ) -> None:
        self.cfg = cfg or EtcdConfig()
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="kvtest-etcd-"))
        self.log_path = self.log_dir / f"etcd-{self.cfg.name}.log"
        self.wrap = list(wrap)  # e.g. ["ip", "netns", "exec", "h0"]
        self.handle: object | None = None  # a LocalProcess (binary) or a ServiceContainer
        self.in_container = False

    @property
    def client_url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.listen_client_port}"

    @property
    def endpoint(self) -> str:
        """What mooncake.json's metadata_server takes."""
        return f"etcd://{self.cfg.host}:{self.cfg.listen_client_port}"

    def url_for(self, *parts: str) -> str:
        return self.client_url + "/" + "/".join(p.strip("/") for p in parts)

    def start(self, timeout: float = READY_CAP_S) -> EtcdServer:
        c = self.cfg
        c.listen_client_port = c.listen_client_port or free_port()
        c.listen_peer_port = c.listen_peer_port or free_port()
        if _want_docker(c) and not self.wrap:
            self._start_container(timeout)
        else:
            self._start_binary(timeout)
        return self

    def _start_binary(self, timeout: float) -> None:
        from kvtest.cluster.launchers.local import LocalLauncher
        from kvtest.cluster.render import Launch
        from kvtest.cluster.schema import Host

        c = self.cfg
        binary = shutil.which("etcd")
        if binary is None:
            raise FileNotFoundError("etcd not found (apt-get install etcd-server)")
        data_dir = c.data_dir or tempfile.mkdtemp(prefix="etcd-", dir=self.log_dir)
        argv = etcd_argv([*self.wrap, binary], data_dir, self.client_url,
                         f"http://{c.host}:{c.listen_peer_port}", c.name)  # fmt: skip
        probes: list[Probe] = [HttpProbe(self.url_for("health"))]
        launch = Launch(name=f"etcd-{c.name}", kind="etcd", host=Host(name="local"), argv=argv, env={},
                        probes=probes, ready_timeout_s=timeout)  # fmt: skip
        handle = LocalLauncher(self.log_dir).spawn(launch, self.log_path)
        self.handle = handle
        wait_ready(handle, probes, timeout)

    def _start_container(self, timeout: float) -> None:
        c = self.cfg
        # inside its own network namespace every port is free: listen on all addresses, then the
        # container's address is the one clients use
        argv = etcd_argv(["etcd"], "/tmp/etcd-data", f"http://0.0.0.0:{c.listen_client_port}",
                         f"http://127.0.0.1:{c.listen_peer_port}", c.name, log_level="info")  # fmt: skip
        container = ServiceContainer(f"etcd-{c.name}", argv, self.log_path)
        self.handle = container
        self.in_container = True
        c.host = container.start("ready to serve client requests", timeout)
        wait_ready(container, [HttpProbe(self.url_for("health"))], timeout)

    def stop(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.stop()  # type: ignore[attr-defined]
