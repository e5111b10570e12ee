"""local-cpu.yaml's P/D across three network namespaces (netns-cpu.yaml): etcd, master and proxy
in one, prefill in another, decode in a third, each with its own address on a bridge. The KV goes
from the prefill host's segment to the decode host through the transfer engine over tcp."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import cacheable, complete, counter, pd_request, unique_prompt
from kvtest.cluster.requirements import netns_missing, real_missing
from kvtest.cluster.runner import start
from kvtest.cluster.schema import load_cluster
from kvtest.gating import skip_unless
from kvtest.netns import NetnsNetwork

from .conftest import CLUSTERS, ROOT

pytestmark = [pytest.mark.real, pytest.mark.netns]


@pytest.fixture(scope="module")
def netns_cluster() -> Iterator[Cluster]:
    spec = load_cluster(CLUSTERS / "netns-cpu.yaml")
    reason = netns_missing()
    skip_unless("netns", reason is None, reason or "")
    reason = real_missing(spec)
    skip_unless("real", reason is None, reason or "")
    with NetnsNetwork.for_spec(spec):
        cluster = start(spec, ROOT / "runs" / f"pytest-real-netns-{os.getpid()}")
        try:
            yield cluster
        finally:
            cluster.stop()


def test_pd_across_namespaces(netns_cluster: Cluster) -> None:
    assert {n.url.split("//")[1].rsplit(":", 1)[0] for n in netns_cluster.nodes} == {
        "198.18.128.2",
        "198.18.128.3",
    }
    prompt = unique_prompt(seed=31)
    run = pd_request(netns_cluster, prompt)
    alone = complete(netns_cluster.node("p0").url, netns_cluster.nodes[0].model, prompt)
    assert run.text == alone["choices"][0]["text"]
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens)
    assert run.keys_after - run.keys_before == run.prompt_tokens // 32
