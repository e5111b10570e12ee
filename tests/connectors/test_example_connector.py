"""ExampleConnector on disk and --kv-transfer-config parsing (simulators/vllm/connectors/example.py cites
vLLM's example_connector.py for the folder hash and the two block alignments)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import httpx
import pytest

from simulators.vllm import SimConfig
from simulators.vllm.config import parse_serve_args
from simulators.vllm.connectors import build_connector
from simulators.vllm.connectors.base import TransferConfig

from .nodes import MODEL, complete, metric, node, scrape


def folder(root: Path, ids: list[int]) -> Path:
    return root / hashlib.md5(struct.pack(f"<{len(ids)}q", *ids), usedforsecurity=False).hexdigest()


async def test_example_connector_shares_kv_through_files(tmp_path: Path) -> None:
    kv = {"kv_connector_extra_config": {"shared_storage_path": str(tmp_path)}}
    prompt = "x " * 40
    async with (
        node("ExampleConnector", "kv_producer", {}, kv=kv) as p,
        node("ExampleConnector", "kv_consumer", {}, kv=kv) as d,
        httpx.AsyncClient(timeout=15) as c,
    ):
        r = await complete(c, p, prompt=prompt)
        ids = p.tokenizer.encode(prompt)
        n = len(ids)
        saved = folder(tmp_path, ids[: (n - 1) // 16 * 16])
        assert sorted(f.name for f in saved.iterdir()) == [
            "model.layers.0.self_attn.attn.safetensors",
            "model.layers.1.self_attn.attn.safetensors",
        ]
        await complete(c, d, prompt=prompt, max_tokens=2)
        dm = await scrape(c, d)
    assert r.status_code == 200
    lookup = (n - 2) // 16 * 16  # _found_match_for_prompt aligns len(prompt) - 1 once more
    expected = lookup if lookup == (n - 1) // 16 * 16 else 0
    assert metric(dm, "vllm:external_prefix_cache_hits_total") == expected


def test_kv_transfer_config_from_the_command_line() -> None:
    cfg, unknown = parse_serve_args(
        [MODEL, "--kv-transfer-config", '{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}']
    )
    assert not unknown
    tc = TransferConfig.from_dict(cfg.kv_transfer_config or {})
    assert (tc.kv_connector, tc.kv_role, tc.kv_load_failure_policy) == (
        "NixlConnector",
        "kv_consumer",
        "fail",
    )
    for bad in ({"kv_connector": "Nope"}, {"kv_connector": "NixlConnector", "kv_load_failure_policy": "x"}):
        with pytest.raises(ValueError):
            build_connector(SimConfig(kv_transfer_config=bad))


def test_v0_is_chosen_by_vllm_use_v1_0() -> None:
    tc = {"kv_connector": "MooncakeStoreConnector", "kv_role": "kv_producer"}
    v0 = build_connector(SimConfig(kv_transfer_config=tc, sim_env={"VLLM_USE_V1": "0"}))
    v1 = build_connector(SimConfig(kv_transfer_config=tc, sim_env={}))
    assert type(v0).__name__ == "MooncakeStoreConnectorV0"
    assert type(v1).__name__ == "MooncakeStoreConnectorV1"
