"""The cluster file: which hosts, which services on them, and how they are wired.

    spec = load_cluster("fixtures/clusters/local-cpu.yaml")
    spec.node("p0").role  # "prefill"

Every model forbids unknown keys, so a typo is an error, and `ClusterFileError` names the file and
the field (`nodes[2] (p2).role: ...`). Ports left out are allocated free at launch (local hosts);
a host reached over ssh at a non-loopback address must give its ports, since this machine cannot
know which ports are free over there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kvtest.cluster.connectors import CONNECTORS
from kvtest.cluster.launchers import REACHES
from kvtest.proxy.flows import FLOWS
from kvtest.proxy.strategies import STRATEGIES
from simulators.mooncake.config import parse_size

Role = Literal["prefill", "decode", "both"]
KVRole = Literal["kv_producer", "kv_consumer", "kv_both"]
ROLE_TO_KV_ROLE: dict[str, str] = {"prefill": "kv_producer", "decode": "kv_consumer", "both": "kv_both"}


class ClusterFileError(ValueError):
    """A cluster file that cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHOptions(_Model):
    user: str | None = None
    port: int = 22
    identity_file: str | None = None
    # extra `-o Key=Value` options, e.g. ["StrictHostKeyChecking=no"]
    options: list[str] = Field(default_factory=list)


class RayPlacement(_Model):
    """Which node of a running Ray cluster a `reach: ray` host is (kvtest/cluster/launchers/ray.py)."""

    address: str  # Ray Client address of the cluster: ray://HEAD:10001
    node_ip: str | None = None  # the node whose NodeManagerAddress this is
    resource: str | None = None  # or: the node that has this custom resource (ray start --resources)
    labels: dict[str, str] = Field(default_factory=dict)  # or: the node with these labels (--labels)

    @model_validator(mode="after")
    def _one_way_to_pick(self) -> RayPlacement:
        given = [k for k in ("node_ip", "resource", "labels") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"name the Ray node one way: node_ip, resource or labels (given: {given or 'none'})"
            )
        return self


class Host(_Model):
    name: str
    address: str = "127.0.0.1"
    # how processes get onto the host: a name from kvtest.cluster.launchers.REGISTRY (local, ssh,
    # inprocess, docker: a container made for the run, its address assigned by Docker)
    reach: str = "local"
    ssh: SSHOptions | None = None
    ray: RayPlacement | None = None  # reach: ray
    # run every process of this host inside `ip netns exec NETNS` (a namespace made beforehand)
    netns: str | None = None
    # where commands run and relative paths resolve; local default: the current directory
    workdir: str | None = None
    # commands (split like a shell would); a GPU runner may set vllm: "python3 -m vllm.entrypoints.cli.main"
    python: str | None = None  # local default: the interpreter running kvtest
    vllm: str = "vllm"
    mooncake_master: str = "mooncake_master"
    etcd: str = "etcd"
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("reach")
    @classmethod
    def _known_reach(cls, value: str) -> str:
        if value not in REACHES:
            raise ValueError(f"unknown reach {value!r} (known: {', '.join(REACHES)})")
        return value

    @model_validator(mode="after")
    def _ssh_needs_options(self) -> Host:
        if self.reach == "ssh" and self.ssh is None:
            object.__setattr__(self, "ssh", SSHOptions())
        if self.reach == "ray" and self.ray is None:
            raise ValueError("reach: ray needs a `ray:` section (address and node_ip, resource or labels)")
        return self

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.address).is_loopback
        except ValueError:
            return self.address == "localhost"


class Etcd(_Model):
    host: str
    port: int | None = None
    peer_port: int | None = None
    ready_timeout_s: float = 20.0


class MooncakeMaster(_Model):
    impl: Literal["real", "mock"] = "real"
    host: str
    rpc_port: int | None = None
    metrics_port: int | None = None
    # further mooncake_master flags, rendered --name=value (the mock accepts the same)
    flags: dict[str, str | int | float | bool] = Field(default_factory=dict)
    ready_timeout_s: float = 20.0


