"""A cluster file turned into what to run: each process's command line, environment, files, probe.

    plan = render(load_cluster("fixtures/clusters/local-cpu.yaml"), run_dir=Path("runs/x"))
    for launch in plan.launches: print(launch.name, shlex.join(launch.argv))

A fake node gets the SAME command line as a real one with only the program swapped
(`vllm serve MODEL ...` vs `python -m simulators.vllm serve MODEL ...`), likewise the mock master
(`mooncake_master --rpc_port=...` vs `python -m simulators.mooncake --rpc_port=...`), so a cluster
file switches worlds by changing `impl` and nothing else.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kvtest.cluster.connectors import NodeSetup, connector
from kvtest.cluster.kv_events_wiring import kv_events_wiring
from kvtest.cluster.launchers import launcher_class
from kvtest.cluster.schema import ClusterSpec, Host, Node
from kvtest.ports import free_port
from kvtest.readiness import HttpProbe, Probe
from kvtest.services.etcd import etcd_argv
from kvtest.services.mooncake_master import MooncakeMaster

Kind = Literal["etcd", "master", "vllm", "proxy"]


@dataclass
class Launch:
    name: str
    kind: Kind
    host: Host
    argv: list[str]
    env: dict[str, str]
    probes: list[Probe]  # all must pass (kvtest.readiness)
    ready_timeout_s: float
    files: dict[str, str] = field(default_factory=dict)  # path on the host -> content
    wave: int = 0  # launches of one kind start wave by wave; each wave waits for the last to be ready
    ports: list[int] = field(default_factory=list)  # what must be free again after teardown
    url: str | None = None


@dataclass
class NodeEndpoint:
    name: str
    url: str
    role: str
    # what the report calls the node's machine: its host, plus its GPUs where the host has nodes on
    # several GPU sets (kvtest.cluster.render.machine_label)
    machine: str
    impl: str
    connector: str | None
    kv_role: str
    model: str
    metrics_url: str
    block_size: int | None = None  # from --block-size in the node's args
    host: str = ""  # the cluster file's host name (several "machines" may share one host)


@dataclass
class Plan:
    spec: ClusterSpec
    run_dir: Path  # on this machine
    launches: list[Launch]
    nodes: list[NodeEndpoint]
    proxy_url: str | None
    etcd_url: str | None
    master_address: str | None  # host:rpc_port
    master_admin_url: str | None  # http://host:metrics_port
    mooncake_config: dict[str, Any] | None  # what a store client of this cluster is set up with


def _tool(host: Host, which: str) -> list[str]:
    return shlex.split(getattr(host, which))


def _python(host: Host) -> list[str]:
    if host.python:
        return shlex.split(host.python)
    return [sys.executable] if launcher_class(host.reach).same_paths else ["python3"]


def _port(given: int | None) -> int:
    return given if given is not None else free_port()


def remote_run_dir(host: Host, run_dir: Path) -> str:
    """Where a host keeps this run's files: the local run dir, or the same name under /tmp/kvtest-runs.

    Not under the host's workdir: that is the checkout the host runs kvtest from, and etcd's data and
    the per-node mooncake.json files have no business in a source tree."""
    if launcher_class(host.reach).same_paths:
        return str(run_dir.resolve())
    return f"/tmp/kvtest-runs/{run_dir.name}"


def _metadata_server(
    spec: ClusterSpec, etcd_url: str | None, master_host: Host | None, http_port: int | None
) -> str:
    if spec.mooncake.metadata == "etcd":
        assert etcd_url
        return "etcd://" + etcd_url.removeprefix("http://")
    if spec.mooncake.metadata == "http":
        assert master_host and http_port
        return f"http://{master_host.address}:{http_port}/metadata"
    return "P2PHANDSHAKE"


def mooncake_json(
    spec: ClusterSpec, host: Host, metadata_server: str, master_address: str | None
) -> dict[str, Any]:
    """A node's mooncake.json, the keys vLLM's MooncakeStoreConfig.from_file reads
    (vllm/distributed/mooncake_store.py) plus local_hostname, which the seed's V0 connector used."""
    cfg: dict[str, Any] = {
        "local_hostname": host.address,
        "metadata_server": metadata_server,
        "protocol": spec.mooncake.protocol,
        "device_name": spec.mooncake.device_name,
        "global_segment_size": spec.mooncake.global_segment_size,
        "local_buffer_size": spec.mooncake.local_buffer_size,
    }
    if master_address:
        cfg["master_server_address"] = master_address
    return cfg


