"""What a cluster file renders to: command lines (same for fake and real), env, mooncake.json, order."""

from __future__ import annotations

import json
from pathlib import Path

from kvtest.cluster.render import render
from kvtest.cluster.schema import load_cluster, parse_cluster

ROOT = Path(__file__).resolve().parents[2]


def spec_with(impl: str, master: str) -> dict:
    return {
        "name": "t",
        "hosts": [{"name": "h", "vllm": "/opt/v/bin/vllm", "python": "py", "mooncake_master": "mm"}],
        "mooncake_master": {"impl": master, "host": "h", "rpc_port": 50051, "metrics_port": 9003},
        "node_defaults": {
            "host": "h",
            "impl": impl,
            "model": "fixtures/models/tiny-llama",
            "connector": "MooncakeStoreConnector",
            "args": ["--block-size", "32"],
        },
        "nodes": [
            {"name": "p0", "role": "prefill", "port": 8100},
            {"name": "d0", "role": "decode", "port": 8200},
        ],
        "proxy": {"host": "h", "port": 8000, "strategy": "designate", "flow": "store"},
    }


def launches(data: dict, tmp_path: Path) -> dict:
    plan = render(parse_cluster(data), tmp_path)
    return {la.name: la for la in plan.launches}


def test_fake_and_real_nodes_differ_only_in_the_program(tmp_path: Path) -> None:
    real = launches(spec_with("real", "real"), tmp_path)
    fake = launches(spec_with("fake", "mock"), tmp_path)
    assert real["p0"].argv[:2] == ["/opt/v/bin/vllm", "serve"]
    assert fake["p0"].argv[:4] == ["py", "-m", "simulators.vllm", "serve"]
    assert real["p0"].argv[2:] == fake["p0"].argv[4:]
    assert real["p0"].env == fake["p0"].env
    assert real["mooncake_master"].argv[0] == "mm"
    assert fake["mooncake_master"].argv[:3] == ["py", "-m", "simulators.mooncake"]
    assert real["mooncake_master"].argv[1:] == fake["mooncake_master"].argv[3:]
    assert "--rpc_port=50051" in real["mooncake_master"].argv


def test_node_command_line_and_kv_transfer_config(tmp_path: Path) -> None:
    la = launches(spec_with("real", "real"), tmp_path)
    argv = la["d0"].argv
    assert argv[2:7] == ["fixtures/models/tiny-llama", "--host", "127.0.0.1", "--port", "8200"]
    kv = json.loads(argv[argv.index("--kv-transfer-config") + 1])
    assert kv["kv_connector"] == "MooncakeStoreConnector"
    assert kv["kv_role"] == "kv_consumer"
    # distinct lookup_rpc_port per instance on one host (vLLM names an IPC socket after it)
    kv_p = json.loads(la["p0"].argv[la["p0"].argv.index("--kv-transfer-config") + 1])
    assert (
        kv_p["kv_connector_extra_config"]["lookup_rpc_port"]
        != kv["kv_connector_extra_config"]["lookup_rpc_port"]
    )
    assert argv[-2:] == ["--block-size", "32"]


def test_kv_load_failure_policy_goes_into_the_kv_transfer_config(tmp_path: Path) -> None:
    data = spec_with("real", "real")
    data["node_defaults"]["kv_load_failure_policy"] = "recompute"
    la = launches(data, tmp_path)
    kv = json.loads(la["d0"].argv[la["d0"].argv.index("--kv-transfer-config") + 1])
    assert kv["kv_load_failure_policy"] == "recompute"
    plain = launches(spec_with("real", "real"), tmp_path)["d0"].argv
    assert "kv_load_failure_policy" not in json.loads(plain[plain.index("--kv-transfer-config") + 1])


def test_every_vllm_node_gets_the_same_hash_seed(tmp_path: Path) -> None:
    plan = render(load_cluster(ROOT / "fixtures/clusters/seed.yaml"), tmp_path)
    seeds = {la.env.get("PYTHONHASHSEED") for la in plan.launches if la.kind == "vllm"}
    assert seeds == {"0"}


def test_mooncake_json_per_node(tmp_path: Path) -> None:
    la = launches(spec_with("real", "real"), tmp_path)
    [(path, content)] = la["p0"].files.items()
    assert la["p0"].env["MOONCAKE_CONFIG_PATH"] == path
    assert path.endswith("/p0/mooncake.json")
    cfg = json.loads(content)
    assert cfg["master_server_address"] == "127.0.0.1:50051"
    assert cfg["metadata_server"] == "P2PHANDSHAKE"
    assert cfg["protocol"] == "tcp"
    assert cfg["global_segment_size"] == "256MB"


def test_etcd_metadata_server_in_mooncake_json(tmp_path: Path) -> None:
    plan = render(load_cluster(ROOT / "fixtures/clusters/local-cpu.yaml"), tmp_path)
    assert plan.etcd_url
    p0 = next(la for la in plan.launches if la.name == "p0")
    cfg = json.loads(next(iter(p0.files.values())))
    assert cfg["metadata_server"] == "etcd://" + plan.etcd_url.removeprefix("http://")
    assert [la.kind for la in plan.launches] == ["etcd", "master", "vllm", "vllm", "proxy"]