class MooncakeConfig(_Model):
    """What goes into each node's mooncake.json (MOONCAKE_CONFIG_PATH)."""

    protocol: Literal["tcp", "rdma"] = "tcp"
    device_name: str = ""
    # P2PHANDSHAKE needs no metadata service; etcd needs the etcd section; http the master's
    # HTTP metadata server (--enable_http_metadata_server)
    metadata: Literal["p2p", "etcd", "http"] = "p2p"
    global_segment_size: str = "256MB"
    local_buffer_size: str = "64MB"
    http_metadata_port: int | None = None

    @field_validator("global_segment_size", "local_buffer_size")
    @classmethod
    def _mooncake_size(cls, value: str) -> str:
        parse_size(value)  # Mooncake would read a size it cannot parse as 0: say so here instead
        return value


class Node(_Model):
    name: str
    host: str
    role: Role
    impl: Literal["real", "fake"] = "real"
    port: int | None = None
    model: str
    served_model_name: str | None = None
    gpus: list[int] = Field(default_factory=list)  # empty: CPU
    # VLLM_CPU_OMP_THREADS_BIND for CPU nodes ("0", "1", "0-3"); several instances on one host
    # otherwise all bind core 0
    cpu_threads: str | None = None
    connector: str | None = None  # a name in kvtest/cluster/connectors/
    kv_role: KVRole | None = None  # default follows role: prefill->kv_producer, decode->kv_consumer
    kv_connector_extra_config: dict[str, Any] = Field(default_factory=dict)
    # vLLM's KVTransferConfig.kv_load_failure_policy: "fail" (vLLM's default) answers a request whose
    # KV load failed with an error, "recompute" computes the failed blocks locally instead
    kv_load_failure_policy: Literal["fail", "recompute"] | None = None
    bootstrap_port: int | None = None  # MooncakeConnector: VLLM_MOONCAKE_BOOTSTRAP_PORT
    lookup_rpc_port: int | None = None  # MooncakeStoreConnector: must differ per instance on a host
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    ready_timeout_s: float | None = None

    @field_validator("connector")
    @classmethod
    def _registered_connector(cls, name: str | None) -> str | None:
        _check_registered("connector", name, CONNECTORS)
        return name

    @property
    def effective_kv_role(self) -> str:
        return self.kv_role or ROLE_TO_KV_ROLE[self.role]


class Proxy(_Model):
    host: str
    port: int | None = None
    strategy: str = "round_robin"  # a name in kvtest/proxy/strategies/
    flow: str = "store"  # a name in kvtest/proxy/flows/
    args: list[str] = Field(default_factory=list)
    ready_timeout_s: float = 20.0

    @field_validator("strategy")
    @classmethod
    def _registered_strategy(cls, name: str) -> str:
        _check_registered("strategy", name, STRATEGIES)
        return name

    @field_validator("flow")
    @classmethod
    def _registered_flow(cls, name: str) -> str:
        _check_registered("flow", name, FLOWS)
        return name


class Tolerances(_Model):
    """How far a real cluster may stray from the computed expectations."""

    hit_tokens_abs: int = 0  # prefix-cache hit counters, in tokens
    hit_rate_abs: float = 0.0
    external_hit_tokens_abs: int = 0
    latency_factor: float = 0.0  # 0: latencies are not compared


class AttachedNode(_Model):
    """A vLLM node someone else runs: kvtest reads it, never starts or stops it."""

    name: str
    url: str  # base URL: http://host:port (a Kubernetes Service, a port-forward, a load balancer)
    role: Role
    model: str | None = None  # default: the first id its /v1/models lists
    machine: str | None = None  # what the report shows as its machine (default: the URL's host)
    connector: str | None = None  # for the report and experiment 5 (MooncakeStoreConnector, ...)
    metrics_url: str | None = None  # default: URL/metrics
    block_size: int | None = None  # default: vllm:cache_config_info's block_size label


class Attach(_Model):
    """A deployment that is already running (Kubernetes, Ray, by hand). `proxy_url` absent: kvtest
    starts its own proxy, on this machine, in front of the given nodes (the `proxy` section's strategy
    and flow)."""

    proxy_url: str | None = None
    nodes: list[AttachedNode]
    mooncake_master_url: str | None = None  # the master's metrics/admin HTTP (/metrics, /get_all_keys)
    etcd_url: str | None = None  # http://host:2379
    # how long each URL may take to answer before the start fails, naming the node
    connect_timeout_s: float = 5.0


