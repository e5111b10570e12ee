"""ExampleConnector (SharedStorageConnector before vLLM 0.11): KV in files under shared_storage_path
(kv_connector_extra_config, default "/tmp"); vllm/distributed/kv_transfer/kv_connector/v1/
example_connector.py.

- folder = md5 of the token ids as int64 bytes (safe_hash), one file per layer
  "model.layers.{i}.self_attn.attn.safetensors" (the fake writes raw bytes of the right size, not
  safetensors).
- save: every new request (any role), tokens[:align(len(prompt))] with align(n) = (n-1)//bs*bs
  (ReqMeta.make_meta); lookup: the folder of tokens[:align(len(prompt)-1)] (_found_match_for_prompt),
  returning that count minus the local hits. The two prefixes differ when len(prompt)-1 is a multiple
  of the block size: then a saved prompt is not found again, as in vLLM."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.vllm.connectors.base import ConnectorBase, KVLoadError, TransferConfig
from simulators.vllm.connectors.kv_size import KVShape
from simulators.vllm.request import SimRequest

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig


def align_to_block_size(num_tokens: int, block_size: int) -> int:
    return (num_tokens - 1) // block_size * block_size


class ExampleConnector(ConnectorBase):
    def __init__(
        self,
        tc: TransferConfig,
        *,
        env: dict[str, str] | None = None,
        block_size: int = 16,
        model: str = "tiny",
    ) -> None:
        super().__init__(tc, env)
        self.path = Path(str(tc.kv_connector_extra_config.get("shared_storage_path", "/tmp")))
        self.block_size = block_size
        self.shape = KVShape.from_model(model)

    def folder(self, token_ids: list[int]) -> Path:
        data = struct.pack(f"<{len(token_ids)}q", *token_ids)
        return self.path / hashlib.md5(data, usedforsecurity=False).hexdigest()

    def files(self, folder: Path) -> list[Path]:
        return [folder / f"model.layers.{i}.self_attn.attn.safetensors" for i in range(self.shape.num_layers)]

    def _lookup_count(self, request: SimRequest) -> int:
        n = align_to_block_size(request.num_prompt_tokens - 1, self.block_size)
        if n <= 0:
            return 0
        return n if self.folder(request.prompt_token_ids[:n]).is_dir() else 0

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        return max(0, self._lookup_count(request) - num_local_computed_tokens)

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None:
        n = request.num_local_cached_tokens + num_external_tokens
        files = self.files(self.folder(request.prompt_token_ids[:n]))
        if not all(await asyncio.to_thread(lambda: [f.is_file() for f in files])):
            raise KVLoadError(0, "ExampleConnector: KV files missing")
        if self._fault("kv_load_fail_rate") or self._fault("kv_store_unavailable"):
            raise KVLoadError(0, "ExampleConnector: load failed (injected)")

    async def save_kv(self, request: SimRequest, block_ids: list[int]) -> None:
        if request.output_token_ids or request.num_external_computed_tokens:
            return  # only a new prefill stores (is_store); a request that loaded does not
        n = align_to_block_size(request.num_prompt_tokens, self.block_size)
        if n <= 0:
            return
        folder = self.folder(request.prompt_token_ids[:n])
        size = self.shape.bytes_per_token() // self.shape.num_layers * n

        def write() -> None:
            os.makedirs(folder, exist_ok=True)
            for f in self.files(folder):
                f.write_bytes(bytes(size))

        await asyncio.to_thread(write)

    def state(self) -> dict[str, Any]:
        return {"shared_storage_path": str(self.path)}


def build(cfg: SimConfig, tc: TransferConfig, env: dict[str, str], **kw: Any) -> ConnectorBase:
    return ExampleConnector(tc, env=env, block_size=cfg.block_size, model=cfg.model, **kw)
