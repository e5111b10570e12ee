"""The proxy's configuration: one dataclass, fields named after `kvtest proxy`'s flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from kvtest.proxy.kv_aware import KVAwareSettings

# vLLM's MooncakeConnector bootstrap server port (env VLLM_MOONCAKE_BOOTSTRAP_PORT, default 8998;
# docs/features/mooncake_connector_usage.md).
DEFAULT_BOOTSTRAP_PORT = 8998


@dataclass
class ProxyConfig:
    """`kvtest proxy` flags. Times in seconds. `port=0` picks a free port (read it back from PDProxy.url)."""

    prefill: list[str]
    decode: list[str]
    strategy: str = "round_robin"
    flow: str = "store"
    host: str = "127.0.0.1"
    port: int = 0
    connect_timeout: float = 5.0
    # Longest silence allowed between two reads from a backend (a prefill of a long prompt is one silence).
    read_timeout: float = 300.0
    health_timeout: float = 2.0
    allow_any_designation: bool = False
    seed: int = 0
    # MooncakeConnector: one bootstrap port for every prefill node, or one per node in --prefill order.
    bootstrap_port: list[int] = field(default_factory=lambda: [DEFAULT_BOOTSTRAP_PORT])
    # Prefix affinity: the first `prefix_blocks` blocks of `prefix_block_chars` characters (or
    # `prefix_block_tokens` token ids) pick the prefill node; a node is skipped while its in-flight count
    # exceeds `prefix_load_factor` x the mean (consistent hashing with bounded loads).
    prefix_block_chars: int = 64
    prefix_block_tokens: int = 16
    prefix_blocks: int = 4
    prefix_load_factor: float = 1.25
    max_body_bytes: int = 64 * 1024 * 1024
    # kv_aware (kvtest/proxy/kv_aware.py): each prefill node's KV-events PUB endpoint (and replay
    # endpoint), in --prefill order, and how the nodes hash blocks: model dir (tokenizer, chat
    # template), block size, algorithm, PYTHONHASHSEED
    kv_events: list[str] = field(default_factory=list)
    kv_replay: list[str] = field(default_factory=list)
    kv_model: str | None = None
    kv_block_size: int = 16
    kv_hash_algo: str = "sha256"
    kv_hash_seed: str | None = None
    kv_topic: str = ""
    kv_match_threshold: float = 0.5  # below this share of its blocks cached anywhere: the emptiest node
    # A client whose request body has not fully arrived after this long gets 408 (a stalled client
    # must not hold a handler for ever).
    body_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.prefill or not self.decode:
            raise ValueError("the proxy needs at least one --prefill and one --decode URL")
        # imported here: the registries' modules import this one for Node
        from kvtest.proxy.flows import FLOWS
        from kvtest.proxy.strategies import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})")
        if self.flow not in FLOWS:
            raise ValueError(f"unknown flow {self.flow!r} (choose from {', '.join(FLOWS)})")
        if len(self.bootstrap_port) not in (1, len(self.prefill)):
            raise ValueError("give one --bootstrap-port, or one per --prefill URL")
        if self.prefix_load_factor < 1.0:
            raise ValueError("prefix_load_factor must be >= 1")
        if self.strategy == "kv_aware":
            if len(self.kv_events) != len(self.prefill):
                raise ValueError("kv_aware needs one --kv-events endpoint per --prefill URL")
            if self.kv_replay and len(self.kv_replay) != len(self.prefill):
                raise ValueError("give no --kv-replay, or one per --prefill URL")
            if not self.kv_model:
                raise ValueError("kv_aware needs --kv-model (the nodes' model dir: tokenizer, chat template)")
            if self.kv_block_size <= 0:
                raise ValueError("kv_block_size must be positive")
        self.prefill = [normalize_url(u) for u in self.prefill]
        self.decode = [normalize_url(u) for u in self.decode]

    def kv_aware_settings(self) -> KVAwareSettings:
        from kvtest.proxy.kv_aware import KVAwareSettings

        replay: list[str | None] = list(self.kv_replay) or [None] * len(self.kv_events)
        return KVAwareSettings(
            self.kv_events,
            replay,
            self.kv_model or "",
            self.kv_block_size,
            self.kv_hash_algo,
            self.kv_hash_seed,
            self.kv_topic,
            self.kv_match_threshold,
        )

    def bootstrap_port_for(self, index: int) -> int:
        return self.bootstrap_port[0] if len(self.bootstrap_port) == 1 else self.bootstrap_port[index]


@dataclass(frozen=True)
class Node:
    """One backend vLLM server. `hostport` is what a `user` designation names."""

    role: str
    url: str
    hostport: str
    host: str
    bootstrap_port: int | None = None

    @property
    def bootstrap_url(self) -> str:
        return f"http://{self.host}:{self.bootstrap_port or DEFAULT_BOOTSTRAP_PORT}"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"backend URL {url!r} needs a host and a port")
    return url


def make_node(role: str, url: str, bootstrap_port: int | None = None) -> Node:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    host = parts.hostname.lower()
    shown = f"[{host}]" if ":" in host else host
    return Node(role, url, f"{shown}:{parts.port}", shown, bootstrap_port)
