"""One P/D request through a cluster's proxy and what every counter did meanwhile.

    run = pd_request(cluster, unique_prompt(seed=1))
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(run.prompt_tokens, B)

Shared by the real-CPU tier (tests/real) and the GPU/RDMA suites (tests/gpu, tests/rdma).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.connectors import CONNECTORS
from kvtest.metrics.exposition import by_label

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


def complete(url: str, model: str, prompt: str, max_tokens: int = 8, **extra: object) -> dict:
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
    resp = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert resp.status_code == 200, f"{url}: {resp.status_code} {resp.text[:500]}"
    return resp.json()


def cacheable(n_tokens: int, block: int = BLOCK) -> int:
    """Tokens a consumer can take from outside: full blocks, the last prompt token recomputed
    (vllm/v1/core/kv_cache_manager.py caps a hit at num_tokens - 1)."""
    return (n_tokens - 1) // block * block


def expected_external_hits(connector_name: str | None, n_tokens: int, block: int = BLOCK) -> int:
    """What decode's vllm:external_prefix_cache_hits_total grows by for one fresh P/D request.

    A connector that moves a request's KV from its own prefill (kv_transfer_params / transfer_id)
    hands decode the whole prompt (kvtest/cluster/connectors/, transfers_whole_prompt); the store
    connectors look blocks up by hash, so only full blocks of the first n-1 tokens can hit."""
    kv = CONNECTORS.get(connector_name or "")
    if kv is not None and kv.transfers_whole_prompt:
        return n_tokens
    return cacheable(n_tokens, block)


@dataclass
class PDRun:
    text: str
    prompt_tokens: int
    token_ids: list[int] | None  # the output's, where the request asked vLLM for them
    nodes: dict[str, dict[str, float]]  # node -> counter deltas
    master: dict[str, float]  # master metric deltas
    keys_before: int
    keys_after: int


STORE_WAIT_S = 30.0


def _store_ops(cluster: Cluster, node: str) -> dict[str, float] | None:
    """The node's mooncake_store_operation_total by operation, or None when it exports none."""
    text = cluster.metrics.text(node)
    if "vllm:mooncake_store_operation_total" not in text:
        return None
    return by_label(text, "vllm:mooncake_store_operation_total", "operation")


def wait_for_store_saves(cluster: Cluster, node: str, ops_before: dict[str, float] | None, new_keys: int,
                         keys_before: int) -> None:  # fmt: skip
    """Wait (deadline STORE_WAIT_S) until `node` has checked its blocks against the store
    (operation save_exists) and the master holds `new_keys` more keys.

    Why: vLLM V1's MooncakeStoreConnector saves asynchronously (store/worker.py, KV send thread:
    batch_is_exist, then batch_put_from_multi_buffers), after the prefill's response has gone out.
    A decode sent right after that response can look up before the puts land and recompute
    (measured here under load: 15 keys stored, decode external hits 0). The store flow has no
    completion signal, so a test that checks the connectors waits for the store itself.
    """
    if ops_before is None:
        return
    deadline = time.monotonic() + STORE_WAIT_S
    while time.monotonic() < deadline:
        ops = _store_ops(cluster, node) or {}
        checked = ops.get("save_exists", 0.0) > ops_before.get("save_exists", 0.0)
        if checked and len(cluster.master_keys()) >= keys_before + new_keys:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{node}: the store did not get {new_keys} new keys within {STORE_WAIT_S:.0f}s")


def pd_request(cluster: Cluster, prompt: str, max_tokens: int = 8, *, via_proxy: bool | None = None,
               **extra: object) -> PDRun:  # fmt: skip
    """The request through the proxy, or, for a store-connector cluster (a mooncake_master), the
    store flow's two legs driven here: prefill (max_tokens=1), wait for its puts, then decode.
    `extra` goes into the request body (e.g. return_token_ids=True: vLLM >= 0.10 answers with the
    output's token ids, which a dummy-weights model's empty text cannot show)."""
    model = cluster.nodes[0].model
    before = cluster.metrics.snapshot()
    master_before = cluster.master_metrics() if cluster.master_admin_url else {}
    keys_before = len(cluster.master_keys()) if cluster.master_admin_url else 0
    if via_proxy is None:
        via_proxy = not cluster.master_admin_url
    if via_proxy:
        assert cluster.proxy_url
        out = complete(cluster.proxy_url, model, prompt, max_tokens, **extra)
    else:
        p, d = cluster.prefill[0], cluster.decode[0]
        ops_before = _store_ops(cluster, p.name)
        first = complete(p.url, model, prompt, max_tokens=1)
        n = first["usage"]["prompt_tokens"]
        fresh = _store_ops(cluster, p.name) is not None and (cluster.name, prompt) not in _seen
        wait_for_store_saves(
            cluster, p.name, ops_before, n // (p.block_size or BLOCK) if fresh else 0, keys_before
        )
        _seen.add((cluster.name, prompt))
        out = complete(d.url, model, prompt, max_tokens, **extra)
    after = cluster.metrics.delta(before)
    master_after = cluster.master_metrics() if cluster.master_admin_url else {}
    return PDRun(
        text=out["choices"][0]["text"],
        token_ids=out["choices"][0].get("token_ids"),
        prompt_tokens=out["usage"]["prompt_tokens"],
        nodes=after,
        master={k: v - master_before.get(k, 0.0) for k, v in master_after.items()},
        keys_before=keys_before,
        keys_after=len(cluster.master_keys()) if cluster.master_admin_url else 0,
    )


# (cluster, prompt) this process sent before: their blocks are in that cluster's store already
_seen: set[tuple[str, str]] = set()


def counter(run: PDRun, node: str, name: str) -> float:
    return run.nodes[node].get(name, 0.0)