def test_proxy_command_line(tmp_path: Path) -> None:
    la = launches(spec_with("real", "real"), tmp_path)
    assert la["proxy"].argv == [
        "py",
        "-m",
        "kvtest",
        "proxy",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--prefill",
        "http://127.0.0.1:8100",
        "--decode",
        "http://127.0.0.1:8200",
        "--strategy",
        "designate",
        "--flow",
        "store",
    ]


def test_mooncake_connector_gets_bootstrap_ports_and_proxy_knows_them(tmp_path: Path) -> None:
    plan = render(load_cluster(ROOT / "fixtures/clusters/local-cpu-p2p.yaml"), tmp_path)
    p0 = next(la for la in plan.launches if la.name == "p0")
    proxy = next(la for la in plan.launches if la.name == "proxy")
    port = p0.env["VLLM_MOONCAKE_BOOTSTRAP_PORT"]
    assert proxy.argv[proxy.argv.index("--bootstrap-port") + 1] == port
    kv = json.loads(p0.argv[p0.argv.index("--kv-transfer-config") + 1])
    assert kv["kv_connector_extra_config"] == {"mooncake_protocol": "tcp"}


def test_gpus_and_start_waves(tmp_path: Path) -> None:
    # gpu-1node: p0 and d0 share GPU 0, so d0 starts after p0 is ready (they race in profiling)
    plan = render(load_cluster(ROOT / "fixtures/clusters/gpu-1node.yaml"), tmp_path)
    nodes = {la.name: la for la in plan.launches if la.kind == "vllm"}
    assert nodes["p0"].env["CUDA_VISIBLE_DEVICES"] == "0"
    assert (nodes["p0"].wave, nodes["d0"].wave) == (0, 1)
    # the seed's 8 instances have one GPU each per machine: all start together
    plan = render(load_cluster(ROOT / "fixtures/clusters/seed.yaml"), tmp_path)
    assert {la.wave for la in plan.launches if la.kind == "vllm"} == {0}
    data = spec_with("fake", "mock") | {"start_order": "sequential"}
    waves = [la.wave for la in render(parse_cluster(data), tmp_path).launches if la.kind == "vllm"]
    assert waves == [0, 1]


def test_free_ports_are_allocated_when_absent(tmp_path: Path) -> None:
    plan = render(load_cluster(ROOT / "fixtures/clusters/sim.yaml"), tmp_path)
    ports = [p for la in plan.launches for p in la.ports]
    assert len(ports) == len(set(ports)) and all(p > 1024 for p in ports)
    assert plan.proxy_url and plan.proxy_url.startswith("http://127.0.0.1:")


def test_real_nodes_sharing_a_gpu_across_namespace_hosts_start_one_after_another(tmp_path: Path) -> None:
    # gpu-8-on-4: p_i on namespace host machine-a and d_i on machine-b share physical GPU i; started
    # together two real vLLMs on one GPU race in memory profiling, whatever their network namespace
    plan = render(load_cluster(ROOT / "fixtures/clusters/gpu-8-on-4.yaml"), tmp_path)
    waves = {la.name: la.wave for la in plan.launches if la.kind == "vllm"}
    assert waves == {"p0": 0, "p1": 0, "p2": 0, "p3": 0, "d0": 1, "d1": 1, "d2": 1, "d3": 1}
    # gpu-8 gives every instance a GPU of its own: one wave
    plan = render(load_cluster(ROOT / "fixtures/clusters/gpu-8.yaml"), tmp_path)
    assert {la.wave for la in plan.launches if la.kind == "vllm"} == {0}


def test_a_nodes_machine_is_its_host_and_gpus_where_the_host_has_several(tmp_path: Path) -> None:
    machines = {
        n.name: n.machine
        for n in render(load_cluster(ROOT / "fixtures/clusters/gpu-4p4d.yaml"), tmp_path).nodes
    }
    assert (
        machines["p1"] == "gpu0/GPU 1" and machines["d1"] == "gpu0/GPU 1" and machines["p0"] == "gpu0/GPU 0"
    )
    # one GPU set per host (gpu-1node: p0 and d0 both on GPU 0), or CPU nodes: the host name alone
    one = render(load_cluster(ROOT / "fixtures/clusters/gpu-1node.yaml"), tmp_path).nodes
    assert {n.machine for n in one} == {"gpu0"}
    assert {n.host for n in one} == {"gpu0"}
    cpu = render(load_cluster(ROOT / "fixtures/clusters/local-cpu.yaml"), tmp_path).nodes
    assert all(n.machine == n.host for n in cpu)


def test_nixl_nodes_get_a_side_channel_port_each(tmp_path: Path) -> None:
    plan = render(load_cluster(ROOT / "fixtures/clusters/gpu-nixl.yaml"), tmp_path)
    nodes = [la for la in plan.launches if la.kind == "vllm"]
    ports = [la.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for la in nodes]
    assert len(set(ports)) == 2 and all(int(p) in la.ports for p, la in zip(ports, nodes, strict=True))
    assert {la.env["VLLM_NIXL_SIDE_CHANNEL_HOST"] for la in nodes} == {"127.0.0.1"}
    proxy = next(la for la in plan.launches if la.kind == "proxy")
    assert proxy.argv[proxy.argv.index("--flow") + 1] == "nixl"
