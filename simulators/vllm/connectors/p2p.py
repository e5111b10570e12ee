"""What NIXL and Mooncake's P2P connector share: the decode loads the whole prompt from the prefill
(get_num_new_matched_tokens returns len(prompt) - local hits, loaded asynchronously; no n-1 cap:
nixl/push_scheduler.py and mooncake/mooncake_connector.py get_num_new_matched_tokens), the prefill holds
its blocks after a request finished by length until the decode has them or a timeout frees them."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx

from simulators.vllm.connectors.base import ConnectorBase, KVLoadError, TransferConfig
from simulators.vllm.connectors.kv_size import KVShape
from simulators.vllm.connectors.side_channel import SideChannel
from simulators.vllm.request import SimRequest


class P2PConnector(ConnectorBase):
    port_env = ""
    default_port = 0
    timeout_env = ""
    default_timeout_s = 480.0

    def __init__(
        self,
        tc: TransferConfig,
        *,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        block_size: int = 16,
        model: str = "tiny",
        seed: int = 0,
    ) -> None:
        super().__init__(tc, env)
        self.engine_id = tc.engine_id or str(uuid.uuid4())
        self.block_size = block_size
        self.shape = KVShape.from_model(model)
        self.host = host
        self.side = SideChannel(host, int(self.env.get(self.port_env, self.default_port)))
        self.abort_timeout_s = float(self.env.get(self.timeout_env, self.default_timeout_s))
        self.rng = random.Random(seed)
        self.client: httpx.AsyncClient | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.sent = 0  # transfers served
        self.expired = 0  # held blocks freed by the abort timeout
        self.received_bytes = 0

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(self.abort_timeout_s + 5, connect=5))
        await self.side.start()

    async def stop(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        await self.side.stop()
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()

    # -- prefill side: hold blocks -------------------------------------------------------------------
    def _hold(self, request_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._timers[request_id] = loop.call_later(self.abort_timeout_s, self._expire, request_id)

    def _expire(self, request_id: str) -> None:
        self._timers.pop(request_id, None)
        self.expired += 1
        self._release(request_id)

    def _release(self, request_id: str) -> None:
        t = self._timers.pop(request_id, None)
        if t is not None:
            t.cancel()
        if self.engine is not None:
            self.engine.free_delayed(request_id)

    # -- decode side ---------------------------------------------------------------------------------
    def _remote_count(self, request: SimRequest, local: int) -> int:
        return max(0, request.num_prompt_tokens - local)

    def _inject(self, num_tokens: int) -> int:
        """How many of num_tokens arrive when a load fault is switched on (block-aligned prefix)."""
        if self.rng.random() < float(self._fault("kv_load_fail_rate") or 0):
            return 0
        if self.rng.random() < float(self._fault("kv_load_partial_rate") or 0):
            return num_tokens // 2 // self.block_size * self.block_size
        return num_tokens

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        try:
            r = await self.client.post(url, json=body)
        except httpx.HTTPError as e:
            raise KVLoadError(0, f"{url}: {type(e).__name__}") from None
        if r.status_code != 200:
            raise KVLoadError(0, f"{url}: {r.status_code} {r.text[:200]}")
        data: dict[str, Any] = r.json()
        return data

    def state(self) -> dict[str, Any]:
        return {"held": sorted(self._timers), "sent": self.sent, "expired": self.expired}