# what a cluster file may declare it needs; a run that lacks one skips (or fails under KVTEST_REQUIRE)
Requirement = Literal["gpu", "rdma", "ray", "docker", "ssh", "netns", "real"]


class ClusterSpec(_Model):
    name: str
    description: str = ""
    hosts: list[Host] = Field(default_factory=list)
    # parts already running elsewhere: nothing is started there, nothing stopped (kvtest/cluster/attach.py)
    attach: Attach | None = None
    requires: list[Requirement] = Field(default_factory=list)
    etcd: Etcd | None = None
    mooncake_master: MooncakeMaster | None = None
    mooncake: MooncakeConfig = Field(default_factory=MooncakeConfig)
    # merged under every node's own keys (the seed's 4P+4D differ only in name, port and GPU)
    node_defaults: dict[str, Any] = Field(default_factory=dict)
    nodes: list[Node] = Field(default_factory=list)
    proxy: Proxy | None = None
    tolerances: Tolerances = Field(default_factory=Tolerances)
    # PYTHONHASHSEED for every vLLM node: vLLM's NONE_HASH (the first block's parent) comes from it,
    # so without one value for all, instances hash the same prefix differently and never share KV
    hash_seed: str | None = "0"
    # "auto": nodes sharing a GPU on one host start one after another (they race in memory
    # profiling otherwise), the rest together; "sequential": every node waits for the one before
    start_order: Literal["auto", "sequential", "parallel"] = "auto"
    real_ready_timeout_s: float = 240.0
    fake_ready_timeout_s: float = 30.0

    @model_validator(mode="before")
    @classmethod
    def _apply_node_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("node_defaults") and isinstance(data.get("nodes"), list):
            defaults = data["node_defaults"]
            data = dict(data)
            data["nodes"] = [
                {**defaults, **node} if isinstance(node, dict) else node for node in data["nodes"]
            ]
        return data

    @model_validator(mode="after")
    def _check_references(self) -> ClusterSpec:
        if self.attach is not None:
            return self._check_attached()
        if not self.hosts:
            raise ValueError("hosts: at least one host (or an `attach` section for a running deployment)")
        if not self.nodes:
            raise ValueError("nodes: at least one node (or an `attach` section for a running deployment)")
        host_names = [h.name for h in self.hosts]
        _unique("hosts", host_names)
        _unique("nodes", [n.name for n in self.nodes])
        known = set(host_names)

        def need_host(where: str, name: str) -> None:
            if name not in known:
                raise ValueError(f"{where}: unknown host {name!r} (hosts: {', '.join(host_names)})")

        if self.etcd:
            need_host("etcd.host", self.etcd.host)
        if self.mooncake_master:
            need_host("mooncake_master.host", self.mooncake_master.host)
        if self.proxy:
            need_host("proxy.host", self.proxy.host)
        for i, node in enumerate(self.nodes):
            need_host(f"nodes[{i}] ({node.name}).host", node.host)
        if self.mooncake.metadata == "etcd" and self.etcd is None:
            raise ValueError("mooncake.metadata: 'etcd' needs an etcd section")
        store_users = sorted(
            {n.connector for n in self.nodes if n.connector and CONNECTORS[n.connector].uses_store}
        )
        if store_users and self.mooncake_master is None:
            raise ValueError(f"nodes use {', '.join(store_users)} but there is no mooncake_master section")
        if self.proxy and not any(n.role in ("prefill", "both") for n in self.nodes):
            raise ValueError("proxy: no node has role prefill or both")
        if self.proxy and not any(n.role in ("decode", "both") for n in self.nodes):
            raise ValueError("proxy: no node has role decode or both")
        self._check_remote_ports()
        return self

    def _check_attached(self) -> ClusterSpec:
        assert self.attach is not None
        launched = [
            w
            for w, v in (
                ("hosts", self.hosts),
                ("nodes", self.nodes),
                ("etcd", self.etcd),
                ("mooncake_master", self.mooncake_master),
            )
            if v
        ]
        if launched:
            raise ValueError(
                f"attach: an attached cluster launches nothing, so it has no {', '.join(launched)} "
                "(give their URLs under attach)"
            )
        nodes = self.attach.nodes
        _unique("attach.nodes", [n.name for n in nodes])
        if not nodes:
            raise ValueError("attach.nodes: at least one node")
        for role in ("prefill", "decode"):
            if not any(n.role in (role, "both") for n in nodes):
                raise ValueError(f"attach.nodes: no node has role {role} or both")
        return self

    @property
    def attached(self) -> bool:
        return self.attach is not None

    def _check_remote_ports(self) -> None:
        remote = {h.name for h in self.hosts if h.reach == "ssh" and not h.is_loopback}
        missing: list[str] = []
        for i, node in enumerate(self.nodes):
            if node.host in remote and node.port is None:
                missing.append(f"nodes[{i}] ({node.name}).port")
        if self.etcd and self.etcd.host in remote and self.etcd.port is None:
            missing.append("etcd.port")
        if (
            self.mooncake_master
            and self.mooncake_master.host in remote
            and self.mooncake_master.rpc_port is None
        ):
            missing.append("mooncake_master.rpc_port")
        if self.proxy and self.proxy.host in remote and self.proxy.port is None:
            missing.append("proxy.port")
        if missing:
            raise ValueError(f"remote (ssh) hosts need fixed ports: set {', '.join(missing)}")

    # --- lookups -------------------------------------------------------------------------------
    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in cluster {self.name!r}")

    @property
    def impls(self) -> set[str]:
        """'real' when anything real is launched, 'fake' when anything simulated is."""
        if self.attach is not None:
            return set()  # nothing is launched: no local programs to check for
        out: set[str] = {n.impl for n in self.nodes}
        if self.mooncake_master:
            out.add("real" if self.mooncake_master.impl == "real" else "fake")
        return out

    @property
    def uses_gpu(self) -> bool:
        return any(n.gpus for n in self.nodes)

    @property
    def uses_ssh(self) -> bool:
        return any(h.reach == "ssh" for h in self.hosts)

    @property
    def uses_netns(self) -> bool:
        return any(h.netns for h in self.hosts)


