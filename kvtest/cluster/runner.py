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
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvtest import interrupts
from kvtest.cluster.cluster import Cluster
from kvtest.cluster.launchers import launcher_class
from kvtest.cluster.launchers.base import Handle, Launcher
from kvtest.cluster.render import Plan, describe, render
from kvtest.cluster.schema import ClusterSpec
from kvtest.readiness import http_ok, wait_all_ready

ORDER = ("etcd", "master", "vllm", "proxy")


def new_run_dir(spec: ClusterSpec, root: Path = Path("runs")) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    path = root / f"{stamp}-{spec.name}"
    path.mkdir(parents=True, exist_ok=False)
    return path.resolve()


def stop_all(handles: list[Handle], log: Callable[[str], None] = lambda _: None) -> None:
    """Stop in reverse start order, one kind at a time (proxy, then the vLLM nodes, then the master,
    then etcd), the processes of one kind together; keep going past a failing stop, then raise the
    first error.

    Together, because each stop may wait out its grace period: eight vLLM nodes stopped one after
    another on a loaded host took longer than a user waits after Ctrl-C. Signals are deferred
    meanwhile: a Ctrl-C pressed during the teardown must not leave the rest of the processes running
    (it is surfaced as Interrupted once everything is stopped)."""
    errors: list[BaseException] = []

    def stop(h: Handle) -> None:
        try:
            h.stop()
            log(f"stopped: {h.name}")
        except Exception as exc:
            errors.append(exc)

    with interrupts.deferred_interrupts():
        for _, group in itertools.groupby(reversed(handles), key=lambda h: h.launch.kind):
            members = list(group)
            if len(members) == 1:
                stop(members[0])
                continue
            threads = [threading.Thread(target=stop, args=(h,), name=f"stop-{h.name}") for h in members]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    if errors:
        raise errors[0]


def write_state(
    path: Path, cluster: Cluster | None, handles: list[Handle], cluster_file: str | None, reaches: list[str]
) -> None:
    state = {
        "cluster_file": cluster_file,
        "reaches": reaches,  # down() lets each launcher clean what it made for the run (containers)
        "cluster": cluster.to_dict() if cluster else None,
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


def _provision(spec: ClusterSpec, launchers: dict[str, Launcher]) -> ClusterSpec:
    """Let each launcher make its hosts' machines; the spec gets the addresses they were given."""
    by_name = {h.name: h for h in spec.hosts}
    for reach, launcher in launchers.items():
        for host in launcher.provision([h for h in spec.hosts if h.reach == reach]):
            by_name[host.name] = host
    return spec.model_copy(update={"hosts": [by_name[h.name] for h in spec.hosts]})


def start(
    spec: ClusterSpec,
    run_dir: Path | None = None,
    *,
    cluster_file: str | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Cluster:
    """Start everything and return the Cluster; its stop() (or `with`) takes it all down.

    One path for every launcher: provision the hosts, render, then kind by kind and wave by wave
    spawn through the host's launcher and wait (kvtest.readiness) for the wave's probes."""
    run_dir = run_dir.resolve() if run_dir else new_run_dir(spec)
    if spec.attach is not None:  # a running deployment: check it, start nothing there
        from kvtest.cluster.attach import start_attached

        with interrupts.deferred_interrupts():
            return start_attached(spec, run_dir, log=log)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "state.json"
    reaches = list(dict.fromkeys(h.reach for h in spec.hosts))
    launchers: dict[str, Launcher] = {}
    handles: list[Handle] = []

    def stop() -> None:
        try:
            stop_all(handles, log)
        finally:
            # containers a launcher made go too, also when a second Ctrl-C comes meanwhile
            with interrupts.deferred_interrupts():
                try:
                    for launcher in reversed(launchers.values()):
                        launcher.close()
                finally:
                    _mark_stopped(run_dir)

    with interrupts.deferred_interrupts():
        try:
            # before any machine exists: a `cluster down` from another shell finds what provision
            # makes even if this process dies before it writes more
            write_state(state_path, None, handles, cluster_file, reaches)
            for reach in reaches:
                launchers[reach] = launcher_class(reach)(run_dir)
            spec = _provision(spec, launchers)
            plan = render(spec, run_dir)
            (run_dir / "plan.sh").write_text(describe(plan) + "\n")
            (run_dir / "cluster.json").write_text(spec.model_dump_json(indent=2))
            cluster = cluster_of(plan)
            write_state(state_path, cluster, handles, cluster_file, reaches)
            for kind in ORDER:
                launches = [launch for launch in plan.launches if launch.kind == kind]
                for wave in sorted({launch.wave for launch in launches}):
                    group: list[Handle] = []
                    for launch in (la for la in launches if la.wave == wave):
                        interrupts.check()
                        log(f"start: {launch.name} on {launch.host.name}")
                        handle = launchers[launch.host.reach].spawn(
                            launch, run_dir / "logs" / f"{launch.name}.log"
                        )
                        handles.append(handle)
                        group.append(handle)
                    write_state(state_path, cluster, handles, cluster_file, reaches)
                    targets = [(h, h.launch.probes, h.launch.ready_timeout_s) for h in group]
                    cluster.ready_s |= wait_all_ready(targets, log)
            write_state(state_path, cluster, handles, cluster_file, reaches)
            interrupts.check()
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            log(f"{'interrupted' if interrupted else 'start failed'}: stopping what was started")
            with contextlib.suppress(Exception):
                stop()
            raise
    cluster._stop = stop
    return cluster


def _mark_stopped(run_dir: Path) -> None:
    state = run_dir / "state.json"
    if state.exists():
        state.replace(run_dir / "state.stopped.json")


def cluster_of(plan: Plan) -> Cluster:
    """What tests get: the URLs and addresses the plan resolved."""
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
def down(state_path: Path, log: Callable[[str], None] = lambda _: None) -> None:
    state = json.loads(state_path.read_text())
    for record in reversed(state["processes"]):
        launcher_class(record.get("reach", "local")).stop_recorded(record, 8.0)
        log(f"stopped: {record['name']}")
    for reach in state.get("reaches", []):
        launcher_class(reach).clean_run(state_path.parent)
    state_path.replace(state_path.with_name("state.stopped.json"))


def status(state_path: Path) -> list[dict[str, Any]]:
    state = json.loads(state_path.read_text())
    if not state.get("cluster"):
        return []  # still provisioning its hosts
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
        healthy = http_ok(f"{url}/health") if url else False
        rows.append({"name": record["name"], "kind": record["kind"], "url": url, "healthy": healthy})
    return rows
