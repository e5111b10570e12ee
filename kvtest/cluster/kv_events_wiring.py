"""`proxy: {strategy: kv_aware}` in a cluster file: each prefill node publishes vLLM's KV events and the
proxy subscribes to them, with the hashing the nodes use.

A prefill node whose args already hold `--kv-events-config` keeps it (its endpoint must be tcp with a
port, the proxy connects to the node's host address there); one without gets
`{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:P", "replay_endpoint":
"tcp://*:R"}` with free ports. The proxy gets `--kv-events`/`--kv-replay` in prefill order, the model
dir (its tokenizer), the block size, the hash algorithm and the cluster's `hash_seed`. The last three
must be known: a request hashed otherwise than the nodes hash it never matches an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from kvtest.cluster.schema import ClusterFileError, ClusterSpec, Node
from simulators.vllm.kv_events import parse_kv_events_config

FLAG = "--kv-events-config"


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _connect_url(endpoint: str, address: str, node: str) -> str:
    """tcp://*:5557 (a bind) as the proxy reaches it: tcp://<node's host address>:5557."""
    if not endpoint.startswith("tcp://") or ":" not in endpoint[6:]:
        raise ClusterFileError(
            f"node {node}: kv_aware needs a tcp://HOST:PORT events endpoint, not {endpoint}"
        )
    port = endpoint.rsplit(":", 1)[1]
    if not port.isdigit() or int(port) == 0:
        raise ClusterFileError(f"node {node}: kv_aware needs a fixed events port, not {endpoint}")
    return f"tcp://{address}:{port}"


@dataclass
class KVEventsWiring:
    events: list[str] = field(default_factory=list)  # in prefill order
    replay: list[str] = field(default_factory=list)
    model: str = ""
    block_size: int = 0
    hash_algo: str = "sha256"
    hash_seed: str = "0"

    def add_node(self, node: Node, address: str, new_port: Callable[[], int]) -> tuple[list[str], list[int]]:
        """The node's extra serve args and the ports they take (none when its args have a config)."""
        given = _arg(node.args, FLAG)
        extra: list[str] = []
        ports: list[int] = []
        if given is None:
            pub, rep = new_port(), new_port()
            cfg = {
                "enable_kv_cache_events": True,
                "publisher": "zmq",
                "endpoint": f"tcp://*:{pub}",
                "replay_endpoint": f"tcp://*:{rep}",
            }
            extra, ports = [FLAG, json.dumps(cfg, separators=(",", ":"))], [pub, rep]
            self.events.append(f"tcp://{address}:{pub}")
            self.replay.append(f"tcp://{address}:{rep}")
        else:
            try:
                ev = parse_kv_events_config(given)
            except ValueError as e:
                raise ClusterFileError(f"node {node.name}: {FLAG}: {e}") from None
            if not ev.publishes:
                raise ClusterFileError(
                    f"node {node.name}: kv_aware needs its {FLAG} to enable events with the zmq publisher"
                )
            self.events.append(_connect_url(ev.endpoint, address, node.name))
            if ev.replay_endpoint:
                self.replay.append(_connect_url(ev.replay_endpoint, address, node.name))
        return extra, ports

    def proxy_args(self) -> list[str]:
        # the proxy takes replay endpoints for every node or for none
        replay = ["--kv-replay", *self.replay] if len(self.replay) == len(self.events) else []
        return [
            "--kv-events",
            *self.events,
            *replay,
            "--kv-model",
            self.model,
            "--kv-block-size",
            str(self.block_size),
            "--kv-hash-algo",
            self.hash_algo,
            "--kv-hash-seed",
            self.hash_seed,
        ]


def kv_events_wiring(spec: ClusterSpec) -> KVEventsWiring | None:
    """The wiring when the proxy routes kv_aware, else None; refuses what the proxy could not hash."""
    if spec.proxy is None or spec.proxy.strategy != "kv_aware":
        return None
    prefill = [n for n in spec.nodes if n.role in ("prefill", "both")]
    name = spec.name

    def one(what: str, values: set[str | None]) -> str | None:
        if len(values) > 1:
            raise ClusterFileError(
                f"{name}: kv_aware needs one {what} on every prefill node, not {sorted(map(str, values))}"
            )
        return next(iter(values))

    block = one("--block-size", {_arg(n.args, "--block-size") for n in prefill})
    if block is None:
        raise ClusterFileError(
            f"{name}: kv_aware needs --block-size in the prefill nodes' args "
            "(the proxy hashes requests in those blocks)"
        )
    if spec.hash_seed is None:
        raise ClusterFileError(
            f"{name}: kv_aware needs hash_seed (the nodes' PYTHONHASHSEED seeds vLLM's block hashes)"
        )
    model = one("model", {n.model for n in prefill})
    algo = one("--prefix-caching-hash-algo", {_arg(n.args, "--prefix-caching-hash-algo") for n in prefill})
    return KVEventsWiring(
        model=model or "", block_size=int(block), hash_algo=algo or "sha256", hash_seed=spec.hash_seed
    )