def _block_size(args: list[str]) -> int | None:
    for i, arg in enumerate(args):
        if arg == "--block-size" and i + 1 < len(args):
            return int(args[i + 1])
        if arg.startswith("--block-size="):
            return int(arg.split("=", 1)[1])
    return None


def _box(spec: ClusterSpec, host_name: str) -> str:
    """The physical machine a host runs on: every local host (network namespaces included) is this
    one, so their GPU 0 is one GPU; an ssh host is its address."""
    host = spec.host(host_name)
    return "local" if host.reach == "local" else host.address


def machine_label(spec: ClusterSpec, node: Node) -> str:
    """The node's machine as a report shows it: the host name where the host is one machine (all its
    nodes on one GPU set, or on CPUs), else the host and the node's GPUs ("gpu0/GPU 1"). Four
    prefill + four decode nodes on one 4-GPU host are four machines, not one."""
    gpu_sets = {tuple(n.gpus) for n in spec.nodes if n.host == node.host}
    if not node.gpus or len(gpu_sets) <= 1:
        return node.host
    return f"{node.host}/GPU {','.join(str(g) for g in node.gpus)}"


def _waves(spec: ClusterSpec) -> list[int]:
    """Start waves for nodes: 'auto' puts a node after every earlier node sharing a GPU with it (same
    physical machine: network-namespace hosts of this machine share its GPUs)."""
    waves: list[int] = []
    for i, node in enumerate(spec.nodes):
        if spec.start_order == "sequential":
            waves.append(i)
        elif spec.start_order == "parallel":
            waves.append(0)
        else:
            wave = 0
            for j in range(i):
                other = spec.nodes[j]
                # a fake node profiles no GPU memory, so only real ones race across hosts
                same_box = other.host == node.host or (
                    other.impl == node.impl == "real" and _box(spec, other.host) == _box(spec, node.host)
                )
                if same_box and set(other.gpus) & set(node.gpus):
                    wave = max(wave, waves[j] + 1)
            waves.append(wave)
    return waves


