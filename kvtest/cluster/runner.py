"""Bring a cluster up in order, wait for each part to be ready, and always take it down again.

    with up(load_cluster("fixtures/clusters/local-cpu.yaml")) as cluster: ...

Order: etcd -> mooncake_master -> vLLM nodes (wave by wave: nodes sharing a GPU one after another)
-> proxy. Each step polls its probe with a deadline and fails at once when a process exits, with
the log tail in the error. On any failure, Ctrl-C (KeyboardInterrupt) or SIGTERM during the start,
everything started so far is stopped in reverse order before the error propagates: signals only
ask to stop (kvtest.interrupts), and the readiness waits answer at once, so the teardown never runs
behind a half-finished call and a second Ctrl-C cannot cut it short. The run
directory (runs/<timestamp>-<cluster>/) gets plan.sh, logs/<name>.log and state.json; state.json
lets `kvtest cluster down/status/logs` act from another shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from kvtest import interrupts
from kvtest.cluster.cluster import Cluster
from kvtest.cluster.local import LocalLauncher
from kvtest.cluster.render import Launch, Plan, Probe, describe, render
from kvtest.cluster.schema import ClusterSpec, Host
from kvtest.cluster.ssh import SSHLauncher, stop_remote_group
from kvtest.ports import port_is_open
from kvtest.process import ProcessExitedError, ReadyTimeoutError, tail

POLL_INTERVAL_S = 0.1
ORDER = ("etcd", "master", "vllm", "proxy")


class Handle(Protocol):
    launch: Launch
    log_path: Path | None

    @property
    def name(self) -> str: ...
    def poll(self) -> int | None: ...
    def stop(self, grace: float = 8.0) -> None: ...
    def record(self) -> dict[str, Any]: ...


def new_run_dir(spec: ClusterSpec, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    path = root / f"{stamp}-{spec.name}"
    path.mkdir(parents=True, exist_ok=False)
    return path.resolve()


def probe_ok(probe: Probe) -> bool:
    if probe.url:
        try:
            return httpx.get(probe.url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
    assert probe.tcp
    return port_is_open(*probe.tcp)


def wait_all_ready(handles: list[Handle], log: Callable[[str], None]) -> dict[str, float]:
    """Poll every handle's probe until all are ready; the first exit or missed deadline raises."""
    t0 = time.monotonic()
    pending = {h.name: h for h in handles}
    ready: dict[str, float] = {}
    while pending:
        interrupts.check()
        for name, h in list(pending.items()):
            code = h.poll()
            if code is not None:
                raise ProcessExitedError(
                    f"{name} exited with code {code} before it was ready ({' '.join(h.launch.argv)})\n"
                    f"--- last lines of {h.log_path} ---\n{tail(h.log_path)}"
                )
            if probe_ok(h.launch.probe):
                ready[name] = round(time.monotonic() - t0, 2)
                log(f"ready: {name} in {ready[name]:.1f}s")
                del pending[name]
            elif time.monotonic() - t0 > h.launch.ready_timeout_s:
                raise ReadyTimeoutError(
                    f"{name} was not ready after {h.launch.ready_timeout_s:.0f}s ({h.launch.probe})\n"
                    f"--- last lines of {h.log_path} ---\n{tail(h.log_path)}"
                )
        if pending:
            interrupts.sleep(POLL_INTERVAL_S)
    return ready


def stop_all(handles: list[Handle], log: Callable[[str], None] = lambda _: None) -> None:
    """Stop in reverse start order; keep going past a failing stop, then raise the first error.

    Signals are deferred meanwhile: a Ctrl-C pressed during the teardown must not leave the rest
    of the processes running (it is surfaced as Interrupted once everything is stopped)."""
    first: BaseException | None = None
    with interrupts.deferred_interrupts():
        for h in reversed(handles):
            try:
                h.stop()
                log(f"stopped: {h.name}")
            except Exception as exc:
                first = first or exc
    if first is not None:
        raise first


