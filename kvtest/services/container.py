"""The container path of the etcd and master services: testcontainers' DockerContainer on the locally
built kvtest host image (kvtest.cluster.launchers.image), readiness by testcontainers' wait strategy.

The checkout and the interpreter are bind-mounted read-only at the same paths (see image.py for why),
so the container runs the very binaries and venvs this machine has. Ryuk (testcontainers' reaper)
is off: it is an image from a registry, and there is none; stop() removes the container instead, and
every container carries the label kvtest.service so a leftover is easy to find.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kvtest.readiness import ProcessExitedError, ReadyTimeoutError, tail

ROOT = Path(__file__).resolve().parents[2]


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


class ServiceContainer:
    """One program in one container; address() is the container's own (Docker's pool)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        mounts: dict[str, str] | None = None,  # host path -> container path, read-only
    ) -> None:
        self.name = name
        self.mounts = dict(mounts or {})
        self.argv = list(argv)
        self.env = dict(env or {})
        self.log_path = log_path
        self._container: Any = None

    def start(self, ready_log: str, timeout: float) -> str:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        from kvtest.cluster.launchers.docker import shared_paths
        from kvtest.cluster.launchers.image import ensure_image

        testcontainers_config.ryuk_disabled = True
        image, _, _ = ensure_image()
        container = (
            DockerContainer(image)
            .with_command(self.argv)
            .with_kwargs(labels={"kvtest.service": self.name}, working_dir=str(ROOT))
        )
        for path in shared_paths():
            container.with_volume_mapping(path, path, "ro")
        for path, inside in self.mounts.items():
            container.with_volume_mapping(path, inside, "ro")
        for key, value in self.env.items():
            container.with_env(key, value)
        container.waiting_for(LogMessageWaitStrategy(ready_log).with_startup_timeout(int(timeout)))
        self._container = container
        try:
            container.start()
        except Exception as exc:
            self._save_log()
            code = self.poll()
            error = ProcessExitedError if code is not None else ReadyTimeoutError
            what = f"exited with code {code}" if code is not None else "was not ready"
            raise error(
                f"{self.name} (container) {what}: {exc}\n"
                f"--- last lines of {self.log_path} ---\n{tail(self.log_path)}"
            ) from None
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        return str(wrapped.attrs["NetworkSettings"]["IPAddress"])

    @property
    def container_id(self) -> str | None:
        """The running container's id (None before start and after stop)."""
        if self._container is None:
            return None
        return str(self._container.get_wrapped_container().id)

    def poll(self) -> int | None:
        if self._container is None:
            return None
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            return int(wrapped.attrs["State"]["ExitCode"])
        return None

    def exec(self, argv: list[str]) -> str:
        """Run argv in the container; its output."""
        assert self._container is not None, "start() first"
        result = self._container.exec(argv)
        return bytes(result.output).decode(errors="replace")

    def signal(self, sig: int) -> None:
        if self._container is not None:
            self._container.get_wrapped_container().kill(signal=sig)

    def _save_log(self) -> None:
        if self._container is None:
            return
        try:
            out, err = self._container.get_logs()
        except Exception:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(out + err)

    def stop(self) -> None:
        if self._container is not None:
            self._save_log()
            self._container.stop()  # removes it too
            self._container = None
