"""Launching: start order, readiness, logs in the run dir, and teardown that leaves nothing behind,
also when a node fails to start, never becomes ready, or the start is interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from kvtest.cluster.runner import start, up
from kvtest.cluster.schema import parse_cluster
from kvtest.ports import port_is_open
from kvtest.process import ProcessExitedError, ReadyTimeoutError

from .conftest import cluster_dict, pid_alive


def recorded(run_dir: Path) -> list[dict]:
    for name in ("state.json", "state.stopped.json"):
        if (run_dir / name).exists():
            return json.loads((run_dir / name).read_text())["processes"]
    raise AssertionError(f"no state file in {run_dir}")


def assert_all_gone(run_dir: Path, stub_pids: Path) -> None:
    procs = recorded(run_dir)
    for rec in procs:
        assert not pid_alive(rec["pgid"]), f"{rec['name']} (pid {rec['pgid']}) still running"
        for port in rec["ports"]:
            assert not port_is_open("127.0.0.1", port), f"{rec['name']} port {port} still open"
    for pidfile in stub_pids.glob("*.pid"):
        assert not pid_alive(int(pidfile.read_text())), f"stub {pidfile.name} orphaned"


@pytest.mark.usefixtures("real_store_tools")
def test_up_starts_in_order_and_down_frees_everything(tmp_path: Path, stub_pids: Path) -> None:
    spec = parse_cluster(cluster_dict([], []))
    run_dir = tmp_path / "run"
    with up(spec, run_dir) as cluster:
        procs = recorded(run_dir)
        assert [p["name"] for p in procs] == ["etcd", "mooncake_master", "n0", "n1"]
        assert httpx.get(f"{cluster.etcd_url}/health").status_code == 200
        assert httpx.get(f"{cluster.master_admin_url}/health").status_code == 200
        assert all(httpx.get(f"{n.url}/health").status_code == 200 for n in cluster.nodes)
        assert set(cluster.ready_s) == {"etcd", "mooncake_master", "n0", "n1"}
        assert [n.role for n in cluster.nodes] == ["prefill", "decode"]
        assert cluster.metrics.counters("n0") == {"vllm:prefix_cache_hits_total": 0.0}
        mc = json.loads((run_dir / "n0" / "mooncake.json").read_text()) if (run_dir / "n0").exists() else None
        assert mc is None  # no connector on these nodes, so no mooncake.json
        assert (run_dir / "logs" / "n0.log").read_text().startswith("$ ")
        assert "stub serve stub-model" in (run_dir / "logs" / "n0.log").read_text()
        assert (run_dir / "plan.sh").exists()
    assert (run_dir / "state.stopped.json").exists() and not (run_dir / "state.json").exists()
    assert_all_gone(run_dir, stub_pids)


@pytest.mark.usefixtures("real_store_tools")
def test_a_node_that_exits_at_start_stops_everything_started(tmp_path: Path, stub_pids: Path) -> None:
    spec = parse_cluster(cluster_dict([], ["--stub-exit", "3"]))
    run_dir = tmp_path / "run"
    with pytest.raises(ProcessExitedError, match=r"n1 exited with code 3 before it was ready") as exc:
        start(spec, run_dir)
    assert "stub: failing at start" in str(exc.value)  # the log tail is in the error
    assert_all_gone(run_dir, stub_pids)


@pytest.mark.usefixtures("real_store_tools")
def test_a_node_that_never_gets_ready_times_out_and_everything_stops(tmp_path: Path, stub_pids: Path) -> None:
    data = cluster_dict(["--stub-hang"])
    data["nodes"][0]["ready_timeout_s"] = 1.0
    run_dir = tmp_path / "run"
    with pytest.raises(ReadyTimeoutError, match=r"n0 was not ready after 1s"):
        start(parse_cluster(data), run_dir)
    assert_all_gone(run_dir, stub_pids)


def test_nodes_sharing_a_gpu_start_one_after_another(tmp_path: Path, stub_pids: Path) -> None:
    data = cluster_dict([], [])
    del data["etcd"], data["mooncake_master"], data["mooncake"]
    for node in data["nodes"]:
        node["gpus"] = [0]
    run_dir = tmp_path / "run"
    with up(parse_cluster(data), run_dir) as cluster:
        log1 = (run_dir / "logs" / "n1.log").stat().st_mtime
        assert cluster.ready_s.keys() == {"n0", "n1"}
        # n1 was launched only after n0 answered /health: its log appeared after n0's was written
        log0_lines = (run_dir / "logs" / "n0.log").read_text().splitlines()
        assert len(log0_lines) >= 2 and log1 >= (run_dir / "logs" / "n0.log").stat().st_ctime
        env_line = (run_dir / "logs" / "n1.log").read_text().splitlines()[0]
        assert "CUDA_VISIBLE_DEVICES=0" in env_line and "PYTHONHASHSEED=0" in env_line
    assert_all_gone(run_dir, stub_pids)
