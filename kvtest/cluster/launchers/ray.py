"""reach: ray — an existing Ray cluster places the processes (`kvtest[ray]`).

    hosts:
      - name: prefill-machine
        reach: ray
        ray: {address: "ray://head:10001", resource: kvtest_prefill}   # or node_ip: / labels:

Each process (etcd, mooncake_master, a vLLM node, the proxy) runs under a supervisor: a detached,
named Ray actor pinned to the host's Ray node (NodeAffinitySchedulingStrategy, hard), which starts it
as a process group, answers poll/signal/stop, and hands its output back in chunks that stream into
the run directory (logs/<name>.log), so a node on another machine logs where a local one does.
A node's GPUs are asked of Ray (num_gpus = the node's GPU count), so Ray, not the cluster file,
picks CUDA_VISIBLE_DEVICES: the supervisor passes its own on to the process.

Why actors and not Ray Jobs: a job's entrypoint is one shell command with no pid to signal, no
per-process placement and no readiness of its own; a supervisor actor gives the runner what every
launcher gives it (a handle with poll/signal/stop) and Ray's placement. Detached and named
(kvtest:<run>:<process>, namespace "kvtest"), because `kvtest cluster up` returns while the
processes keep running and `kvtest cluster down` must find them from another shell.

The driver connects with Ray Client (address ray://HEAD:10001), so the machine running kvtest need
not be a Ray node, or, on a machine that is one (the head, usually), as a plain driver (address
HEAD:6379, the GCS), which needs no Ray Client server. The nodes must see the same paths as this
machine (one image or one shared install, as KubeRay pods of one image do), like the local and
docker launchers (same_paths).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, ClassVar

from kvtest.cluster.render import Launch
from kvtest.cluster.schema import Host

NAMESPACE = "kvtest"
LOG_CHUNK = 1 << 20
PULL_INTERVAL_S = 1.0  # how often output of running processes is copied into the run directory
RAY_CALL_S = 60.0  # one call to a supervisor; bounds a lost Ray cluster, not a slow one


class RayPlacementError(RuntimeError):
    """A host's Ray node cannot be found (or Ray cannot be reached)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayPlacementError("reach: ray needs Ray: pip install 'kvtest[ray]'") from None
    return ray


_connected: list[str] = []  # the address this process's Ray Client talks to


def connect(address: str) -> Any:
    """Ray Client to `address` (one per process; another address reconnects)."""
    ray = _ray()
    if _connected and _connected[0] == address and ray.is_initialized():
        return ray
    if ray.is_initialized():
        ray.shutdown()
    _connected.clear()
    import sys

    # the supervisor travels by value: Ray nodes need no kvtest, only the programs it starts
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    options: dict[str, Any] = {}
    if not address.startswith("ray://"):
        # HOST:PORT of the head's GCS: this process is a driver on this machine's Ray node (the
        # head or a worker), which Ray finds by the node's address
        options["_node_ip_address"] = _local_ip_towards(address.rsplit(":", 1)[0])
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level="ERROR", **options)
    except Exception as exc:
        raise RayPlacementError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    _connected.append(address)
    return ray


def _local_ip_towards(host: str) -> str:
    """The address this machine uses to reach `host` (the interface a Ray node here listens on)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((host, 9))  # UDP connect sends nothing: it only picks the route
        return str(sock.getsockname()[0])


class Supervisor:
    """Runs in a Ray actor on the chosen node: one process group and its output."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None, files: dict[str, str]) -> None:
        for path, content in files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content)
        fd, self.log = tempfile.mkstemp(prefix="kvtest-ray-", suffix=".log")
        with os.fdopen(fd, "wb") as out:
            # os.environ carries what Ray set for this actor: CUDA_VISIBLE_DEVICES for its GPUs
            self.proc = subprocess.Popen(
                argv,
                env=os.environ | env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def poll(self) -> int | None:
        return self.proc.poll()

    def read_log(self, offset: int) -> tuple[bytes, int]:
        with open(self.log, "rb") as fh:
            fh.seek(offset)
            data = fh.read(LOG_CHUNK)
        return data, offset + len(data)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float) -> int | None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.signal(signal.SIGKILL)  # what outlived the leader too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return self.proc.returncode


def _node_label(node: dict[str, Any]) -> str:
    custom = sorted(k for k in node.get("Resources", {}) if not k.startswith(("node:", "CPU", "GPU", "memory",
                                                                              "object_store")))  # fmt: skip
    labels = node.get("Labels") or {}
    return f"{node.get('NodeManagerAddress')} resources={custom} labels={labels}"


