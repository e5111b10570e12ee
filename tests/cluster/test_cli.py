"""`kvtest cluster up|down|status|logs` from separate shells, and Ctrl-C during a start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kvtest.cluster.cli import main
from kvtest.ports import port_is_open

from .conftest import ROOT, cluster_dict, pid_alive


def kvtest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvtest", "cluster", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def write_cluster(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_dry_run_prints_command_lines_and_starts_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "up",
                "--cluster",
                str(ROOT / "fixtures/clusters/sim.yaml"),
                "--dry-run",
                "--runs",
                "/nonexistent",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "-m simulators.mooncake --rpc_port=" in out
    assert "-m simulators.vllm serve fixtures/models/tiny-llama --host 127.0.0.1 --port" in out
    assert "-m kvtest proxy --host 127.0.0.1 --port" in out and "--flow store" in out


def test_bad_cluster_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_cluster(tmp_path, {"name": "x", "hosts": [{"name": "h"}], "nodes": [{"name": "a"}]})
    assert main(["up", "--cluster", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "nodes[0] (a).host: Field required" in err and "Traceback" not in err


@pytest.mark.usefixtures("real_store_tools")
def test_up_then_status_logs_down_from_other_shells(tmp_path: Path, stub_pids: Path) -> None:
    path = write_cluster(tmp_path, cluster_dict([], [], name=f"cli-{os.getpid()}"))
    runs = tmp_path / "runs"
    started = kvtest("up", "--cluster", str(path), "--runs", str(runs))
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    state = json.loads((Path(info["run_dir"]) / "state.json").read_text())
    try:
        status = kvtest("status", "--cluster", str(path), "--runs", str(runs))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("healthy") == 4
        logs = kvtest("logs", "--cluster", str(path), "--runs", str(runs), "--name", "n1")
        assert "stub serve stub-model" in logs.stdout
    finally:
        down = kvtest("down", "--cluster", str(path), "--runs", str(runs))
    assert down.returncode == 0, down.stderr
    for rec in state["processes"]:
        assert not pid_alive(rec["pgid"]), rec
        assert not any(port_is_open("127.0.0.1", p) for p in rec["ports"]), rec
    for pidfile in stub_pids.glob("*.pid"):
        assert not pid_alive(int(pidfile.read_text()))
    after = kvtest("status", "--cluster", str(path), "--runs", str(runs))
    assert after.returncode == 2 and "state.json" in after.stderr
