"""A cluster file as a replay: its prefill nodes (role prefill or both) become the replay's engines, with
the block size, pool size and latency flags their command lines give (read by the fake's own parser); the
proxy's strategy routes; nodes with MooncakeStoreConnector share a store (unbounded unless
--store-tokens says otherwise)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kvtest.cluster.schema import load_cluster
from kvtest.replay.simulation import ReplayConfig
from simulators.vllm.config import parse_serve_args


def config_from_cluster(path: str | Path, base: ReplayConfig) -> ReplayConfig:
    spec = load_cluster(path)
    prefill = [n for n in spec.nodes if n.role in ("prefill", "both")]
    if not prefill:
        raise ValueError(f"{path}: no prefill (or both) node to replay on")
    first = prefill[0]
    for n in prefill[1:]:
        if (n.model, list(n.args)) != (first.model, list(first.args)):
            # the replay gives every node one engine configuration; taking the first node's would
            # silently misstate the others' pools and latencies
            raise ValueError(
                f"{path}: prefill nodes {first.name} and {n.name} have different models or vllm serve "
                "arguments; the replay needs identical prefill nodes"
            )
    sim, _ = parse_serve_args([first.model, *first.args])
    cfg = replace(
        base,
        nodes=len(prefill),
        block_size=sim.block_size,
        cache_tokens=(sim.num_gpu_blocks - 1) * sim.block_size,
        max_num_seqs=sim.max_num_seqs,
        prefill_base_ms=sim.sim_prefill_base_ms or base.prefill_base_ms,
        ttft_ms_per_token=sim.sim_ttft_ms_per_token or base.ttft_ms_per_token,
        itl_ms=sim.sim_itl_ms or base.itl_ms,
        external_ms_per_token=sim.sim_external_ms_per_token or base.external_ms_per_token,
        hash_algo=sim.prefix_caching_hash_algo,
    )
    if spec.proxy is not None and spec.proxy.strategy != "designate":
        cfg = replace(cfg, strategy=spec.proxy.strategy)
    if any(n.connector == "MooncakeStoreConnector" for n in prefill) and not cfg.has_store:
        cfg = replace(cfg, store_unbounded=True)
    return cfg
