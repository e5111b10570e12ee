"""Across machines: three hosts made of network namespaces (master on one, a store client on each of
the others), for the mock and the real master + client. Skipped with its reason where namespaces
cannot be made; KVTEST_REQUIRE=netns turns that skip into a failure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.metrics.exposition import sums
from kvtest.netns import NetnsHost, NetnsNetwork, require_netns
from kvtest.services import MooncakeMaster

from .harness import BUF, EVENT_CAP_S, SEG, ClientProcess, wait_for

pytestmark = pytest.mark.netns


@pytest.fixture
def net() -> Iterator[NetnsNetwork]:
    require_netns()
    with NetnsNetwork(3) as network:
        yield network


def metric(host: NetnsHost, master: MooncakeMaster, name: str) -> float:
    status, text = host.http_get(master.url_for("metrics"))
    assert status == 200
    values = sums(text)
    assert name in values, f"{name} not in /metrics"
    return values[name]


def test_put_on_one_host_get_on_another_and_dedup(impl: str, net: NetnsNetwork, tmp_path: Path) -> None:
    mh, ha, hb = net.hosts
    master = MooncakeMaster(impl, {}, host=mh.addr, wrap=mh.exec_prefix, probe=mh.http_ok,  # type: ignore[arg-type]
                            log_dir=tmp_path)  # fmt: skip
    clients: list[ClientProcess] = []
    try:
        master.start()
        for h in (ha, hb):
            c = ClientProcess(impl, tmp_path / f"client-{h.addr}.log", env={"MC_TCP_BIND_ADDRESS": h.addr},
                              wrap=h.exec_prefix)  # fmt: skip
            clients.append(c)
            assert c.setup(h.addr, "P2PHANDSHAKE", SEG, BUF, "tcp", "", master.rpc_addr) == 0
        a, b = clients
        value = bytes(range(256)) * 4096  # 1 MiB from host A's process to host B's
        assert a.put("cross", value) == 0
        assert b.get("cross") == value
        segments = mh.http_get(master.url_for("get_all_segments"))[1].split()
        assert sorted(s.rsplit(":", 1)[0] for s in segments) == [ha.addr, hb.addr]

        # both hosts store the same prefix block at once: one object, one rejection at the master
        before = metric(mh, master, "master_put_start_failures_total")
        codes: dict[str, int] = {}
        go = threading.Barrier(2)

        def put(name: str, client: ClientProcess) -> None:
            go.wait()
            codes[name] = client.put("prefix-block", name.encode() * 1000)

        threads = [threading.Thread(target=put, args=(n, c)) for n, c in (("A", a), ("B", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == {"A": 0, "B": 0}
        winner = a.get("prefix-block")
        assert winner in (b"A" * 1000, b"B" * 1000) and b.get("prefix-block") == winner
        assert metric(mh, master, "master_put_start_failures_total") == before + 1
        status, body = mh.http_get(master.url_for("query_key") + "?key=prefix-block")
        assert status == 200 and body.count("transport_endpoint_") == 1
        assert mh.http_get(master.url_for("get_all_keys"))[1].split().count("prefix-block") == 1
        wait_for(
            lambda: "key=prefix-block, info=object_already_exists" in master.log_text(),
            EVENT_CAP_S,
            "the log line",
        )
    finally:
        for c in clients:
            c.kill()
        master.stop()
