"""A running cluster as tests see it: proxy URL, nodes, a store client factory, a metrics scraper.

    with up(load_cluster("fixtures/clusters/local-cpu.yaml")) as cluster:
        httpx.post(f"{cluster.proxy_url}/v1/completions", json=...)
        cluster.metrics.counters("d0")["vllm:external_prefix_cache_hits_total"]
        store = cluster.store(); store.is_exist(key); store.close()

The same object is rebuilt from a run's state.json (`Cluster.from_state`), so a test session can
use a cluster that `kvtest cluster up` started in another shell.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kvtest.cluster.render import NodeEndpoint
from kvtest.metrics.exposition import sums
from kvtest.store import open_store


class MetricsScraper:
    """GET a node's /metrics and sum samples per name over their label sets."""

    def __init__(self, nodes: list[NodeEndpoint], timeout: float = 10.0) -> None:
        self._urls = {n.name: n.metrics_url for n in nodes}
        self.timeout = timeout

    def text(self, node: str) -> str:
        resp = httpx.get(self._urls[node], timeout=self.timeout)
        resp.raise_for_status()
        return resp.text

    def counters(self, node: str, model: str | None = None) -> dict[str, float]:
        return sums(self.text(node), model=model)

    def snapshot(self, model: str | None = None) -> dict[str, dict[str, float]]:
        return {name: self.counters(name, model) for name in self._urls}

    def delta(
        self, before: dict[str, dict[str, float]], model: str | None = None
    ) -> dict[str, dict[str, float]]:
        after = self.snapshot(model)
        return {
            node: {k: v - before.get(node, {}).get(k, 0.0) for k, v in values.items()}
            for node, values in after.items()
        }


@dataclass
class Cluster:
    name: str
    run_dir: Path
    proxy_url: str | None
    nodes: list[NodeEndpoint]
    etcd_url: str | None = None
    master_address: str | None = None
    master_admin_url: str | None = None
    master_impl: str | None = None  # "real" | "mock"
    mooncake_config: dict[str, Any] | None = None
    impls: list[str] = field(default_factory=list)
    ready_s: dict[str, float] = field(default_factory=dict)
    # a deployment kvtest did not start (kvtest/cluster/attach.py): its nodes' caches are not fresh
    attached: bool = False
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    # --- lookups ---------------------------------------------------------------------------------
    def node(self, name: str) -> NodeEndpoint:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r}; nodes: {', '.join(n.name for n in self.nodes)}")

    def by_role(self, role: str) -> list[NodeEndpoint]:
        return [n for n in self.nodes if n.role in (role, "both")]

    @property
    def prefill(self) -> list[NodeEndpoint]:
        return self.by_role("prefill")

    @property
    def decode(self) -> list[NodeEndpoint]:
        return self.by_role("decode")

    @property
    def metrics(self) -> MetricsScraper:
        return MetricsScraper(self.nodes)

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    # --- store -----------------------------------------------------------------------------------
    def store(self, local_hostname: str | None = None, global_segment_size: int = 0) -> Any:
        """A set-up store client of this cluster's master (mock or real); the caller close()s it.

        Opens the class the master's impl pairs with: mooncake.store.MooncakeDistributedStore for
        the real master, simulators.mooncake's for the mock (same methods and return codes).

        By default it mounts no segment (a pure client: its puts land in the nodes' segments). A
        short-lived client that mounts one leaves it behind: the real master kept the segment of a
        closed probe client after declaring the client expired (no unmount_expired_mem_segment in
        its log), went on placing vLLM's puts there, and those transfers stalled 30 s each
        (ClientSession: no transfer progress within 30s) until decode gets failed LEASE_EXPIRED and
        vLLM answered 500 (ci/real-cpu/README.md, finding 4).
        """
        if not self.mooncake_config or not self.master_address:
            raise RuntimeError(f"cluster {self.name!r} has no mooncake_master")
        cfg = self.mooncake_config | {"global_segment_size": global_segment_size}
        if local_hostname:
            cfg["local_hostname"] = local_hostname
        if self.master_impl == "real":
            return open_store("real", **cfg)
        return open_store("mock", **cfg)

    def master_keys(self) -> list[str]:
        """Keys the master holds now (its admin endpoint /get_all_keys)."""
        if not self.master_admin_url:
            raise RuntimeError(f"cluster {self.name!r} has no mooncake_master")
        resp = httpx.get(f"{self.master_admin_url}/get_all_keys", timeout=10)
        resp.raise_for_status()
        return [line for line in resp.text.splitlines() if line.strip()]

    def master_metrics(self) -> dict[str, float]:
        if not self.master_admin_url:
            raise RuntimeError(f"cluster {self.name!r} has no mooncake_master")
        resp = httpx.get(f"{self.master_admin_url}/metrics", timeout=10)
        resp.raise_for_status()
        return sums(resp.text)

    # --- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stop is not None:
            stop, self._stop = self._stop, None
            stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state file ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_stop", None)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cluster:
        d = dict(d)
        d["run_dir"] = Path(d["run_dir"])
        d["nodes"] = [NodeEndpoint(**n) for n in d["nodes"]]
        known = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def from_state(cls, path: str | Path) -> Cluster:
        return cls.from_dict(json.loads(Path(path).read_text())["cluster"])
