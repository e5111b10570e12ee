"""`python -m simulators.vllm serve`: vllm serve's command line, unknown flags reported once, never fatal."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from kvtest.ports import free_port
from kvtest.process import ManagedProcess, http_ok
from kvtest.service import READY_CAP_S
from simulators.vllm.config import parse_serve_args

ROOT = Path(__file__).resolve().parents[3]


def test_parse_serve_args_maps_vllm_flags_and_keeps_unknown_ones() -> None:
    cfg, unknown = parse_serve_args(
        [
            "fixtures/models/tiny-llama",
            "--block-size",
            "32",
            "--num-gpu-blocks-override",
            "65",  # 64 blocks (63 usable + the null block) cannot hold 2048 tokens: vLLM refuses
            "--no-enable-prefix-caching",
            "--kv-transfer-config",
            '{"kv_connector": "NixlConnector"}',
            "--served-model-name",
            "a",
            "b",
            "--enforce-eager",
            "--gpu-memory-utilization",
            "0.5",
            "--sim-metrics",
            "both",
            "--sim-itl-ms",
            "2.5",
            "--seed",
            "3",
        ]
    )
    assert cfg.model == "fixtures/models/tiny-llama" and cfg.block_size == 32
    assert cfg.num_gpu_blocks == 65 and cfg.enable_prefix_caching is False
    assert cfg.kv_transfer_config == {"kv_connector": "NixlConnector"}
    assert (
        cfg.model_names == ["a", "b"]
        and cfg.sim_metrics == "both"
        and cfg.sim_itl_ms == 2.5
        and cfg.seed == 3
    )
    assert cfg.gpu_memory_utilization == 0.5
    assert unknown == ["--enforce-eager"]


def test_serve_process_starts_reports_unknown_flags_and_answers(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "fake.log"
    proc = ManagedProcess(
        "fake-vllm",
        [
            sys.executable,
            "-m",
            "simulators.vllm",
            "serve",
            str(ROOT / "fixtures/models/tiny-llama"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load-format",
            "dummy",
            "--dtype",
            "bfloat16",
        ],
        cwd=ROOT,
        log_path=log,
    )
    try:
        proc.start()
        proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout=READY_CAP_S)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "the cat", "max_tokens": 2})
        assert r.status_code == 200
        assert r.json()["model"] == str(ROOT / "fixtures/models/tiny-llama")
    finally:
        proc.stop()
    text = log.read_text()
    assert text.count("ignoring flags it does not model") == 1
    assert "--load-format dummy\n" in text  # --dtype is modelled now (the KV block size)
