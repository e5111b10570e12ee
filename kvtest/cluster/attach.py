"""A cluster someone else runs (Kubernetes, Ray, by hand): kvtest tests it and never starts or
stops anything there.

    spec = load_cluster("fixtures/clusters/attach-k8s.yaml")     # an `attach:` section, no hosts
    cluster = start(spec)        # checks every URL, fills model and block size, starts nothing there
    ...                          # the same fixtures, `kvtest demo`, `kvtest expect` as for any cluster
    cluster.stop()               # stops only the proxy kvtest started, if it started one

A URL that does not answer fails the start within `attach.connect_timeout_s`, naming the node. When
`attach.proxy_url` is absent kvtest runs its own proxy here in front of the nodes (strategy and flow
from the `proxy` section), as a process it owns and stops.

What the nodes report is taken from the nodes themselves: the served model from GET /v1/models,
the block size from vllm:cache_config_info (both real vLLM's and the fake's), so an attach file needs
only names, URLs and roles.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from kvtest import interrupts
from kvtest.cluster.cluster import Cluster
from kvtest.cluster.render import NodeEndpoint
from kvtest.cluster.schema import AttachedNode, ClusterSpec
from kvtest.metrics.exposition import samples
from kvtest.ports import free_port
from kvtest.process import ManagedProcess, http_ok

# the proxy kvtest starts in front of attached nodes: its own start-up, not the deployment's
PROXY_READY_S = 60.0


class AttachError(RuntimeError):
    """A part of the attached deployment did not answer as a vLLM node (or master) should."""


def _get(url: str, timeout: float, what: str) -> httpx.Response:
    try:
        resp = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise AttachError(
            f"{what}: {url} did not answer within {timeout:g}s ({type(exc).__name__}: {exc})"
        ) from None
    if resp.status_code != 200:
        raise AttachError(f"{what}: {url} answered {resp.status_code}: {resp.text[:200]!r}")
    return resp


def _served_model(node: AttachedNode, timeout: float) -> str:
    body = _get(f"{node.url.rstrip('/')}/v1/models", timeout, f"node {node.name}").json()
    models = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
    if not models:
        raise AttachError(f"node {node.name}: {node.url}/v1/models lists no model")
    return str(models[0])


def _block_size(metrics_text: str) -> int | None:
    """vllm:cache_config_info carries the cache config as labels (block_size="16")."""
    for sample in samples(metrics_text):
        if sample.name == "vllm:cache_config_info" and "block_size" in sample.labels:
            return int(sample.labels["block_size"])
    return None


def endpoint(node: AttachedNode, timeout: float) -> NodeEndpoint:
    """Check one node and describe it as the fixtures and experiments see every node."""
    base = node.url.rstrip("/")
    _get(f"{base}/health", timeout, f"node {node.name}")
    metrics_url = node.metrics_url or f"{base}/metrics"
    metrics = _get(metrics_url, timeout, f"node {node.name} metrics").text
    return NodeEndpoint(
        name=node.name,
        url=base,
        role=node.role,
        machine=node.machine or (urlsplit(base).hostname or base),
        impl="attached",
        connector=node.connector,
        kv_role={"prefill": "kv_producer", "decode": "kv_consumer"}.get(node.role, "kv_both"),
        model=node.model or _served_model(node, timeout),
        metrics_url=metrics_url,
        block_size=node.block_size or _block_size(metrics),
    )


def start_attached(
    spec: ClusterSpec, run_dir: Path, *, log: Callable[[str], None] = lambda _: None
) -> Cluster:
    attach = spec.attach
    assert attach is not None, "start_attached needs a cluster file with an attach section"
    timeout = attach.connect_timeout_s
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "cluster.json").write_text(spec.model_dump_json(indent=2))
    nodes = []
    for node in attach.nodes:
        interrupts.check()
        nodes.append(endpoint(node, timeout))
        log(f"attached: {node.name} at {node.url}")
    for what, url in (("mooncake_master", attach.mooncake_master_url), ("etcd", attach.etcd_url)):
        if url:
            _get(f"{url.rstrip('/')}/{'metrics' if what == 'mooncake_master' else 'health'}", timeout, what)
            log(f"attached: {what} at {url}")
    cluster = Cluster(
        name=spec.name,
        run_dir=run_dir,
        proxy_url=attach.proxy_url.rstrip("/") if attach.proxy_url else None,
        nodes=nodes,
        etcd_url=attach.etcd_url,
        master_admin_url=attach.mooncake_master_url,
        master_impl="real" if attach.mooncake_master_url else None,
        impls=["attached"],
        attached=True,
    )
    if cluster.proxy_url:
        _get(f"{cluster.proxy_url}/health", timeout, "proxy")
        log(f"attached: proxy at {cluster.proxy_url}")
    processes: list[dict[str, object]] = []
    if not cluster.proxy_url and spec.proxy is not None:
        proxy, port = _start_own_proxy(spec, nodes, run_dir)
        cluster.proxy_url = f"http://127.0.0.1:{port}"
        log(f"started: kvtest's proxy at {cluster.proxy_url} in front of the attached nodes")
        cluster._stop = lambda: _stop(proxy, run_dir)
        processes.append(
            {"name": "proxy", "kind": "proxy", "ports": [port], "log": str(proxy.log_path)}
            | {"reach": "local", "pgid": proxy.pid, "create_time": psutil.Process(proxy.pid).create_time()}
        )
    # `kvtest cluster status/down` work as for any cluster; down stops only what is listed here
    state = {
        "cluster_file": None,
        "cluster": cluster.to_dict(),
        "processes": processes,
        "created": time.time(),
    }
    (run_dir / "state.json").write_text(json.dumps(state, indent=2))
    return cluster


def _stop(proxy: ManagedProcess, run_dir: Path) -> None:
    proxy.stop()
    state = run_dir / "state.json"
    if state.exists():
        state.replace(run_dir / "state.stopped.json")


def _start_own_proxy(
    spec: ClusterSpec, nodes: list[NodeEndpoint], run_dir: Path
) -> tuple[ManagedProcess, int]:
    assert spec.proxy is not None
    port = free_port()
    argv = [sys.executable, "-m", "kvtest", "proxy", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--prefill", *[n.url for n in nodes if n.role in ("prefill", "both")]]
    argv += ["--decode", *[n.url for n in nodes if n.role in ("decode", "both")]]
    argv += ["--strategy", spec.proxy.strategy, "--flow", spec.proxy.flow, *spec.proxy.args]
    proc = ManagedProcess("proxy", argv, log_path=run_dir / "logs" / "proxy.log").start()
    try:
        proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/health"), PROXY_READY_S)
    except BaseException:
        proc.stop()
        raise
    return proc, port
