"""Cluster files: every fixture file loads, and a bad file names the field that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvtest.cluster.schema import ClusterFileError, load_cluster, parse_cluster

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = sorted((ROOT / "fixtures" / "clusters").glob("*.yaml"))


def minimal(**over: object) -> dict:
    data: dict = {
        "name": "t",
        "hosts": [{"name": "h"}],
        "nodes": [
            {"name": "p0", "host": "h", "role": "prefill", "model": "m"},
            {"name": "d0", "host": "h", "role": "decode", "model": "m"},
        ],
    }
    data.update(over)
    return data


def test_fixture_cluster_files_all_load() -> None:
    names = {p.stem for p in CLUSTERS}
    assert {"sim", "seed", "local-cpu", "netns-cpu", "gpu-1node", "gpu-2node"} <= names
    for path in CLUSTERS:
        spec = load_cluster(path)
        assert spec.nodes or (spec.attach and spec.attach.nodes), path


def test_seed_file_is_the_seeds_topology() -> None:
    spec = load_cluster(ROOT / "fixtures/clusters/seed.yaml")
    by_host: dict[str, list[str]] = {}
    for n in spec.nodes:
        by_host.setdefault(n.host, []).append(n.role)
    assert by_host == {"machine-a": ["prefill"] * 4, "machine-b": ["decode"] * 4}
    assert spec.proxy and spec.proxy.strategy == "designate"
    assert all(n.connector == "MooncakeStoreConnector" for n in spec.nodes)


def test_bad_role_names_the_node_and_field() -> None:
    data = minimal()
    data["nodes"][1]["role"] = "decoder"
    with pytest.raises(ClusterFileError) as exc:
        parse_cluster(data, "x.yaml")
    assert "x.yaml: nodes[1] (d0).role:" in str(exc.value)
    assert "'prefill', 'decode' or 'both'" in str(exc.value)


def test_typo_in_a_key_is_an_error_not_ignored() -> None:
    data = minimal()
    data["nodes"][0]["conector"] = "MooncakeStoreConnector"
    with pytest.raises(
        ClusterFileError, match=r"nodes\[0\] \(p0\)\.conector: Extra inputs are not permitted"
    ):
        parse_cluster(data)


def test_unknown_host_reference() -> None:
    data = minimal()
    data["nodes"][0]["host"] = "nowhere"
    with pytest.raises(ClusterFileError, match=r"nodes\[0\] \(p0\)\.host: unknown host 'nowhere'"):
        parse_cluster(data)


def test_store_connector_needs_a_master_and_etcd_metadata_needs_etcd() -> None:
    data = minimal(node_defaults={"connector": "MooncakeStoreConnector"})
    with pytest.raises(ClusterFileError, match="no mooncake_master section"):
        parse_cluster(data)
    data = minimal(mooncake={"metadata": "etcd"})
    with pytest.raises(ClusterFileError, match="needs an etcd section"):
        parse_cluster(data)


def test_remote_hosts_need_fixed_ports() -> None:
    data = minimal(hosts=[{"name": "h", "address": "10.0.0.9", "reach": "ssh"}])
    with pytest.raises(ClusterFileError, match=r"set nodes\[0\] \(p0\)\.port, nodes\[1\] \(d0\)\.port"):
        parse_cluster(data)


def test_node_defaults_are_merged_under_each_node() -> None:
    spec = parse_cluster(
        minimal(node_defaults={"impl": "fake", "args": ["--block-size", "16"], "model": "x"})
    )
    assert [n.impl for n in spec.nodes] == ["fake", "fake"]
    assert spec.node("p0").model == "m"  # the node's own key wins
    assert spec.node("d0").args == ["--block-size", "16"]
    assert spec.node("d0").effective_kv_role == "kv_consumer"


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ClusterFileError, match="no such cluster file"):
        load_cluster(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ClusterFileError, match="not valid YAML"):
        load_cluster(bad)