def write_state(path: Path, cluster: Cluster, handles: list[Handle], cluster_file: str | None) -> None:
    state = {
        "cluster_file": cluster_file,
        "cluster": cluster.to_dict(),
        "processes": [
            {
                "name": h.name,
                "kind": h.launch.kind,
                "ports": h.launch.ports,
                "log": str(h.log_path),
                **h.record(),
            }
            for h in handles
        ],
        "created": time.time(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def start(
    spec: ClusterSpec,
    run_dir: Path | None = None,
    *,
    cluster_file: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Cluster:
    """Start everything and return the Cluster; its stop() (or `with`) takes it all down."""
    run_dir = run_dir.resolve() if run_dir else new_run_dir(spec)
    if spec.attach is not None:  # a running deployment: check it, start nothing there
        from kvtest.cluster.attach import start_attached

        with interrupts.deferred_interrupts():
            return start_attached(spec, run_dir, log=log)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = render(spec, run_dir)
    (run_dir / "plan.sh").write_text(describe(plan) + "\n")
    (run_dir / "cluster.json").write_text(spec.model_dump_json(indent=2))
    local, ssh = LocalLauncher(), SSHLauncher(run_dir)
    handles: list[Handle] = []
    cluster = _cluster_of(plan)
    with interrupts.deferred_interrupts():
        try:
            for kind in ORDER:
                launches = [launch for launch in plan.launches if launch.kind == kind]
                for wave in sorted({launch.wave for launch in launches}):
                    group: list[Handle] = []
                    for launch in (la for la in launches if la.wave == wave):
                        interrupts.check()
                        launcher = ssh if launch.host.reach == "ssh" else local
                        log(f"start: {launch.name} on {launch.host.name}")
                        handle: Handle = launcher.spawn(launch, run_dir / "logs" / f"{launch.name}.log")
                        handles.append(handle)
                        group.append(handle)
                    write_state(run_dir / "state.json", cluster, handles, cluster_file)
                    cluster.ready_s |= wait_all_ready(group, log)
            write_state(run_dir / "state.json", cluster, handles, cluster_file)
            interrupts.check()
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            log(f"{'interrupted' if interrupted else 'start failed'}: stopping what was started")
            with contextlib.suppress(Exception):
                stop_all(handles, log)
            _mark_stopped(run_dir)
            raise

    def stop() -> None:
        try:
            stop_all(handles, log)
        finally:
            _mark_stopped(run_dir)

    cluster._stop = stop
    return cluster


def _mark_stopped(run_dir: Path) -> None:
    state = run_dir / "state.json"
    if state.exists():
        state.replace(run_dir / "state.stopped.json")


def _cluster_of(plan: Plan) -> Cluster:
    spec = plan.spec
    return Cluster(
        name=spec.name,
        run_dir=plan.run_dir,
        proxy_url=plan.proxy_url,
        nodes=plan.nodes,
        etcd_url=plan.etcd_url,
        master_address=plan.master_address,
        master_admin_url=plan.master_admin_url,
        master_impl=spec.mooncake_master.impl if spec.mooncake_master else None,
        mooncake_config=plan.mooncake_config,
        impls=sorted(spec.impls),
    )


@contextlib.contextmanager
def up(spec: ClusterSpec, run_dir: Path | None = None, **kwargs: Any) -> Iterator[Cluster]:
    cluster = start(spec, run_dir, **kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


# --- acting on a state file from another shell -------------------------------------------------------
def _group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process in the group? After `cluster up` exits, its children belong to
    pid 1, which in a container may never reap them: a zombie answers killpg(pgid, 0) forever."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _same_process(pid: int, create_time: float | None) -> bool:
    """Guard against pid reuse: the leader still running must be the one we started."""
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return create_time is None  # the leader is gone; its group may still hold children
    return create_time is None or abs(proc.create_time() - create_time) < 1.0


def stop_recorded(record: dict[str, Any], grace: float = 8.0) -> None:
    if record.get("reach") == "ssh":
        stop_remote_group(Host.model_validate(record["host"]), record["pidfile"], grace)
        pgid = record.get("client_pgid")
    else:
        pgid = record.get("pgid")
        if pgid and not _same_process(pgid, record.get("create_time")):
            return
    if not pgid:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGCONT)
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def down(state_path: Path, log: Callable[[str], None] = lambda _: None) -> None:
    state = json.loads(state_path.read_text())
    for record in reversed(state["processes"]):
        stop_recorded(record)
        log(f"stopped: {record['name']}")
    state_path.replace(state_path.with_name("state.stopped.json"))


def status(state_path: Path) -> list[dict[str, Any]]:
    state = json.loads(state_path.read_text())
    cluster = Cluster.from_dict(state["cluster"])
    urls = {n.name: n.url for n in cluster.nodes}
    if cluster.proxy_url:
        urls["proxy"] = cluster.proxy_url
    if cluster.master_admin_url:
        urls["mooncake_master"] = cluster.master_admin_url
    if cluster.etcd_url:
        urls["etcd"] = cluster.etcd_url
    rows = []
    for record in state["processes"]:
        url = urls.get(record["name"])
        healthy = probe_ok(Probe(url=f"{url}/health")) if url else False
        rows.append({"name": record["name"], "kind": record["kind"], "url": url, "healthy": healthy})
    return rows