def pick_node(host: Host, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The alive Ray node this host names: by node_ip, custom resource or labels."""
    placement = host.ray
    assert placement is not None
    alive = [n for n in nodes if n.get("Alive")]
    if placement.node_ip:
        found = [n for n in alive if n.get("NodeManagerAddress") == placement.node_ip]
        how = f"node_ip {placement.node_ip}"
    elif placement.resource:
        found = [n for n in alive if n.get("Resources", {}).get(placement.resource, 0) > 0]
        how = f"resource {placement.resource!r}"
    else:
        want = placement.labels
        found = [n for n in alive if want.items() <= (n.get("Labels") or {}).items()]
        how = f"labels {want}"
    if len(found) != 1:
        have = "; ".join(_node_label(n) for n in alive) or "none"
        what = "no alive Ray node" if not found else f"{len(found)} Ray nodes (one is needed)"
        raise RayPlacementError(f"host {host.name}: {what} with {how} (alive nodes: {have})")
    return found[0]


class RayProcess:
    def __init__(self, launch: Launch, actor: Any, actor_name: str, address: str, log_path: Path) -> None:
        self.launch = launch
        self.actor = actor
        self.actor_name = actor_name
        self.address = address
        self.log_path: Path | None = log_path
        self._offset = 0
        self._lock = threading.Lock()
        self._done: int | None = None

    @property
    def name(self) -> str:
        return self.launch.name

    def _call(self, method: str, *args: Any, timeout: float = RAY_CALL_S) -> Any:
        ray = _ray()
        return ray.get(getattr(self.actor, method).remote(*args), timeout=timeout)

    def pull_log(self) -> None:
        """Copy the output the supervisor has that the run directory lacks."""
        if self.log_path is None:
            return
        with self._lock:
            try:
                while True:
                    data, offset = self._call("read_log", self._offset)
                    if not data:
                        return
                    with self.log_path.open("ab") as fh:
                        fh.write(data)
                    self._offset = offset
            except Exception:  # the actor is gone: what was copied is what there is
                return

    def poll(self) -> int | None:
        if self._done is not None:
            return self._done
        try:
            code = self._call("poll")
        except Exception as exc:  # the actor died (its node went away): the process is gone too
            self._done = -1
            if self.log_path is not None:
                with self.log_path.open("a") as fh:
                    fh.write(f"[kvtest] Ray supervisor lost: {type(exc).__name__}: {exc}\n")
            return self._done
        if code is not None:
            self.pull_log()
        return code

    def signal(self, sig: int) -> None:
        self._call("signal", sig)

    def stop(self, grace: float = 8.0) -> None:
        ray = _ray()
        with contextlib.suppress(Exception):
            self._call("stop", grace, timeout=grace + RAY_CALL_S)
        self.pull_log()
        with contextlib.suppress(Exception):
            ray.kill(self.actor)
        self._done = self._done if self._done is not None else -15

    def record(self) -> dict[str, Any]:
        return {"reach": "ray", "address": self.address, "actor": self.actor_name, "namespace": NAMESPACE}


class RayLauncher:
    same_paths: ClassVar[bool] = True

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run = run_dir.name
        self.node_ids: dict[str, str] = {}
        self.handles: list[RayProcess] = []
        self._stop_pulling = threading.Event()
        self._puller: threading.Thread | None = None

    def provision(self, hosts: list[Host]) -> list[Host]:
        out = []
        for host in hosts:
            if host.ray is None:
                raise RayPlacementError(f"host {host.name}: reach ray needs a `ray:` section (address, ...)")
            ray = connect(host.ray.address)
            node = pick_node(host, ray.nodes())
            self.node_ids[host.name] = node["NodeID"]
            out.append(host.model_copy(update={"address": node["NodeManagerAddress"]}))
        return out

    def spawn(self, launch: Launch, log_path: Path) -> RayProcess:
        assert launch.host.ray is not None
        ray = connect(launch.host.ray.address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        env = launch.host.env | launch.env
        visible = env.pop("CUDA_VISIBLE_DEVICES", "")  # Ray assigns the GPUs it grants
        gpus = len([g for g in visible.split(",") if g.strip()])
        name = f"kvtest:{self.run}:{launch.name}"
        actor_class = ray.remote(Supervisor)
        actor = actor_class.options(
            name=name,
            namespace=NAMESPACE,
            lifetime="detached",  # outlives `kvtest cluster up`; `cluster down` kills it by name
            num_cpus=0,
            num_gpus=gpus,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node_ids[launch.host.name], soft=False),
        ).remote(launch.argv, env, launch.host.workdir or os.getcwd(), launch.files)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = RayProcess(launch, actor, name, launch.host.ray.address, log_path)
        self.handles.append(handle)
        self._start_pulling()
        return handle

    def _start_pulling(self) -> None:
        if self._puller is not None:
            return

        def pull() -> None:
            while not self._stop_pulling.wait(PULL_INTERVAL_S):
                for handle in list(self.handles):
                    handle.pull_log()

        self._puller = threading.Thread(target=pull, name="kvtest-ray-logs", daemon=True)
        self._puller.start()

    def close(self) -> None:
        self._stop_pulling.set()
        if self._puller is not None:
            self._puller.join(RAY_CALL_S)
            self._puller = None

    @staticmethod
    def stop_recorded(record: dict[str, Any], grace: float = 8.0) -> None:
        ray = connect(record["address"])
        try:
            actor = ray.get_actor(record["actor"], namespace=record.get("namespace", NAMESPACE))
        except ValueError:  # already gone
            return
        with contextlib.suppress(Exception):
            ray.get(actor.stop.remote(grace), timeout=grace + RAY_CALL_S)
        with contextlib.suppress(Exception):
            ray.kill(actor)

    @staticmethod
    def clean_run(run_dir: Path) -> None:
        pass
