"""Launchers: how a process gets onto a host, one per value of a host's `reach` in the cluster file.

    launcher = launcher_class(host.reach)(run_dir)
    hosts = launcher.provision(hosts)           # machines made now (containers) get their addresses
    handle = launcher.spawn(launch, log_path)   # a rendered process (kvtest.cluster.render.Launch)
    handle.poll(); handle.signal(SIGSTOP); handle.stop(); handle.log_path
    launcher.close()                            # whatever provision made

The runner (kvtest.cluster.runner) does the order, the waves, readiness (kvtest.readiness), the state
file and teardown once for every launcher. A new launcher is one module here with a class that
meets `Launcher` (kvtest.cluster.launchers.base) plus one entry in REGISTRY below; the cluster
schema takes its `reach` names from REGISTRY. Entries are import paths so that the schema can read
the names without importing every launcher's dependencies (the docker SDK, for one).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvtest.cluster.launchers.base import Launcher

REGISTRY: dict[str, str] = {
    "local": "kvtest.cluster.launchers.local:LocalLauncher",
    "ssh": "kvtest.cluster.launchers.ssh:SSHLauncher",
    "inprocess": "kvtest.cluster.launchers.inprocess:InProcessLauncher",
    "docker": "kvtest.cluster.launchers.docker:DockerLauncher",
    "ray": "kvtest.cluster.launchers.ray:RayLauncher",
}
REACHES = tuple(REGISTRY)


def launcher_class(reach: str) -> type[Launcher]:
    try:
        module, name = REGISTRY[reach].split(":")
    except KeyError:
        raise ValueError(f"unknown reach {reach!r} (known: {', '.join(REACHES)})") from None
    cls: type[Launcher] = getattr(importlib.import_module(module), name)
    return cls
