"""The in-process simulator cluster: same cluster file, same command lines, no processes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from kvtest.cluster.launchers.inprocess import InProcessUnsupported, in_process
from kvtest.cluster.runner import up
from kvtest.cluster.schema import load_cluster
from kvtest.ports import port_is_open

ROOT = Path(__file__).resolve().parents[2]


def test_sim_yaml_runs_in_process_and_serves_through_the_proxy(tmp_path: Path) -> None:
    spec = load_cluster(ROOT / "fixtures/clusters/sim.yaml")
    with up(in_process(spec), tmp_path / "run") as cluster:
        assert cluster.proxy_url
        for node in cluster.nodes:
            assert httpx.get(f"{node.url}/health").status_code == 200
        assert httpx.get(f"{cluster.master_admin_url}/health").status_code == 200
        before = cluster.metrics.snapshot()
        body = {"model": cluster.nodes[0].model, "prompt": "hello " * 50, "max_tokens": 4}
        resp = httpx.post(f"{cluster.proxy_url}/v1/completions", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        n = resp.json()["usage"]["prompt_tokens"]
        delta = cluster.metrics.delta(before)
        assert delta["p0"]["vllm:prompt_tokens_total"] == n  # the prefill leg
        assert delta["d0"]["vllm:prompt_tokens_total"] == n  # the decode leg
        ports = [int(u.rsplit(":", 1)[1]) for u in [cluster.proxy_url, *(n.url for n in cluster.nodes)]]
    assert not any(port_is_open("127.0.0.1", p) for p in ports)


def test_real_parts_are_refused_with_the_reason() -> None:
    spec = load_cluster(ROOT / "fixtures/clusters/local-cpu.yaml")
    with (
        pytest.raises(InProcessUnsupported, match=r"node p0 is impl real.*etcd is a separate program"),
        up(in_process(spec)),
    ):
        pass
