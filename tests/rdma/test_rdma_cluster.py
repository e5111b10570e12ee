"""P/D over RDMA: the GPU suite's store check on a cluster file with mooncake.protocol rdma.

    pytest -m rdma --cluster fixtures/clusters/gpu-2node.yaml tests/rdma

Skips here with the exact reason (no RDMA cluster file / no RDMA device)."""

from __future__ import annotations

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import cacheable, counter, pd_request, unique_prompt

pytestmark = [pytest.mark.rdma, pytest.mark.gpu]


def test_pd_over_rdma_loads_the_whole_prefix(cluster: Cluster) -> None:
    if not cluster.proxy_url or not cluster.decode:
        pytest.skip(f"cluster {cluster.name!r} has no proxy or no decode node")
    assert cluster.mooncake_config and cluster.mooncake_config["protocol"] == "rdma"
    block = cluster.nodes[0].block_size or 16
    run = pd_request(cluster, unique_prompt(seed=21, n_words=300))
    external = sum(counter(run, d.name, "vllm:external_prefix_cache_hits_total") for d in cluster.decode)
    assert external == cacheable(run.prompt_tokens, block)
