"""reach: ray for real: a Ray head on this machine and two Ray worker nodes, each on its own
network-namespace host, place real etcd + the real mooncake_master (head), a prefill node (one worker)
and a decode node (the other).

The head runs in the root namespace at the namespaces' bridge address, where the driver is: with the
head inside a namespace, Ray Client's per-driver server (ray 2.60, proxier.start_specific_server)
exited at once with empty logs, while the same server started by hand in that namespace ran; a head
beside the driver is also the usual shape (the driver on the head node, workers elsewhere).

The seed's put/get across machines: the prefill node's blocks land in the store once, decode takes
every cacheable token from it, and `kvtest cluster down` from another process leaves no supervisor
and no process behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvtest.cluster.launchers.ray import _ray, connect
from kvtest.cluster.pd_run import cacheable, complete, counter, pd_request, unique_prompt
from kvtest.cluster.requirements import netns_missing, ray_missing
from kvtest.cluster.runner import start, up
from kvtest.cluster.schema import parse_cluster
from kvtest.gating import skip_unless
from kvtest.netns import NetnsNetwork
from kvtest.ports import free_port, port_is_open
from kvtest.process import ManagedProcess, tail

from .conftest import ROOT

pytestmark = [pytest.mark.real, pytest.mark.netns]

VENV_BIN = Path(sys.executable).parent
RAY_START_S = 300.0  # bounds a hang: three Ray nodes on a loaded 2-core machine take a minute


def _ray_node(name: str, prefix: list[str], addr: str, log: Path, *args: str) -> ManagedProcess:
    """`ray start --block` as a process group we own (stopping it stops that Ray node, and only it:
    never `ray stop`, which ends every Ray process on the machine)."""
    argv = [*prefix, str(VENV_BIN / "ray"), "start", "--block", "--disable-usage-stats"]
    argv += [f"--node-ip-address={addr}", "--num-cpus=2", "--object-store-memory=100000000", *args]
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    return ManagedProcess(f"ray-{name}", argv, env=env, log_path=log).start()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    for feature, reason in (("netns", netns_missing()), ("ray", ray_missing())):
        skip_unless(feature, reason is None, reason or "")
    logs = tmp_path_factory.mktemp("ray")
    with NetnsNetwork(2) as net:
        a, b = net.hosts
        head = net.gateway
        gcs, client = free_port(), free_port()
        t0 = time.monotonic()
        procs = [
            _ray_node("head", [], head, logs / "head.log", "--head", f"--port={gcs}",
                      "--include-dashboard=false", f"--ray-client-server-port={client}",
                      '--resources={"kvtest_head": 1}', f"--temp-dir={logs / 'tmp'}")
        ]  # fmt: skip
        try:
            procs[0].wait_ready(lambda: port_is_open(head, client), RAY_START_S)
            # the driver runs on the head's machine: a plain driver on its raylet, not Ray Client (whose
            # per-driver server, forked from a gRPC process, exited at once now and then under load)
            address = f"{head}:{gcs}"
            ray = connect(address)
            for n, (host, res) in enumerate(((a, "kvtest_a"), (b, "kvtest_b")), start=2):
                # one at a time, and a second try: `ray start` gives a raylet a fixed 30 s to register
                # with the head (ray/_private/node.py), which a loaded 2-core machine can exceed
                for _attempt in range(3):
                    proc = _ray_node(host.name, host.exec_prefix, host.addr, logs / f"{host.name}.log",
                                     f"--address={head}:{gcs}", f'--resources={{"{res}": 1}}')  # fmt: skip
                    deadline = time.monotonic() + RAY_START_S
                    while sum(node["Alive"] for node in ray.nodes()) < n and proc.alive():
                        assert time.monotonic() < deadline, f"Ray node {host.name} did not join"
                        time.sleep(0.5)  # polling Ray's membership, not a readiness sleep of ours
                    if proc.alive():
                        break
                    proc.stop()
                procs.append(proc)
                assert proc.alive(), f"Ray node {host.name} failed to start:\n{tail(proc.log_path)}"
            started_s = time.monotonic() - t0
            print(f"\nray cluster (head + 2 workers in namespaces) up in {started_s:.1f}s")
            yield {"address": address, "hosts": (head, a, b), "started_s": started_s, "logs": logs}
        finally:
            if ray_missing() is None:
                import ray as ray_module

                ray_module.shutdown()
            for proc in reversed(procs):
                proc.stop()


def ray_spec(address: str, name: str) -> dict[str, Any]:
    def host(name: str, resource: str) -> dict[str, Any]:
        return {"name": name, "reach": "ray", "ray": {"address": address, "resource": resource},
                "mooncake_master": str(VENV_BIN / "mooncake_master")}  # fmt: skip

    return {
        "name": name,
        "requires": ["ray", "netns"],
        "hosts": [host("head", "kvtest_head"), host("ma", "kvtest_a"), host("mb", "kvtest_b")],
        "etcd": {"host": "head"},
        "mooncake_master": {"impl": "real", "host": "head"},
        "mooncake": {
            "protocol": "tcp",
            "metadata": "etcd",
            "global_segment_size": "256MB",
            "local_buffer_size": "64MB",
        },
        "node_defaults": {
            "impl": "fake",
            "model": "fixtures/models/tiny-llama",
            "connector": "MooncakeStoreConnector",
            "args": ["--block-size", "32", "--enable-prefix-caching", "--max-model-len", "2048"],
        },
        "nodes": [
            {"name": "p0", "host": "ma", "role": "prefill"},
            {"name": "d0", "host": "mb", "role": "decode"},
        ],
        "proxy": {"host": "head", "strategy": "round_robin", "flow": "store"},
    }


def _supervisors(state: Path) -> list[str]:
    """The supervisors (named Ray actors) a run's state file lists that still exist."""
    ray = _ray()
    alive = []
    for record in json.loads(state.read_text())["processes"]:
        try:
            ray.get_actor(record["actor"], namespace=record["namespace"])
        except ValueError:  # no such actor: stopped and killed
            continue
        alive.append(record["actor"])
    return alive


