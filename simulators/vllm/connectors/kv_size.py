"""How many bytes of KV one block holds, from the model's config.json, as the real connectors size
their transfers: num_hidden_layers x 2 (K and V) x num_key_value_heads x head_dim x block_size x dtype
bytes (one kv-cache group, tp 1). A bare model name (no config.json) gets the tiny-llama fixture's shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float8": 1, "fp8": 1}


@dataclass(frozen=True)
class KVShape:
    num_layers: int = 2
    num_kv_heads: int = 2
    head_dim: int = 64
    hidden_size: int = 256
    dtype_bytes: int = 2

    @classmethod
    def from_model(cls, model: str) -> KVShape:
        path = Path(model) / "config.json"
        if not path.is_file():
            return cls()
        try:
            c = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        c = c.get("text_config", c)
        heads = int(c.get("num_attention_heads") or 1)
        hidden = int(c.get("hidden_size") or 0)
        head_dim = int(c.get("head_dim") or (hidden // heads if hidden else 64))
        dtype = str(c.get("dtype") or c.get("torch_dtype") or "bfloat16")
        return cls(
            num_layers=int(c.get("num_hidden_layers") or 1),
            num_kv_heads=int(c.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            hidden_size=hidden or heads * head_dim,
            dtype_bytes=DTYPE_BYTES.get(dtype, 2),
        )

    def bytes_per_token(self) -> int:
        return self.num_layers * 2 * self.num_kv_heads * self.head_dim * self.dtype_bytes

    def bytes_per_block(self, block_size: int) -> int:
        return self.bytes_per_token() * block_size

    def hidden_bytes(self, num_tokens: int) -> int:
        """V0 also stored the hidden states of the prompt (num_tokens x hidden_size)."""
        return num_tokens * self.hidden_size * self.dtype_bytes
