"""The fake's block hashes equal the ones real vLLM's own functions compute (needs .venv-real).

Runs vllm.v1.core.kv_cache_utils.init_none_hash / hash_block_tokens and
vllm.utils.hashing.get_hash_fn_by_name from the installed vllm (make install-real) in a subprocess,
with the same PYTHONHASHSEED, and compares every block hash byte for byte.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kvtest.gating import skip_unless
from simulators.vllm.hashing import BlockHasher

ROOT = Path(__file__).resolve().parents[3]
REAL_PY = ROOT / ".venv-real" / "bin" / "python"

SCRIPT = """
import json, sys
from vllm.v1.core import kv_cache_utils as k
from vllm.utils.hashing import get_hash_fn_by_name
tokens, bs = json.loads(sys.argv[1]), int(sys.argv[2])
out = {}
for algo in ("sha256", "sha256_cbor", "xxhash", "xxhash_cbor"):
    try:
        fn = get_hash_fn_by_name(algo)
        k.init_none_hash(fn)
        parent, hashes = None, []
        for i in range(0, len(tokens) - bs + 1, bs):
            parent = k.hash_block_tokens(fn, parent, tokens[i : i + bs], None)
            hashes.append(bytes(parent).hex())
        out[algo] = hashes
    except ModuleNotFoundError:  # xxhash is optional in vllm
        pass
print(json.dumps(out))
"""


@pytest.mark.real
@pytest.mark.slow
def test_block_hashes_equal_real_vllm(request: pytest.FixtureRequest) -> None:
    if "real" not in (request.config.option.markexpr or ""):
        pytest.skip("real-CPU tier: importing vllm takes ~10 s; run with `pytest -m real tests/unit/vllm`")
    skip_unless("real", REAL_PY.exists(), f"{REAL_PY} not installed (make install-real)")
    tokens = [(i * 7919) % 32000 for i in range(100)]
    res = subprocess.run(
        [str(REAL_PY), "-c", SCRIPT, json.dumps(tokens), "16"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONHASHSEED": "1234", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    real = json.loads(res.stdout.strip().splitlines()[-1])
    assert "sha256" in real and "sha256_cbor" in real
    for algo, hashes in real.items():
        fake = BlockHasher(16, algo, env={"PYTHONHASHSEED": "1234"}).hashes(tokens)
        assert [h.hex() for h in fake] == hashes, algo