def render(spec: ClusterSpec, run_dir: Path, base_env: dict[str, str] | None = None) -> Plan:
    """Resolve ports (free ones where the file gives none) and render every process."""
    launches: list[Launch] = []
    etcd_url = None
    if spec.etcd:
        h = spec.host(spec.etcd.host)
        port, peer = _port(spec.etcd.port), _port(spec.etcd.peer_port)
        etcd_url = f"http://{h.address}:{port}"
        data_dir = f"{remote_run_dir(h, run_dir)}/etcd-data"
        launches.append(
            Launch(
                name="etcd",
                kind="etcd",
                host=h,
                argv=etcd_argv(_tool(h, "etcd"), data_dir, etcd_url, f"http://{h.address}:{peer}"),
                env={},
                probes=[HttpProbe(f"{etcd_url}/health")],
                ready_timeout_s=spec.etcd.ready_timeout_s,
                ports=[port, peer],
                url=etcd_url,
            )
        )

    master_address = master_admin_url = None
    master_host: Host | None = None
    http_port: int | None = None
    if spec.mooncake_master:
        m = spec.mooncake_master
        master_host = h = spec.host(m.host)
        rpc, metrics = _port(m.rpc_port), _port(m.metrics_port)
        master_address = f"{h.address}:{rpc}"
        master_admin_url = f"http://{h.address}:{metrics}"
        # bind both servers to the host's address (a namespace's own address under netns)
        flags: dict[str, Any] = {
            "rpc_port": rpc,
            "metrics_port": metrics,
            "rpc_address": h.address,
            "metrics_host": h.address,
        }
        ports = [rpc, metrics]
        if spec.mooncake.metadata == "http":
            http_port = _port(spec.mooncake.http_metadata_port)
            flags |= {"enable_http_metadata_server": True, "http_metadata_server_port": http_port}
            ports.append(http_port)
        flags |= m.flags
        program = (
            _tool(h, "mooncake_master") if m.impl == "real" else [*_python(h), "-m", "simulators.mooncake"]
        )
        # the flag syntax is kvtest.services' MooncakeMaster's, so a cluster's master and the store
        # tests' master are the same command line
        rendered = MooncakeMaster(m.impl, flags, host=h.address, log_dir=run_dir).flag_args()
        launches.append(
            Launch(
                name="mooncake_master",
                kind="master",
                host=h,
                argv=[*program, *rendered],
                env={"MC_TCP_BIND_ADDRESS": h.address} if m.impl == "real" else {},
                probes=[HttpProbe(f"{master_admin_url}/health")],
                ready_timeout_s=m.ready_timeout_s,
                ports=ports,
                url=master_admin_url,
            )
        )

    metadata_server = _metadata_server(spec, etcd_url, master_host, http_port)
    mc_config = (
        mooncake_json(spec, spec.host(spec.mooncake_master.host), metadata_server, master_address)
        if spec.mooncake_master
        else None
    )
    nodes: list[NodeEndpoint] = []
    lookup_ports: dict[str, int] = {}
    kv_events = kv_events_wiring(spec)  # proxy strategy kv_aware: prefill nodes publish, the proxy listens
    for node, wave in zip(spec.nodes, _waves(spec), strict=True):
        launch = _render_node(spec, node, run_dir, metadata_server, master_address, lookup_ports, base_env)
        launch.wave = wave
        if kv_events is not None and node.role in ("prefill", "both"):
            extra, ports = kv_events.add_node(node, launch.host.address, free_port)
            launch.argv += extra
            launch.ports += ports
        launches.append(launch)
        assert launch.url
        nodes.append(
            NodeEndpoint(
                name=node.name,
                url=launch.url,
                role=node.role,
                machine=machine_label(spec, node),
                impl=node.impl,
                connector=node.connector,
                kv_role=node.effective_kv_role,
                model=node.served_model_name or node.model,
                metrics_url=f"{launch.url}/metrics",
                block_size=_block_size(node.args),
                host=node.host,
            )
        )

    proxy_url = None
    if spec.proxy:
        p = spec.proxy
        h = spec.host(p.host)
        port = _port(p.port)
        proxy_url = f"http://{h.address}:{port}"
        prefill = [n.url for n in nodes if n.role in ("prefill", "both")]
        # MooncakeConnector flow: the proxy asks each prefill node's bootstrap server (its
        # VLLM_MOONCAKE_BOOTSTRAP_PORT) for the engine id, one port per --prefill URL
        bootstrap = [
            la.env["VLLM_MOONCAKE_BOOTSTRAP_PORT"]
            for la, n in zip((la for la in launches if la.kind == "vllm"), nodes, strict=True)
            if n.role in ("prefill", "both") and "VLLM_MOONCAKE_BOOTSTRAP_PORT" in la.env
        ]
        bootstrap_args = ["--bootstrap-port", *bootstrap] if len(bootstrap) == len(prefill) else []
        decode = [n.url for n in nodes if n.role in ("decode", "both")]
        launches.append(
            Launch(
                name="proxy",
                kind="proxy",
                host=h,
                argv=[
                    *_python(h),
                    "-m",
                    "kvtest",
                    "proxy",
                    "--host",
                    h.address,
                    "--port",
                    str(port),
                    "--prefill",
                    *prefill,
                    "--decode",
                    *decode,
                    "--strategy",
                    p.strategy,
                    "--flow",
                    p.flow,
                    *bootstrap_args,
                    *(kv_events.proxy_args() if kv_events is not None else []),
                    *p.args,
                ],
                env={},
                probes=[HttpProbe(f"{proxy_url}/health")],
                ready_timeout_s=p.ready_timeout_s,
                ports=[port],
                url=proxy_url,
            )
        )
    return Plan(
        spec=spec,
        run_dir=run_dir,
        launches=launches,
        nodes=nodes,
        proxy_url=proxy_url,
        etcd_url=etcd_url,
        master_address=master_address,
        master_admin_url=master_admin_url,
        mooncake_config=mc_config,
    )


