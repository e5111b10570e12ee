"""Every shipped cluster file must start: vLLM refuses a --max-model-len above the model's
max_position_embeddings ("User-specified max_model_len (4096) is greater than the derived
max_model_len", vllm/config/model.py), which is how gpu-1node.yaml first failed on the H100."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvtest.cluster.schema import load_cluster

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "fixtures" / "clusters").glob("*.yaml"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_max_model_len_fits_the_model_dir(path: Path) -> None:
    spec = load_cluster(path)
    for node in spec.nodes:
        config = ROOT / node.model / "config.json"
        if not config.exists():
            continue  # a bare model name (fake nodes) or a model the runner provides
        limit = json.loads(config.read_text())["max_position_embeddings"]
        if "--max-model-len" in node.args:
            asked = int(node.args[node.args.index("--max-model-len") + 1])
            assert asked <= limit, f"{path.name}: {node.name} asks --max-model-len {asked} > {limit}"
