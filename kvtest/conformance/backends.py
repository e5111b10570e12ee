"""Fake prefill and decode nodes for the router under test, each with a log of the requests it saw.

A RecordedNode is the fake vLLM server plus a middleware of the kit's own that notes every generation
request (which node, in what order, the body, when it ended and how), so a check can tell a router that
disaggregated from one that sent the full request to both nodes. The fake itself is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from kvtest.conformance.flows import Flow
from kvtest.metrics.exposition import sums
from kvtest.services.mooncake_master import MooncakeMaster
from simulators.vllm import FakeVLLMServer, SimConfig

MODEL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama"
SERVED_MODEL = "tiny-llama-pd"  # not the dir name: a router must take the model from /v1/models
BLOCK_SIZE = 16
Handler = Any
# the legs a check counts; other POSTs (vllm-router probes /v1/completions/render first) are not legs
GENERATION_PATHS = ("/v1/completions", "/v1/chat/completions")


@dataclass
class Leg:
    """One generation request as a node received it."""

    node: str  # "prefill" | "decode" | "reference"
    seq: int  # arrival order over all nodes
    path: str
    body: Any
    headers: dict[str, str]
    started: float
    ended: float | None = None
    status: int | None = None
    outcome: str = "running"  # running | done | cancelled | error

    @property
    def prompt(self) -> str:
        if isinstance(self.body, dict):
            p = self.body.get("prompt")
            if p is None and isinstance(self.body.get("messages"), list):
                p = json.dumps(self.body["messages"])
            return str(p)
        return ""


@dataclass
class LegLog:
    legs: list[Leg] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def for_marker(self, marker: str) -> list[Leg]:
        """The legs of one request: each check puts a unique marker in its prompt."""
        return [leg for leg in self.legs if marker in leg.prompt]


class RecordedNode(FakeVLLMServer):
    def __init__(self, role: str, cfg: SimConfig, log: LegLog) -> None:
        super().__init__(cfg)
        self.role = role
        self.log = log

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._record)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path not in GENERATION_PATHS:
            return await handler(request)  # type: ignore[no-any-return]
        raw = await request.read()  # cached by aiohttp: the handler reads it again
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        leg = Leg(self.role, next(self.log._seq), request.path, body, dict(request.headers), time.monotonic())
        self.log.legs.append(leg)
        try:
            resp: web.StreamResponse = await handler(request)
            leg.status, leg.outcome = resp.status, "done"
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            leg.outcome = "cancelled"
            raise
        except Exception:
            leg.outcome = "error"
            raise
        finally:
            leg.ended = time.monotonic()

    @property
    def open_legs(self) -> list[Leg]:
        return [leg for leg in self.log.legs if leg.node == self.role and leg.ended is None]

    def set_itl_ms(self, ms: float) -> None:
        self.engine.latency = dataclasses.replace(self.engine.latency, itl_ms=ms)

    async def go_dark(self) -> None:
        """Close the HTTP port (connections refused) while the connector and engine stay up."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def come_back(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False,
                                     handler_cancellation=True, shutdown_timeout=0.25)  # fmt: skip
        await self._runner.setup()
        await web.TCPSite(self._runner, self.cfg.host, self.port, reuse_address=True).start()


@dataclass
class Backends:
    flow: Flow
    prefill: RecordedNode
    decode: RecordedNode
    reference: RecordedNode  # a plain node: what one vLLM answers for the same request
    log: LegLog
    master: MooncakeMaster | None = None

    @property
    def bootstrap_port(self) -> int:
        side = getattr(self.prefill.connector, "side", None)
        return int(side.port) if side is not None and self.flow.name == "mooncake" else 8998

    def placeholders(self) -> dict[str, str]:
        p, d = self.prefill, self.decode
        return {
            "prefill": p.url,
            "decode": d.url,
            "prefill_host": "127.0.0.1",
            "prefill_port": str(p.port),
            "decode_host": "127.0.0.1",
            "decode_port": str(d.port),
            "bootstrap_port": str(self.bootstrap_port),
        }

    async def master_key_count(self, client: httpx.AsyncClient) -> int:
        """Objects the Mooncake master holds (its master_key_count gauge); 0 without a master."""
        if self.master is None:
            return 0
        values = sums((await client.get(self.master.url_for("metrics"))).text)
        if "master_key_count" not in values:
            raise AssertionError("the master's /metrics has no master_key_count")
        return int(values["master_key_count"])


def _cfg(flow: Flow, role: str, env: dict[str, str], **kw: Any) -> SimConfig:
    kv = None
    if flow.connector is not None and role != "reference":
        kv = {"kv_connector": flow.connector, "kv_role": role}
    return SimConfig(model=str(MODEL_DIR), served_model_name=SERVED_MODEL, port=0, block_size=BLOCK_SIZE,
                     sim_env=env, kv_transfer_config=kv, sim_enable_admin=True, **kw)  # fmt: skip


@contextlib.asynccontextmanager
async def start_backends(flow: Flow, workdir: Path) -> AsyncIterator[Backends]:
    """Prefill, decode and reference nodes (plus a mock Mooncake master for the store flow)."""
    env = {"PYTHONHASHSEED": "0", "VLLM_NIXL_SIDE_CHANNEL_PORT": "0", "VLLM_MOONCAKE_BOOTSTRAP_PORT": "0"}
    log = LegLog()
    async with AsyncExitStack() as stack:
        master = None
        if flow.name == "store":
            master = MooncakeMaster("mock", log_dir=workdir, in_process=True)
            stack.enter_context(master)
            path = workdir / "mooncake.json"
            conf = {"master_server_address": master.rpc_addr, "global_segment_size": "16MB",
                    "local_buffer_size": "8MB"}  # fmt: skip
            path.write_text(json.dumps(conf))
            env["MOONCAKE_CONFIG_PATH"] = str(path)
        nodes = []
        for role, kv_role in (
            ("prefill", flow.prefill_role),
            ("decode", flow.decode_role),
            ("reference", ""),
        ):
            node = RecordedNode(role, _cfg(flow, kv_role or role, env), log)
            nodes.append(await stack.enter_async_context(node))
        yield Backends(flow, nodes[0], nodes[1], nodes[2], log, master)