def _check_registered(what: str, name: str | None, registry: Mapping[str, object]) -> None:
    if name is not None and name not in registry:
        raise ValueError(f"unknown {what} {name!r} (registered: {', '.join(registry)})")


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what}: duplicate name {name!r}")
        seen.add(name)


def _field_path(loc: tuple[int | str, ...], data: Any) -> str:
    """('nodes', 2, 'role') -> 'nodes[2] (p2).role': the index and the item's name, if it has one."""
    out = ""
    cursor = data
    for part in loc:
        if isinstance(part, int):
            name = (
                cursor[part].get("name")
                if isinstance(cursor, list) and isinstance(cursor[part], dict)
                else None
            )
            out += f"[{part}]" + (f" ({name})" if name else "")
        else:
            out += ("." if out else "") + str(part)
        try:
            cursor = cursor[part]
        except (KeyError, IndexError, TypeError):
            cursor = None
    return out or "(top level)"


def parse_cluster(data: Any, source: str = "<cluster>") -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {_field_path(loc, data)}: {msg}")
        raise ClusterFileError("\n".join(lines)) from None


def load_cluster(path: str | Path) -> ClusterSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ClusterFileError(f"{path}: no such cluster file") from None
    except yaml.YAMLError as exc:
        raise ClusterFileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ClusterFileError(f"{path}: a cluster file is a mapping (name, hosts, nodes, ...)")
    return _find_local_models(parse_cluster(data, str(path)), path)


def _find_local_models(spec: ClusterSpec, path: Path) -> ClusterSpec:
    """A node on this machine (a local or inprocess host without a workdir) whose relative `model`
    directory is not there from the current directory gets the one found from the cluster file's
    directory upwards.

    The shipped cluster files name fixtures/models/tiny-llama, which exists from a checkout's root;
    installed from a wheel, the files sit in kvtest/fixtures/, and that lookup finds the model beside
    their clusters/ directory, so `--cluster sim` works from any directory."""
    nodes = []
    for node in spec.nodes:
        host = spec.host(node.host)
        model = Path(node.model)
        on_this_machine = host.reach in ("local", "inprocess") and host.workdir is None
        if on_this_machine and not model.is_absolute() and not model.exists():
            found = next((d / model for d in path.resolve().parents if (d / model).is_dir()), None)
            if found is not None:
                node = node.model_copy(update={"model": str(found)})
        nodes.append(node)
    return spec.model_copy(update={"nodes": nodes})
