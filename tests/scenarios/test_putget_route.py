"""Experiment 5's choice of nodes: producers on two machines when there are two, a decode node elsewhere,
and plain-words refusals when the cluster cannot run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.render import NodeEndpoint
from kvtest.experiments.putget import NotAvailable, pick_route
from kvtest.experiments.session import ExperimentSession


def _node(
    name: str, role: str, machine: str, connector: str | None = "MooncakeStoreConnector"
) -> NodeEndpoint:
    port = 8000 + len(name) * 10 + int(name[1:])
    return NodeEndpoint(
        name, f"http://127.0.0.1:{port}", role, machine, "fake", connector, "kv_both", "m", "", 16
    )


def _session(nodes: list[NodeEndpoint], master: str | None = "http://127.0.0.1:1") -> ExperimentSession:
    return ExperimentSession(Cluster("c", Path("/nonexistent"), "http://p", nodes, master_admin_url=master))


def test_producers_on_two_machines_and_decode_on_another_than_the_second() -> None:
    nodes = [
        _node("p0", "prefill", "a"),
        _node("p1", "prefill", "a"),
        _node("p2", "prefill", "b"),
        _node("d0", "decode", "a"),
        _node("d1", "decode", "b"),
    ]
    r = pick_route(_session(nodes))
    assert (r.producer_a.name, r.producer_b.name) == ("p0", "p2")
    assert r.decode_a.name == "d0" and r.decode_b.name != "d0"


def test_seed_topology_uses_two_producers_of_machine_a_and_a_decode_of_machine_b() -> None:
    nodes = [_node(f"p{i}", "prefill", "machine-a") for i in range(4)]
    nodes += [_node(f"d{i}", "decode", "machine-b") for i in range(4)]
    r = pick_route(_session(nodes))
    assert (r.producer_a.name, r.producer_b.name) == ("p0", "p1")
    assert r.decode_b.machine == "machine-b" and r.decode_b.name != r.decode_a.name


@pytest.mark.parametrize(
    ("nodes", "master", "why"),
    [
        (
            [_node("p0", "prefill", "a"), _node("d0", "decode", "a")],
            "http://m",
            "needs 2 prefill and 2 decode",
        ),
        ([_node("p0", "prefill", "a", None), _node("d0", "decode", "a", None)], "http://m", "MooncakeStore"),
        ([_node("p0", "prefill", "a"), _node("d0", "decode", "a")], None, "no mooncake_master"),
    ],
)
def test_refusals_say_why(nodes: list[NodeEndpoint], master: str | None, why: str) -> None:
    with pytest.raises(NotAvailable, match=why):
        pick_route(_session(nodes, master))


def test_one_host_with_four_gpus_counts_each_gpu_as_a_machine() -> None:
    """gpu-4p4d (p_i and d_i on GPU i of one host): producers on two GPUs, the second decode on a
    third GPU, as kvtest.cluster.render.machine_label names them."""
    nodes = [_node(f"p{i}", "prefill", f"gpu0/GPU {i}") for i in range(4)]
    nodes += [_node(f"d{i}", "decode", f"gpu0/GPU {i}") for i in range(4)]
    r = pick_route(_session(nodes))
    assert (r.producer_a.name, r.producer_b.name, r.decode_a.name) == ("p0", "p1", "d0")
    assert r.decode_b.machine not in (r.producer_b.machine, r.producer_a.machine)
