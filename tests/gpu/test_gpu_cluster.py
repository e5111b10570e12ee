"""The GPU suite: the real-tier checks on a GPU cluster file, one command on a GPU host:

    ci/test-gpu.sh fixtures/clusters/gpu-4p4d.yaml     (= make test-gpu CLUSTER=FILE; README.md here)

Here (no GPU, no GPU cluster file) every test skips with the exact reason; KVTEST_REQUIRE=gpu makes
that a failure. The cluster fixture starts the file's etcd, master, vLLM nodes (CUDA_VISIBLE_DEVICES
from `gpus`, one PYTHONHASHSEED for all, nodes sharing a GPU one after another) and proxy."""

from __future__ import annotations

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import (
    cacheable,
    complete,
    counter,
    expected_external_hits,
    pd_request,
    unique_prompt,
)

pytestmark = pytest.mark.gpu


def block_of(cluster: Cluster) -> int:
    sizes = {n.block_size for n in cluster.nodes}
    if len(sizes) != 1 or None in sizes:
        pytest.fail(
            f"cluster {cluster.name!r}: give every node the same --block-size (found {sizes})", pytrace=False
        )
    return int(next(iter(sizes)))  # type: ignore[arg-type]


def test_repeated_prompt_hits_the_prefix_cache(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    prompt = unique_prompt(seed=11, n_words=200)
    first = complete(node.url, node.model, prompt)
    # measure the repeat alone: on a cluster attached through KVTEST_CLUSTER_STATE an earlier run
    # may already have cached this prompt, so the first request's hits are not known in advance
    before = cluster.metrics.snapshot()
    complete(node.url, node.model, prompt)
    delta = cluster.metrics.delta(before)[node.name]
    n = first["usage"]["prompt_tokens"]
    assert delta["vllm:prefix_cache_queries_total"] == n
    assert delta["vllm:prefix_cache_hits_total"] == cacheable(n, block_of(cluster))


def test_pd_output_matches_a_single_node(cluster: Cluster) -> None:
    if not cluster.proxy_url or not cluster.decode:
        pytest.skip(f"cluster {cluster.name!r} has no proxy or no decode node")
    """Decode's output equals a prefill-only run's, compared as token ids (the dummy-weights model's
    text is often empty, so equal texts would prove nothing), and decode's external hits are what
    vLLM promises for the connector. Through the proxy for NIXL / MooncakeConnector."""
    prompt = unique_prompt(seed=12, n_words=150)
    run = pd_request(cluster, prompt, return_token_ids=True)
    alone = complete(cluster.prefill[0].url, cluster.prefill[0].model, prompt, return_token_ids=True)
    assert run.token_ids, "vLLM returned no token_ids (return_token_ids needs vLLM >= 0.10)"
    assert run.token_ids == alone["choices"][0]["token_ids"]
    assert run.text == alone["choices"][0]["text"]
    external = sum(counter(run, d.name, "vllm:external_prefix_cache_hits_total") for d in cluster.decode)
    connector = cluster.decode[0].connector
    assert external == expected_external_hits(connector, run.prompt_tokens, block_of(cluster))
    if cluster.master_admin_url:
        assert run.keys_after - run.keys_before == run.prompt_tokens // block_of(cluster)


def test_two_producers_store_a_prefix_once(cluster: Cluster) -> None:
    """The seed's dedup check (master: object already exists), as V1 does it: with one
    PYTHONHASHSEED the second producer finds the keys (save_exists) and puts nothing."""
    producers = cluster.prefill
    if len(producers) < 2 or not cluster.master_admin_url:
        pytest.skip(f"cluster {cluster.name!r} needs 2 prefill nodes and a mooncake_master")
    prompt = unique_prompt(seed=13, n_words=150)
    keys0 = len(cluster.master_keys())
    first = complete(producers[0].url, producers[0].model, prompt, max_tokens=1)
    keys1 = len(cluster.master_keys())
    complete(producers[1].url, producers[1].model, prompt, max_tokens=1)
    keys2 = len(cluster.master_keys())
    assert keys1 - keys0 == first["usage"]["prompt_tokens"] // block_of(cluster)
    assert keys2 == keys1
