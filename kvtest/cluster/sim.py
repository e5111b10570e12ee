"""A simulator cluster run inside this process: no interpreter start per node, up in well under a second.

    with sim_up(load_cluster("fixtures/clusters/sim.yaml")) as cluster:
        httpx.post(f"{cluster.proxy_url}/v1/completions", json=...)

It takes the SAME rendered command lines as the process launchers (kvtest.cluster.render) and
parses them with each program's own parser (simulators.vllm's parse_serve_args,
simulators.mooncake's parse_flags, kvtest proxy's), so a cluster file means the same thing here as
in `kvtest cluster up`. The services run on one asyncio loop in a background thread.

Limits, by construction: only fake nodes, the mock master and the proxy on local hosts (a real
program or etcd needs its own process: use kvtest.cluster.runner), and one process environment,
so every node must ask for the same PYTHONHASHSEED and MOONCAKE_CONFIG_PATH contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

from kvtest import interrupts
from kvtest.cluster.cluster import Cluster
from kvtest.cluster.render import Launch, render
from kvtest.cluster.runner import _cluster_of, new_run_dir
from kvtest.cluster.schema import ClusterSpec

# env a node may set that in-process services would share
_SHARED_ENV = ("PYTHONHASHSEED",)


class InProcessUnsupported(ValueError):
    """The cluster file needs separate processes (a real program, etcd, a remote or netns host)."""


def check_in_process(spec: ClusterSpec) -> None:
    problems = [f"node {n.name} is impl real" for n in spec.nodes if n.impl == "real"]
    if spec.mooncake_master and spec.mooncake_master.impl == "real":
        problems.append("mooncake_master is impl real")
    if spec.etcd:
        problems.append("etcd is a separate program")
    problems += [f"host {h.name} is not local" for h in spec.hosts if h.reach != "local" or h.netns]
    if problems:
        raise InProcessUnsupported(f"cluster {spec.name!r} cannot run in-process: {'; '.join(problems)}")


def _after(argv: list[str], marker: str) -> list[str]:
    return argv[argv.index(marker) + 1 :]


class _Loop:
    """An asyncio loop on a daemon thread; run(coro) waits for the result from this thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kvtest-sim", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _service(launch: Launch) -> Any:
    if launch.kind == "master":
        from simulators.mooncake import MockMooncakeMaster, parse_flags

        cfg, _ = parse_flags(_after(launch.argv, "simulators.mooncake"))
        return MockMooncakeMaster(cfg)
    if launch.kind == "vllm":
        from simulators.vllm.config import parse_serve_args
        from simulators.vllm.server import FakeVLLMServer

        cfg, _ = parse_serve_args(_after(launch.argv, "serve"))
        return FakeVLLMServer(cfg)
    if launch.kind == "proxy":
        from kvtest.proxy.cli import build_parser, config_from_args
        from kvtest.proxy.server import PDProxy

        return PDProxy(config_from_args(build_parser().parse_args(_after(launch.argv, "proxy"))))
    raise InProcessUnsupported(f"{launch.name}: {launch.kind} cannot run in-process")


def _apply_shared_env(launches: list[Launch]) -> dict[str, str | None]:
    """Set the env the nodes agree on; return the previous values to restore."""
    wanted: dict[str, str] = {}
    for launch in launches:
        for key in _SHARED_ENV:
            if key in launch.env and wanted.setdefault(key, launch.env[key]) != launch.env[key]:
                raise InProcessUnsupported(f"nodes disagree on {key}; in-process they would share it")
        # one mooncake.json for all, since MOONCAKE_CONFIG_PATH is process-wide
        for path, content in launch.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        if "MOONCAKE_CONFIG_PATH" in launch.env:
            wanted.setdefault("MOONCAKE_CONFIG_PATH", launch.env["MOONCAKE_CONFIG_PATH"])
    previous = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    return previous


def _restore_env(previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sim_start(spec: ClusterSpec, run_dir: Path | None = None) -> Cluster:
    check_in_process(spec)
    run_dir = run_dir.resolve() if run_dir else new_run_dir(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = render(spec, run_dir)
    previous = _apply_shared_env([la for la in plan.launches if la.kind == "vllm"])
    loop = _Loop()
    started: list[Any] = []

    def stop() -> None:
        try:
            for service in reversed(started):
                with contextlib.suppress(Exception):
                    loop.run(service.stop())
        finally:
            loop.close()
            _restore_env(previous)

    with interrupts.deferred_interrupts():  # a Ctrl-C lands between services, never inside one
        try:
            for kind in ("master", "vllm", "proxy"):  # the start order of the process launchers
                for launch in (la for la in plan.launches if la.kind == kind):
                    interrupts.check()
                    service = _service(launch)
                    loop.run(service.start())
                    started.append(service)
            interrupts.check()
        except BaseException:
            stop()
            raise
    cluster = _cluster_of(plan)
    cluster._stop = stop
    return cluster


@contextlib.contextmanager
def sim_up(spec: ClusterSpec, run_dir: Path | None = None) -> Iterator[Cluster]:
    cluster = sim_start(spec, run_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
