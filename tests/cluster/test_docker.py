"""`reach: docker`: hosts of a cluster file are containers made for the run (docker-sim.yaml: real etcd
and mooncake_master on m0, a fake prefill node on m1, a fake decode node on m2). KV crosses machines
through the real store; every container and the run's network are gone afterwards, also after a
failed start and after `kvtest cluster down` from a state file. KVTEST_REQUIRE=docker: no skip."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from kvtest.cluster.launchers.docker import LABEL, run_id
from kvtest.cluster.pd_run import cacheable, counter, pd_request, unique_prompt
from kvtest.cluster.requirements import docker_missing
from kvtest.cluster.runner import down, start, up
from kvtest.cluster.schema import load_cluster, parse_cluster
from kvtest.gating import skip_unless

ROOT = Path(__file__).resolve().parents[2]
DOCKER_POOL = ipaddress.ip_network("198.19.0.0/16")


@pytest.fixture(autouse=True)
def _docker() -> None:
    reason = docker_missing()
    skip_unless("docker", reason is None, reason or "")


def _left(run_dir: Path) -> list[str]:
    label = f"label={LABEL}={run_id(run_dir)}"
    containers = subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True, text=True)
    networks = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", label], capture_output=True, text=True
    )
    return containers.stdout.split() + networks.stdout.split()


def test_fake_pd_across_three_containers_moves_kv_through_the_store(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with up(load_cluster(ROOT / "fixtures/clusters/docker-sim.yaml"), run_dir) as cluster:
        spec = load_cluster(run_dir / "cluster.json")  # the hosts as provisioned
        machines = {h.name: h.address for h in spec.hosts if h.reach == "docker"}
        assert len(set(machines.values())) == 3
        assert all(ipaddress.ip_address(a) in DOCKER_POOL for a in machines.values())
        hostname = subprocess.run(
            ["docker", "exec", f"kvtest-{run_id(run_dir)}-m1", "hostname"], capture_output=True, text=True
        )
        assert hostname.stdout.strip() == "m1"
        assert cluster.node("p0").url.startswith(f"http://{machines['m1']}:")
        run = pd_request(cluster, unique_prompt(seed=3))
        n = run.prompt_tokens
        # d0 (on m2) got every cacheable token of the prompt from the store p0 (on m1) put it in
        assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(n)
        assert counter(run, "p0", "vllm:prompt_tokens_total") == n
        assert run.keys_after > run.keys_before
        assert _left(run_dir)
    assert not _left(run_dir), "containers or the network outlived stop()"


def _one_machine(tmp_path: Path, node_args: list[str]) -> dict:
    return {
        "name": "docker-one",
        "hosts": [{"name": "m0", "reach": "docker"}],
        "mooncake_master": {"impl": "mock", "host": "m0"},
        "nodes": [{"name": "n0", "host": "m0", "role": "both", "impl": "fake",
                   "model": str(ROOT / "fixtures/models/tiny-llama"), "args": node_args}],
    }  # fmt: skip


def test_a_failed_start_removes_the_containers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    spec = parse_cluster(_one_machine(tmp_path, ["--max-model-len", "999999"]))
    with pytest.raises(Exception, match="n0 exited with code"):
        start(spec, run_dir)
    assert not _left(run_dir)


def test_cluster_down_from_the_state_file_removes_the_containers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    start(parse_cluster(_one_machine(tmp_path, [])), run_dir)
    assert _left(run_dir)
    down(run_dir / "state.json")  # what `kvtest cluster down` runs from another shell
    assert not _left(run_dir)
