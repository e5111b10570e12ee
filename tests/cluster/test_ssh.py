"""The ssh launcher against real sshds: one this test starts on a free port of this host (Debian
openssh-server, ci/install-sshd.sh), and one in a container from the kvtest host image, a far host with
its own address and pid space running real etcd, the real master and fake nodes. Processes start on
the far host, logs come back, stop (or `cluster down`) leaves nothing. KVTEST_REQUIRE=ssh: no skip."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.cluster.pd_run import cacheable, counter, pd_request, unique_prompt
from kvtest.cluster.requirements import docker_missing, sshd_missing
from kvtest.cluster.runner import down, start, up
from kvtest.cluster.schema import parse_cluster
from kvtest.gating import skip_unless
from kvtest.ports import free_port, port_is_open
from kvtest.process import ManagedProcess
from kvtest.service import READY_CAP_S
from kvtest.services.container import ServiceContainer

from .conftest import ROOT, cluster_dict, pid_alive


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict]:
    reason = sshd_missing()
    skip_unless("ssh", reason is None, reason or "")
    skip_unless("ssh", os.geteuid() == 0, "sshd for the ssh launcher test needs root here")
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host_key"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "client_key"], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nUsePAM no\nStrictModes no\nPermitUserEnvironment no\n"
    )
    proc = ManagedProcess(
        "sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")], log_path=d / "sshd.log"
    )
    proc.start()
    try:
        proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout=READY_CAP_S)
        yield {
            "port": port,
            "user": getpass.getuser(),
            "identity_file": str(d / "client_key"),
            "options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"],
        }
    finally:
        proc.stop()


@pytest.mark.usefixtures("real_store_tools")
def test_ssh_host_runs_the_cluster_and_stop_reaches_remote_processes(
    sshd: dict, tmp_path: Path, stub_pids: Path
) -> None:
    data = cluster_dict([], [])
    host = data["hosts"][0]
    host.update(reach="ssh", ssh=sshd, workdir=str(ROOT), env={"STUB_PID_DIR": str(stub_pids)})
    run_dir = tmp_path / "run-ssh"
    with up(parse_cluster(data), run_dir) as cluster:
        assert set(cluster.ready_s) == {"etcd", "mooncake_master", "n0", "n1"}
        log = (run_dir / "logs" / "n0.log").read_text()
        assert log.startswith("$ ssh 127.0.0.1 ") and "stub serve stub-model" in log  # output came back
        remote_pids = [int(p.read_text()) for p in stub_pids.glob("*.pid")]
        assert len(remote_pids) == 2 and all(pid_alive(p) for p in remote_pids)
        ports = [int(u.rsplit(":", 1)[1]) for u in (cluster.etcd_url or "", cluster.master_admin_url or "")]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in remote_pids):
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in remote_pids), "remote processes outlived stop()"
    assert not any(port_is_open("127.0.0.1", p) for p in ports)


@pytest.fixture
def sshd_container(tmp_path: Path) -> Iterator[tuple[dict, ServiceContainer]]:
    """sshd in a container from the kvtest host image: a far host with its own address, pid space
    and file system (the checkout and interpreter bind-mounted read-only, as a shared /work would be)."""
    reason = docker_missing() or (
        None if shutil.which("ssh") else "ssh client missing (bash ci/install-sshd.sh)"
    )
    skip_unless("ssh", reason is None, reason or "")
    d = tmp_path / "sshd"
    d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "host_key"], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", d / "client_key"], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "sshd_config").write_text(
        "Port 22\nHostKey /etc/kvtest-ssh/host_key\nAuthorizedKeysFile /etc/kvtest-ssh/authorized_keys\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\nStrictModes no\n"
    )
    for key in ("host_key", "authorized_keys"):
        os.chmod(d / key, 0o600)
    argv = ["sh", "-c", "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f /etc/kvtest-ssh/sshd_config"]
    container = ServiceContainer("sshd", argv, d / "sshd.log", mounts={str(d): "/etc/kvtest-ssh"})
    address = container.start("Server listening on", 60)
    try:
        yield (
            {
                "address": address,
                "ssh": {
                    "user": "root",
                    "identity_file": str(d / "client_key"),
                    "options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"],
                },
            },
            container,
        )
    finally:
        container.stop()


def _far_processes(container: ServiceContainer) -> list[str]:
    done = container.exec(["ps", "-eo", "args="])
    return [p for p in done.splitlines() if any(w in p for w in ("etcd", "mooncake", "simulators", "sleep"))]


def test_ssh_far_host_in_a_container_runs_the_store_and_nodes_and_down_leaves_nothing(
    sshd_container: tuple[dict, ServiceContainer], tmp_path: Path
) -> None:
    far, container = sshd_container
    model = str(ROOT / "fixtures/models/tiny-llama")
    args = ["--enable-prefix-caching", "--block-size", "32", "--max-model-len", "2048", "--seed", "0"]
    data = {
        "name": "ssh-far",
        "hosts": [
            {"name": "local"},
            {"name": "far", "reach": "ssh", **far, "workdir": str(ROOT), "python": sys.executable,
             "mooncake_master": str(ROOT / ".venv/bin/mooncake_master")},
        ],
        "etcd": {"host": "far", "port": free_port(), "peer_port": free_port()},
        "mooncake_master": {"impl": "real", "host": "far", "rpc_port": free_port(),
                            "metrics_port": free_port(), "ready_timeout_s": 60},
        "mooncake": {"metadata": "etcd", "global_segment_size": "64MB", "local_buffer_size": "32MB"},
        "node_defaults": {"host": "far", "impl": "fake", "model": model,
                          "connector": "MooncakeStoreConnector", "args": args},
        "nodes": [
            {"name": "p0", "role": "prefill", "port": free_port()},
            {"name": "d0", "role": "decode", "port": free_port()},
        ],
        "proxy": {"host": "local", "strategy": "round_robin", "flow": "store"},
    }  # fmt: skip
    run_dir = tmp_path / "run-far"
    cluster = start(parse_cluster(data), run_dir)
    try:
        assert set(cluster.ready_s) == {"etcd", "mooncake_master", "p0", "d0", "proxy"}
        assert (run_dir / "logs" / "p0.log").read_text().startswith(f"$ ssh {far['address']} ")
        assert len(_far_processes(container)) >= 4, _far_processes(container)
        run = pd_request(cluster, unique_prompt(seed=5))
        assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens)
    finally:
        down(run_dir / "state.json")  # `kvtest cluster down` from another shell
    assert _far_processes(container) == [], "processes outlived down on the far host"
