"""The container path of kvtest.services (testcontainers on the locally built kvtest host image):
etcd and the master, real and mock, in a container with its own address from Docker's pool; a store
client on this host puts and gets through it; stop() removes the container. KVTEST_REQUIRE=docker
makes a missing engine a failure."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import httpx
import pytest

from kvtest.cluster.requirements import docker_missing
from kvtest.gating import skip_unless
from kvtest.process import ProcessExitedError
from kvtest.services import EtcdConfig, EtcdServer, MooncakeMaster
from kvtest.services.container import ServiceContainer
from kvtest.store import open_store

DOCKER_POOL = ipaddress.ip_network("198.19.0.0/16")  # ci/install-docker.sh's daemon.json


@pytest.fixture(autouse=True)
def _docker() -> None:
    reason = docker_missing()
    skip_unless("docker", reason is None, reason or "")


def _containers(label: str) -> list[str]:
    """Containers of one service name (unique per test here: m-mock-mock, m-real-real)."""
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=kvtest.service={label}"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.split()


def _exists(container_id: str) -> bool:
    """By id, not by the service label: another xdist worker's etcd carries the same label."""
    out = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", f"id={container_id}"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return bool(out.stdout.split())


def test_etcd_container_has_its_own_address_and_keeps_keys(tmp_path: Path) -> None:
    with EtcdServer(EtcdConfig(use_docker=True), log_dir=tmp_path) as etcd:
        assert etcd.in_container
        assert isinstance(etcd.handle, ServiceContainer) and etcd.handle.container_id
        container_id = etcd.handle.container_id
        assert ipaddress.ip_address(etcd.cfg.host) in DOCKER_POOL
        put = httpx.post(etcd.url_for("v3/kv/put"), json={"key": "YQ==", "value": "Yg=="})
        assert put.status_code == 200, put.text
        got = httpx.post(etcd.url_for("v3/kv/range"), json={"key": "YQ=="}).json()
        assert got["kvs"][0]["value"] == "Yg=="
        assert _containers("etcd-kvtest")
    assert not _exists(container_id), "stop() left the container"
    assert "ready to serve client requests" in (tmp_path / "etcd-kvtest.log").read_text()


@pytest.mark.parametrize("impl", ["mock", "real"])
def test_master_container_serves_a_store_client_on_this_host(impl: str, tmp_path: Path) -> None:
    with MooncakeMaster(impl, {"client_ttl": 30}, use_docker=True, log_dir=tmp_path, name=f"m-{impl}") as m:  # type: ignore[arg-type]
        assert ipaddress.ip_address(m.host) in DOCKER_POOL
        store = open_store(impl, local_hostname="127.0.0.1", master_server_address=m.rpc_addr,  # type: ignore[arg-type]
                           metadata_server="P2PHANDSHAKE", protocol="tcp",
                           global_segment_size="16MB", local_buffer_size="16MB")  # fmt: skip
        try:
            assert store.put("kvtest-container", b"x" * 4096) == 0
            assert store.get("kvtest-container") == b"x" * 4096
        finally:
            store.close()
        assert _containers(f"m-{impl}-{impl}")
    assert not _containers(f"m-{impl}-{impl}"), "stop() left the container"
    assert "Master service started on port" in m.log_text()


def test_master_container_with_a_bad_flag_fails_with_its_log(tmp_path: Path) -> None:
    m = MooncakeMaster("mock", {"eviction_ratio": "lots"}, use_docker=True, log_dir=tmp_path)
    with pytest.raises(ProcessExitedError, match="exited with code") as e:
        m.start(timeout=30)
    m.stop()
    assert "eviction_ratio" in str(e.value)
