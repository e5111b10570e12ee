"""One P/D request through a cluster's proxy and what every counter did meanwhile.

    run = pd_request(cluster, unique_prompt(seed=1))
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens, B)

Shared by the real-CPU tier (tests/real) and the GPU/RDMA suites (tests/gpu, tests/rdma).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from kvtest.cluster.cluster import Cluster

BLOCK = 32  # --block-size in local-cpu.yaml / sim.yaml
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
]


def unique_prompt(seed: int, n_words: int = 60) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(n_words))


def complete(url: str, model: str, prompt: str, max_tokens: int = 8) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    resp = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert resp.status_code == 200, f"{url}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def cacheable(n_tokens: int, block: int = BLOCK) -> int:
    """Tokens a consumer can take from outside: full blocks, the last prompt token recomputed
    (vllm/v1/core/kv_cache_manager.py caps a hit at num_tokens - 1)."""
    return (n_tokens - 1) // block * block


@dataclass
class PDRun:
    text: str
    prompt_tokens: int
    nodes: dict[str, dict[str, float]]  # node -> counter deltas
    master: dict[str, float]  # master metric deltas
    keys_before: int
    keys_after: int


def pd_request(cluster: Cluster, prompt: str, max_tokens: int = 8) -> PDRun:
    assert cluster.proxy_url
    model = cluster.nodes[0].model
    before = cluster.metrics.snapshot()
    master_before = cluster.master_metrics() if cluster.master_admin_url else {}
    keys_before = len(cluster.master_keys()) if cluster.master_admin_url else 0
    out = complete(cluster.proxy_url, model, prompt, max_tokens)
    after = cluster.metrics.delta(before)
    master_after = cluster.master_metrics() if cluster.master_admin_url else {}
    return PDRun(
        text=out["choices"][0]["text"],
        prompt_tokens=out["usage"]["prompt_tokens"],
        nodes=after,
        master={k: v - master_before.get(k, 0.0) for k, v in master_after.items()},
        keys_before=keys_before,
        keys_after=len(cluster.master_keys()) if cluster.master_admin_url else 0,
    )


def counter(run: PDRun, node: str, name: str) -> float:
    return run.nodes[node].get(name, 0.0)
