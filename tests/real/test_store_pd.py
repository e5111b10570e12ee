"""P/D through MooncakeStoreConnector on real components (local-cpu.yaml): the decode node gets
the prompt's KV from the store, not by recomputing it, and the output is what one node makes alone."""

from __future__ import annotations

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import BLOCK, PDRun, cacheable, complete, counter, pd_request, unique_prompt

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def first(local_cpu: Cluster) -> PDRun:
    prompt = unique_prompt(seed=1)
    run = pd_request(local_cpu, prompt)
    assert run.prompt_tokens % BLOCK != 0  # so full blocks (n // B) and the n-1 cap differ visibly
    return run


def test_decode_output_equals_a_single_node_run(local_cpu: Cluster, first: PDRun) -> None:
    alone = complete(local_cpu.node("p0").url, local_cpu.nodes[0].model, unique_prompt(seed=1))
    assert first.text == alone["choices"][0]["text"]
    assert first.text  # 8 tokens, not an empty body


def test_decode_takes_every_cacheable_prompt_token_from_the_store(first: PDRun) -> None:
    n = first.prompt_tokens
    assert counter(first, "d0", "vllm:external_prefix_cache_queries_total") == n
    assert counter(first, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(n)
    assert counter(first, "d0", "vllm:prefix_cache_hits_total") == 0
    # the prefill leg ran on p0 (max_tokens=1) and put its full blocks
    assert counter(first, "p0", "vllm:prompt_tokens_total") == n
    assert counter(first, "p0", "vllm:generation_tokens_total") == 1


def test_the_master_saw_one_put_per_full_block(first: PDRun) -> None:
    blocks = first.prompt_tokens // BLOCK
    assert first.keys_after - first.keys_before == blocks
    assert first.master.get("master_key_count", 0) == blocks
    assert first.master.get("master_batch_put_start_items_total", 0) == blocks


def test_a_repeated_prompt_is_not_stored_twice(local_cpu: Cluster, first: PDRun) -> None:
    again = pd_request(local_cpu, unique_prompt(seed=1))
    assert again.text == first.text
    # vLLM's V1 store connector checks batch_is_exist before putting (save_exists): nothing new
    assert again.keys_after == again.keys_before
    assert again.master.get("master_batch_put_start_items_total", 0) == 0
    # decode now finds the prefix in its own cache first
    assert counter(again, "d0", "vllm:prefix_cache_hits_total") == cacheable(again.prompt_tokens)


def test_store_fixture_reads_the_clusters_master(local_cpu: Cluster, first: PDRun) -> None:
    store = local_cpu.store()
    try:
        assert store.put("kvtest-real-probe", b"x" * 1024) == 0
        assert store.is_exist("kvtest-real-probe") == 1
        assert store.get("kvtest-real-probe") == b"x" * 1024
        assert "kvtest-real-probe" in local_cpu.master_keys()
        # the get above holds a lease (default_kv_lease_ttl): a plain remove is refused, force wins
        assert store.remove("kvtest-real-probe") == -706
        assert store.remove("kvtest-real-probe", True) == 0
    finally:
        store.close()
