"""`reach: inprocess`: fake nodes, the mock master and the proxy as services on one asyncio loop in a
background thread of this process; no interpreter start per node, a cluster up in well under a second.

    with up(in_process(load_cluster("fixtures/clusters/sim.yaml"))) as cluster: ...

It takes the SAME rendered command lines as the process launchers (kvtest.cluster.render) and parses
them with each program's own parser (simulators.vllm's parse_serve_args, simulators.mooncake's
parse_flags, kvtest proxy's), so a cluster file means the same thing here as in `kvtest cluster up`.
kvtest.services' in-process mock master runs through this launcher too (one loop thread per launcher).

Limits, by construction: only fake nodes, the mock master and the proxy (a real program or etcd needs
its own process), and one process environment, so every node must ask for the same PYTHONHASHSEED
and MOONCAKE_CONFIG_PATH contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kvtest.cluster.schema import ClusterSpec, Host

if TYPE_CHECKING:
    from kvtest.cluster.render import Launch

# env a node may set that in-process services would share
_SHARED_ENV = ("PYTHONHASHSEED", "MOONCAKE_CONFIG_PATH")


class InProcessUnsupported(ValueError):
    """The cluster file needs separate processes (a real program, etcd, a remote or netns host)."""


def check_in_process(spec: ClusterSpec) -> None:
    problems = [f"node {n.name} is impl real" for n in spec.nodes if n.impl == "real"]
    if spec.mooncake_master and spec.mooncake_master.impl == "real":
        problems.append("mooncake_master is impl real")
    if spec.etcd:
        problems.append("etcd is a separate program")
    problems += [
        f"host {h.name} is not local" for h in spec.hosts if h.reach not in ("local", "inprocess") or h.netns
    ]
    if problems:
        raise InProcessUnsupported(f"cluster {spec.name!r} cannot run in-process: {'; '.join(problems)}")


def in_process(spec: ClusterSpec) -> ClusterSpec:
    """The same cluster with every host `reach: inprocess`, or InProcessUnsupported naming why not."""
    check_in_process(spec)
    hosts = [h.model_copy(update={"reach": "inprocess"}) for h in spec.hosts]
    return spec.model_copy(update={"hosts": hosts})


class BackgroundLoop:
    """An asyncio loop on a daemon thread; run(coro) waits for the result from the calling thread."""

    def __init__(self, name: str = "kvtest-inprocess") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def _after(argv: list[str], marker: str) -> list[str]:
    return argv[argv.index(marker) + 1 :] if marker in argv else []


def _file_logger(name: str, log_path: Path) -> logging.Logger:
    from simulators.mooncake.glog import GlogFormatter

    logger = logging.getLogger(f"kvtest.inprocess.{name}.{id(log_path)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(GlogFormatter())  # the real master's glog lines
    logger.addHandler(handler)
    return logger


def _service(launch: Launch, log_path: Path) -> tuple[Any, logging.Logger | None]:
    if launch.kind == "master" and "simulators.mooncake" in launch.argv:
        from simulators.mooncake import MockMooncakeMaster, parse_flags

        cfg, unknown = parse_flags(_after(launch.argv, "simulators.mooncake"))
        logger = _file_logger(launch.name, log_path)
        if unknown:
            logger.warning("ignoring unknown flags: %s", " ".join(unknown))
        return MockMooncakeMaster(cfg, logger), logger
    if launch.kind == "vllm" and "simulators.vllm" in launch.argv:
        from simulators.vllm.config import parse_serve_args
        from simulators.vllm.server import FakeVLLMServer

        cfg, _ = parse_serve_args(_after(launch.argv, "serve"))
        return FakeVLLMServer(cfg), None
    if launch.kind == "proxy":
        from kvtest.proxy.cli import build_parser, config_from_args
        from kvtest.proxy.server import PDProxy

        return PDProxy(config_from_args(build_parser().parse_args(_after(launch.argv, "proxy")))), None
    what = {"master": "a real mooncake_master", "vllm": "a real vLLM node", "etcd": "etcd"}[launch.kind]
    raise InProcessUnsupported(f"{launch.name}: {what} cannot run in-process")


class InProcessService:
    def __init__(self, launch: Launch, service: Any, loop: BackgroundLoop, log_path: Path,
                 logger: logging.Logger | None) -> None:  # fmt: skip
        self.launch = launch
        self.service = service
        self.loop = loop
        self.log_path: Path | None = log_path
        self.logger = logger
        self.stopped = False

    @property
    def name(self) -> str:
        return self.launch.name

    def poll(self) -> int | None:
        return 0 if self.stopped else None

    def signal(self, sig: int) -> None:
        if sig not in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
            raise NotImplementedError(
                f"{self.name} runs in-process: {signal.Signals(sig).name} is not possible"
            )
        self.stop()

    def stop(self, grace: float = 8.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.loop.run(self.service.stop(), timeout=max(grace, 10.0))
        finally:
            if self.logger is not None:
                for handler in list(self.logger.handlers):
                    self.logger.removeHandler(handler)
                    handler.close()

    def record(self) -> dict[str, Any]:
        return {"reach": "inprocess"}


class InProcessLauncher:
    same_paths: ClassVar[bool] = True

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._loop: BackgroundLoop | None = None
        self._env_wanted: dict[str, str] = {}
        self._env_previous: dict[str, str | None] = {}

    def provision(self, hosts: list[Host]) -> list[Host]:
        return hosts

    def _share_env(self, launch: Launch) -> None:
        """Set the env the services agree on (one process, one environment)."""
        for key in _SHARED_ENV:
            if key not in launch.env:
                continue
            value = launch.env[key]
            if self._env_wanted.setdefault(key, value) != value and key == "PYTHONHASHSEED":
                raise InProcessUnsupported(f"nodes disagree on {key}; in-process they would share it")
            if key not in self._env_previous:
                self._env_previous[key] = os.environ.get(key)
                os.environ[key] = value

    def spawn(self, launch: Launch, log_path: Path) -> InProcessService:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        for path, content in launch.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        self._share_env(launch)  # before the service exists: a fake node reads the env when made
        service, logger = _service(launch, log_path)
        with log_path.open("a") as fh:
            fh.write(f"$ (in-process) {shlex.join(launch.argv)}\n")
        if self._loop is None:
            self._loop = BackgroundLoop()
        handle = InProcessService(launch, service, self._loop, log_path, logger)
        try:
            self._loop.run(service.start())
        except BaseException:
            with contextlib.suppress(Exception):
                handle.stop()
            raise
        return handle

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        for key, value in self._env_previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env_previous.clear()
        self._env_wanted.clear()

    @staticmethod
    def stop_recorded(record: dict[str, Any], grace: float = 8.0) -> None:
        pass  # they lived and ended with the process that started them

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        pass
