"""Attach to a deployment kvtest did not start: a cluster `kvtest cluster up` brought up in another
process stands in for one running on Kubernetes. kvtest tests it through an attach file (URLs and
roles only), never stops anything there, salts its contexts so an earlier run's cache cannot make a
run look better, and names the node that does not answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kvtest.cluster.runner import start
from kvtest.cluster.schema import load_cluster
from kvtest.experiments.cli import demo_main, experiment_main
from kvtest.ports import free_port

from .conftest import ROOT


def kvtest_cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvtest", "cluster", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,  # bounds a hang only: the sim cluster starts in seconds
        check=False,
    )


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """sim.yaml brought up by a separate `kvtest cluster up`: the 'someone else's' deployment."""
    runs = tmp_path_factory.mktemp("deployment") / "runs"
    sim = str(ROOT / "fixtures/clusters/sim.yaml")
    up = kvtest_cluster("up", "--cluster", sim, "--runs", str(runs))
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    state = json.loads((Path(info["run_dir"]) / "state.json").read_text())
    try:
        yield state["cluster"]
    finally:
        down = kvtest_cluster("down", "--cluster", sim, "--runs", str(runs))
        assert down.returncode == 0, down.stderr


def attach_file(tmp: Path, deployment: dict[str, Any], *, own_proxy: bool = False, **over: Any) -> Path:
    attach: dict[str, Any] = {
        "nodes": [
            {"name": n["name"], "url": n["url"], "role": n["role"], "connector": n["connector"]}
            for n in deployment["nodes"]
        ],
        "mooncake_master_url": deployment["master_admin_url"],
    }
    if not own_proxy:
        attach["proxy_url"] = deployment["proxy_url"]
    attach |= over
    data: dict[str, Any] = {"name": "attached", "attach": attach}
    if own_proxy:
        data["proxy"] = {"host": "here", "strategy": "round_robin", "flow": "store"}
    path = tmp / "attach.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _summary(run: Path) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in json.loads((run / "summary.json").read_text())["experiments"]}


def test_demo_on_an_attached_deployment_is_exact_run_after_run(
    tmp_path: Path, deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = attach_file(tmp_path, deployment)
    rc = demo_main(["--cluster", str(path), "--out", str(tmp_path / "first")])
    assert rc == 0, capsys.readouterr().out
    assert _summary(tmp_path / "first")["5_putget"]["passed"]
    # the second run finds the first one's contexts in the designated node's cache: salted, still exact
    rc = experiment_main(["designate", "--cluster", str(path), "--out", str(tmp_path / "second")])
    assert rc == 0, capsys.readouterr().out
    salts = [json.loads((tmp_path / run / "run.json").read_text())["salt"] for run in ("first", "second")]
    assert all(salts) and salts[0] != salts[1], salts
    # nothing was stopped there: every node still answers
    assert all(httpx.get(f"{n['url']}/health", timeout=10).status_code == 200 for n in deployment["nodes"])


def test_without_a_salt_a_warm_cache_is_named_not_hidden(
    tmp_path: Path, deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = attach_file(tmp_path, deployment)
    for run in ("a", "b"):
        rc = experiment_main(
            ["designate", "--cluster", str(path), "--salt", "", "--out", str(tmp_path / run)]
        )
    out = capsys.readouterr().out
    assert rc == 1, out  # run b: the designated node hits more than this session sent it
    rows = _summary(tmp_path / "b")["1_designate"]["nodes"]
    warm = [r for r in rows if "cache already held" in r["note"]]
    assert warm, rows


def test_own_proxy_in_front_of_attached_nodes_is_the_only_thing_stopped(
    tmp_path: Path, deployment: dict[str, Any]
) -> None:
    spec = load_cluster(attach_file(tmp_path, deployment, own_proxy=True))
    cluster = start(spec, tmp_path / "run")
    try:
        assert cluster.proxy_url and cluster.proxy_url != deployment["proxy_url"]
        body = {"model": cluster.nodes[0].model, "prompt": "hello", "max_tokens": 2}
        assert httpx.post(f"{cluster.proxy_url}/v1/completions", json=body, timeout=30).status_code == 200
        assert {n.block_size for n in cluster.nodes} == {32}  # read from vllm:cache_config_info
    finally:
        cluster.stop()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{cluster.proxy_url}/health", timeout=5)
    assert all(httpx.get(f"{n.url}/health", timeout=10).status_code == 200 for n in cluster.nodes)


def test_a_node_that_does_not_answer_is_named(
    tmp_path: Path, deployment: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    path = attach_file(tmp_path, deployment)
    data = yaml.safe_load(path.read_text())
    data["attach"]["nodes"][1]["url"] = dead
    data["attach"]["connect_timeout_s"] = 2
    path.write_text(yaml.safe_dump(data))
    rc = demo_main(["--cluster", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2
    name = data["attach"]["nodes"][1]["name"]
    assert f"node {name}: {dead}/health did not answer" in err, err


def test_an_attach_file_launches_nothing(tmp_path: Path) -> None:
    data = {
        "name": "x",
        "hosts": [{"name": "h"}],
        "attach": {"nodes": [{"name": "p", "url": "http://127.0.0.1:1", "role": "prefill"}]},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = kvtest_cluster("up", "--cluster", str(path), "--dry-run")
    assert res.returncode == 2
    assert "an attached cluster launches nothing, so it has no hosts" in res.stderr
    assert "no node has role decode" not in res.stderr  # one message at a time, the first problem