def _render_node(
    spec: ClusterSpec,
    node: Node,
    run_dir: Path,
    metadata_server: str,
    master_address: str | None,
    lookup_ports: dict[str, int],
    base_env: dict[str, str] | None,
) -> Launch:
    h = spec.host(node.host)
    port = _port(node.port)
    url = f"http://{h.address}:{port}"
    program = (
        [*_tool(h, "vllm"), "serve"]
        if node.impl == "real"
        else [*_python(h), "-m", "simulators.vllm", "serve"]
    )
    argv = [*program, node.model, "--host", h.address, "--port", str(port)]
    if node.served_model_name:
        argv += ["--served-model-name", node.served_model_name]
    env: dict[str, str] = dict(base_env or {})
    # offline, no telemetry: CI machines and GPU runners have no business calling out
    env |= {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "VLLM_HOST_IP": h.address}
    if spec.hash_seed is not None:
        env["PYTHONHASHSEED"] = spec.hash_seed
    if node.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in node.gpus)
    elif node.cpu_threads is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = node.cpu_threads
    ports = [port]
    files: dict[str, str] = {}
    kv = connector(node.connector)
    if kv is not None:
        setup = NodeSetup(spec, node, dict(node.kv_connector_extra_config), env, ports, lookup_ports, _port)
        kv.configure(setup)
        extra = setup.extra
        kv_config: dict[str, Any] = {"kv_connector": kv.name, "kv_role": node.effective_kv_role}
        if node.kv_load_failure_policy:
            kv_config["kv_load_failure_policy"] = node.kv_load_failure_policy
        if extra:
            kv_config["kv_connector_extra_config"] = extra
        argv += ["--kv-transfer-config", json.dumps(kv_config, separators=(",", ":"))]
        if kv.reads_mooncake_json:
            path = f"{remote_run_dir(h, run_dir)}/{node.name}/mooncake.json"
            files[path] = json.dumps(mooncake_json(spec, h, metadata_server, master_address), indent=2) + "\n"
            env["MOONCAKE_CONFIG_PATH"] = path
            env["MC_TCP_BIND_ADDRESS"] = h.address
    argv += node.args
    env |= node.env
    default_timeout = spec.real_ready_timeout_s if node.impl == "real" else spec.fake_ready_timeout_s
    return Launch(
        name=node.name,
        kind="vllm",
        host=h,
        argv=argv,
        env=env,
        probes=[HttpProbe(f"{url}/health")],
        ready_timeout_s=node.ready_timeout_s or default_timeout,
        files=files,
        ports=ports,
        url=url,
    )


def describe(plan: Plan, quote: Callable[[list[str]], str] = shlex.join) -> str:
    """The plan as shell lines (what `kvtest cluster up --dry-run` prints)."""
    lines = []
    for launch in plan.launches:
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(launch.env.items()))
        lines.append(f"# {launch.name} on {launch.host.name} (wave {launch.wave})")
        for path, content in launch.files.items():
            lines.append(f"# {path}:\n# " + content.rstrip().replace("\n", "\n# "))
        lines.append((env + " " if env else "") + quote(launch.argv))
    return "\n".join(lines)
