"""The ssh launcher against a real sshd this test starts on a free port (Debian openssh-server,
ci/install-sshd.sh): processes start on the "remote" host, logs come back, stop leaves nothing."""

from __future__ import annotations

import getpass
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.cluster.requirements import sshd_missing
from kvtest.cluster.runner import up
from kvtest.cluster.schema import parse_cluster
from kvtest.gating import skip_unless
from kvtest.ports import free_port, port_is_open
from kvtest.process import ManagedProcess

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
        proc.wait_ready(lambda: port_is_open("127.0.0.1", port), timeout=10)
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
