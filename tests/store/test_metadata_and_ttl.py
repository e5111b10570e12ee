"""Metadata servers (P2PHANDSHAKE, the master's HTTP metadata server, real etcd) and client TTL,
mock and real alike."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kvtest.gating import skip_unless
from kvtest.services import EtcdServer

from .harness import EVENT_CAP_S, StoreCluster, metrics, wait_for


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    skip_unless("real", shutil.which("etcd") is not None, "etcd not installed (apt-get install etcd-server)")
    with EtcdServer(log_dir=Path(tmp_path_factory.mktemp("etcd"))) as server:
        yield server


@pytest.mark.parametrize("kind", ["p2p", "http", "etcd"])
def test_bytes_move_between_clients_with_each_metadata_server(
    cluster: StoreCluster, kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "http":
        m = cluster.master(enable_http_metadata_server=True)
        meta = m.metadata_url
    else:
        m = cluster.master()
        meta = request.getfixturevalue("etcd").endpoint if kind == "etcd" else "P2PHANDSHAKE"
    a, b = cluster.client(m, metadata=meta), cluster.client(m, metadata=meta)
    value = bytes(range(256)) * 4096  # 1 MiB
    for i in range(4):  # the master spreads them over both segments
        assert a.put(f"{kind}-{i}", value) == 0
    assert [b.get(f"{kind}-{i}") == value for i in range(4)] == [True] * 4


def test_killed_client_objects_vanish_after_client_ttl(cluster: StoreCluster) -> None:
    m = cluster.master(client_ttl=2)
    a = cluster.client(m, process=True)
    keys = [f"ttl{i}" for i in range(3)]
    for k in keys:  # a's segment is the only one mounted: the objects live there
        assert a.put(k, b"v" * 1000) == 0
    b = cluster.client(m)
    assert b.batch_is_exist(keys) == [1, 1, 1]
    assert metrics(m)["master_active_clients"] == 2
    a.kill()  # no close(), no unmount: the master only notices the silence
    wait_for(
        lambda: metrics(m)["master_active_clients"] == 1,
        2 + EVENT_CAP_S,
        "the master to expire the client (ttl 2 s)",
    )
    assert b.batch_is_exist(keys) == [0, 0, 0]
    assert b.get(keys[0]) == b""
    assert metrics(m)["master_key_count"] == 0
    assert b.put("after", b"x") == 0 and b.get("after") == b"x"  # the survivor keeps working


def test_http_metadata_server_semantics(cluster: StoreCluster) -> None:
    url = cluster.master(enable_http_metadata_server=True).metadata_url
    seen = []
    for method, key, body in [("GET", "a", None), ("PUT", "a", b'{"x":1}'), ("GET", "a", None),
                              ("PUT", "a", b'{"x":2}'), ("GET", "a", None), ("DELETE", "a", None),
                              ("GET", "a", None), ("DELETE", "a", None), ("GET", None, None)]:  # fmt: skip
        r = httpx.request(method, url, params={"key": key} if key else None, content=body)
        seen.append((method, r.status_code, r.text))
    assert seen == [
        ("GET", 404, "metadata not found"),
        ("PUT", 200, "metadata updated"),
        ("GET", 200, '{"x":1}'),
        ("PUT", 200, "metadata updated"),
        ("GET", 200, '{"x":2}'),
        ("DELETE", 200, "metadata deleted"),
        ("GET", 404, "metadata not found"),
        ("DELETE", 404, "metadata not found"),
        ("GET", 400, "Missing key parameter"),
    ]


def test_put_into_a_dead_clients_segment_is_revoked(cluster: StoreCluster) -> None:
    """Before client_ttl expires the dead client's segment is still mounted: the transfer fails (-800),
    the writer revokes the put (PutRevoke) and nothing is left behind."""
    m = cluster.master(client_ttl=30)
    a = cluster.client(m, process=True)
    b = cluster.client(m, segment=0)  # no segment of its own: every allocation lands in a's
    assert a.put("pre", b"x" * 1000) == 0
    a.kill()
    assert b.put("k", b"v" * 1000) == -800
    assert b.is_exist("k") == 0
    assert b.get("pre") == b""
    mt = metrics(m)
    assert mt["master_put_revoke_requests_total"] == 1 and mt["master_put_revoke_failures_total"] == 0
    assert mt["master_key_count"] == 1  # only "pre", unreadable until the master expires a
