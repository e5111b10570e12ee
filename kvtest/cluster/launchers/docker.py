"""`reach: docker`: each such host of a cluster file is a container made for the run, a "machine" with
its own hostname and its own address (Docker assigns it from its pool, 198.19.0.0/16 here), on a
network of its own for the run.

    hosts:
      - {name: m0, reach: docker}      # address: filled in when the container exists

The image is the kvtest host image (kvtest.cluster.launchers.image: Debian with etcd, the libraries
mooncake_master and vLLM link, sshd). The checkout and the interpreter are bind-mounted read-only and
the run directory read-write, all at the same paths, so the same command lines, venvs and files work
inside (same_paths). Processes start through `docker exec` (the remote-shell part shared with ssh),
their output streams into logs/ here. Containers and the network carry the label kvtest.run, and are
removed by close(), by a failed or interrupted start (the runner's teardown) and by
`kvtest cluster down` from another shell (clean_run).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

from kvtest.cluster.launchers.remote_shell import RemoteShellLauncher
from kvtest.cluster.schema import Host

ROOT = Path(__file__).resolve().parents[3]
LABEL = "kvtest.run"


def run_id(run_dir: Path) -> str:
    """A name for the run's containers: the run folder's name and a hash of its full path (two
    checkouts can hold runs of the same name)."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"{run_dir.name[-40:]}-{digest}".lstrip("._-")


def _client() -> Any:
    import docker

    return docker.from_env(timeout=60)


class DockerLauncher(RemoteShellLauncher):
    same_paths: ClassVar[bool] = True

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.run = run_id(run_dir)
        self.containers: list[Any] = []
        self.network: Any = None

    def container_name(self, host: Host) -> str:
        return f"kvtest-{self.run}-{host.name}"

    def shell(self, host: Host) -> list[str]:
        return ["docker", "exec", "-i", self.container_name(host), "sh", "-c"]

    def spawn_shell(self, host: Host) -> list[str]:
        # docker exec does not make its process a group leader; setsid does (-w: wait and pass the
        # exit status on, in case setsid had to fork)
        return ["docker", "exec", "-i", self.container_name(host), "setsid", "-w", "sh", "-c"]

    def provision(self, hosts: list[Host]) -> list[Host]:
        if not hosts:
            return hosts
        from kvtest.cluster.launchers.image import ensure_image

        image, seconds, built = ensure_image(lambda m: print(m, file=sys.stderr, flush=True))
        print(f"docker: image {image} {'built' if built else 'cached'} in {seconds:.1f} s", file=sys.stderr)
        client = _client()
        labels = {LABEL: self.run}
        self.network = client.networks.create(f"kvtest-{self.run}", driver="bridge", labels=labels)
        mounts = {path: {"bind": path, "mode": "ro"} for path in shared_paths()}
        mounts[str(self.run_dir.resolve())] = {"bind": str(self.run_dir.resolve()), "mode": "rw"}
        out = []
        for host in hosts:
            container = client.containers.run(
                image, ["sleep", "infinity"], detach=True, name=self.container_name(host),
                hostname=host.name, network=self.network.name, labels=labels | {"kvtest.host": host.name},
                volumes=mounts, working_dir=os.getcwd(), init=True,  # init reaps what exec leaves
                # vLLM's worker queue and the transfer engine's buffers live in /dev/shm; Docker's
                # default is 64 MB
                shm_size="1g",
            )  # fmt: skip
            self.containers.append(container)
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][self.network.name]["IPAddress"]
            out.append(host.model_copy(update={"address": address, "workdir": host.workdir or os.getcwd()}))
        return out

    def close(self) -> None:
        containers, self.containers = self.containers, []
        for container in containers:
            container.remove(force=True)
        if self.network is not None:
            self.network.remove()
            self.network = None

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        client = _client()
        label = f"{LABEL}={run_id(run_dir)}"
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
        for network in client.networks.list(filters={"label": label}):
            network.remove()


def shared_paths() -> list[str]:
    """The checkout (its .venv, .venv-real, fixtures), the current directory, and the interpreter the
    venvs were made from, so every absolute path in a venv's scripts resolves inside too."""
    paths = {str(ROOT), str(Path(sys.base_prefix).resolve())}
    cwd = Path.cwd()
    if cwd != Path("/") and cwd not in ROOT.parents:  # never the container's own system folders
        paths.add(str(cwd))
    # a folder inside another mounted one needs no mount of its own
    return sorted(p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths))