def test_put_get_across_ray_nodes(ray_cluster: dict[str, Any], tmp_path: Path) -> None:
    _, a, b = ray_cluster["hosts"]  # (head address, worker host a, worker host b)
    spec = parse_cluster(ray_spec(ray_cluster["address"], "ray-putget"))
    t0 = time.monotonic()
    cluster = start(spec, tmp_path / "run")
    try:
        placed_s = time.monotonic() - t0
        print(f"\nray: etcd, master, 2 nodes and the proxy placed and ready in {placed_s:.1f}s")
        machines = {n.name: n.url.split("//")[1].rsplit(":", 1)[0] for n in cluster.nodes}
        assert machines == {"p0": a.addr, "d0": b.addr}  # each on the Ray node its host names
        prompt = unique_prompt(seed=71)
        run = pd_request(cluster, prompt)
        alone = complete(cluster.node("p0").url, cluster.nodes[0].model, prompt)
        assert run.text == alone["choices"][0]["text"]
        assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens)
        assert run.keys_after - run.keys_before == run.prompt_tokens // 32  # one copy per full block
        again = pd_request(cluster, prompt)
        assert again.keys_after == run.keys_after  # the second producer's put found every key there
        log = (tmp_path / "run" / "logs" / "p0.log").read_text()
        assert "POST /v1/completions" in log or log.strip(), "p0's output never reached the run directory"
    finally:
        cluster.stop()
    assert not _supervisors(tmp_path / "run" / "state.stopped.json")
    # the anchor: the same processes on the same hosts started by the local launcher (ip netns exec)
    local = ray_spec(ray_cluster["address"], "local-anchor")
    head = ray_cluster["hosts"][0]
    for host, netns, addr in zip(local["hosts"], (None, a.name, b.name), (head, a.addr, b.addr), strict=True):
        host.pop("ray")
        host.update(reach="local", netns=netns, address=addr)
    t0 = time.monotonic()
    with up(parse_cluster(local), tmp_path / "local"):
        local_s = time.monotonic() - t0
    print(f"ray placement {placed_s:.1f}s vs local launcher {local_s:.1f}s for the same 5 processes "
          f"(ratio {placed_s / local_s:.2f})")  # fmt: skip


def test_cluster_down_from_another_process_stops_the_supervisors(
    ray_cluster: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "ray.json"
    path.write_text(json.dumps(ray_spec(ray_cluster["address"], "ray-down")))
    runs = tmp_path / "runs"
    kvtest = [sys.executable, "-m", "kvtest", "cluster"]
    up = subprocess.run([*kvtest, "up", "--cluster", str(path), "--runs", str(runs)], cwd=ROOT,
                        capture_output=True, text=True, timeout=RAY_START_S, check=False)  # fmt: skip
    assert up.returncode == 0, up.stderr
    run_dir = Path(json.loads(up.stdout)["run_dir"])
    assert len(_supervisors(run_dir / "state.json")) == 5  # etcd, master, p0, d0, proxy
    down = subprocess.run([*kvtest, "down", "--cluster", str(path), "--runs", str(runs)], cwd=ROOT,
                          capture_output=True, text=True, timeout=RAY_START_S, check=False)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert not _supervisors(run_dir / "state.stopped.json")
