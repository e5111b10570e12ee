"""`proxy: {strategy: kv_aware}` in a cluster file: the prefill nodes publish KV events, the proxy
subscribes and routes by them (kvtest/cluster/kv_events_wiring.py)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from kvtest import interrupts
from kvtest.cluster.launchers.inprocess import in_process
from kvtest.cluster.render import render
from kvtest.cluster.runner import up
from kvtest.cluster.schema import ClusterFileError, load_cluster

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "fixtures" / "clusters" / "sim.yaml"


def kv_aware_file(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    text = SIM.read_text().replace("strategy: round_robin", "strategy: kv_aware")
    text = text.replace("model: fixtures/models/tiny-llama", f"model: {ROOT / 'fixtures/models/tiny-llama'}")
    if edit:
        assert edit[0] in text
        text = text.replace(*edit)
    path = tmp_path / "kv.yaml"
    path.write_text(text)
    return path


def proxy_cached_blocks(c: httpx.Client, proxy_url: str) -> int:
    """The blocks the proxy's index holds, over all nodes (its kvtest_proxy_kv_aware_cached_blocks)."""
    text = c.get(f"{proxy_url}/metrics").text
    return sum(int(v) for v in re.findall(r"kvtest_proxy_kv_aware_cached_blocks\{[^}]*\} (\d+)", text))


def test_requests_follow_their_cached_prefix_through_the_cluster_proxy(tmp_path: Path) -> None:
    spec = load_cluster(kv_aware_file(tmp_path))
    with up(in_process(spec), tmp_path / "run") as cluster:
        proxy = cluster.proxy_url
        assert proxy
        model = cluster.nodes[0].model
        contexts = [f"Context {c}: " + " ".join(f"fact-{c}-{i}" for i in range(120)) for c in range(2)]
        with httpx.Client(timeout=60) as c:
            for turn in range(3):
                for ctx in contexts:
                    before = proxy_cached_blocks(c, proxy)
                    body = {"model": model, "prompt": f"{ctx} Question {turn}?", "max_tokens": 2}
                    r = c.post(f"{proxy}/v1/completions", json=body)
                    assert r.status_code == 200, r.text
                    if turn == 0:
                        # the events travel to the proxy after the answer (ZMQ, as from vLLM): a new
                        # context counts as known once its blocks are in the proxy's index
                        arrived = interrupts.wait_until(
                            lambda b=before: proxy_cached_blocks(c, proxy) > b, 60
                        )
                        assert arrived, "the context's BlockStored events never reached the proxy"
            metrics = c.get(f"{proxy}/metrics").text
    up_lines = re.findall(r"kvtest_proxy_kv_events_stream_up\{[^}]*\} (\d)", metrics)
    assert up_lines == ["1", "1"], metrics
    picks = dict(re.findall(r'kvtest_proxy_kv_aware_picks_total\{reason="(\w+)"\} (\d+)', metrics))
    # each context's first turn is new everywhere (by load); its later turns follow its blocks
    assert picks == {"prefix": "4", "load": "2", "load_fallback": "0"}, picks


def test_a_given_kv_events_config_is_kept_and_its_port_subscribed(tmp_path: Path) -> None:
    config = '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:41234"}'
    path = kv_aware_file(
        tmp_path,
        (
            "  - {name: p0, role: prefill}",
            f"  - {{name: p0, role: prefill, args: [--block-size, '32', --kv-events-config, '{config}']}}",
        ),
    )
    plan = render(load_cluster(path), tmp_path / "run")
    proxy = next(la for la in plan.launches if la.kind == "proxy").argv
    events = proxy[proxy.index("--kv-events") + 1 : proxy.index("--kv-events") + 3]
    assert events[0] == "tcp://127.0.0.1:41234"
    assert "--kv-replay" not in proxy  # p0 has no replay endpoint: the proxy takes all or none
    p1 = next(la for la in plan.launches if la.name == "p1").argv
    assert p1.count("--kv-events-config") == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('hash_seed: "0"', "hash_seed: null"), "kv_aware needs hash_seed"),
        (('--block-size, "32",', ""), "kv_aware needs --block-size"),
        (
            ("  - {name: p1, role: prefill}", "  - {name: p1, role: prefill, args: [--block-size, '16']}"),
            "one --block-size on every prefill node",
        ),
    ],
    ids=["no-hash-seed", "no-block-size", "two-block-sizes"],
)
def test_what_the_proxy_could_not_hash_is_refused(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    with pytest.raises(ClusterFileError, match=message):
        render(load_cluster(kv_aware_file(tmp_path, edit)), tmp_path / "run")
