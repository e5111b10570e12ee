"""kvtest.netns, the one namespace helper (store tests' NetnsNetwork(n), cluster files' hosts with
`netns:`): the bridge is in the root namespace, so this process reaches every host directly, and two
networks alive at once get different subnets."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kvtest.cluster.schema import load_cluster
from kvtest.netns import NetnsHost, NetnsNetwork, require_netns

pytestmark = pytest.mark.netns
CLUSTERS = Path(__file__).resolve().parents[2] / "fixtures" / "clusters"


LISTEN = (
    "import socket,sys; s=socket.create_server((sys.argv[1], 0)); print(s.getsockname()[1], flush=True); "
    "s.accept()"
)


def _reachable(host: NetnsHost, client: NetnsHost | None = None) -> bool:
    """A listener on `host`'s address (its own namespace) accepts a TCP connection from this process,
    or from inside `client`'s namespace."""
    server = subprocess.Popen([*host.exec_prefix, sys.executable, "-c", LISTEN, host.addr],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if client is None:
            try:
                socket.create_connection((host.addr, port), timeout=2).close()
                return True
            except OSError:
                return False
        code = f"import socket; socket.create_connection(('{host.addr}', {port}), timeout=2).close()"
        return client.run([sys.executable, "-c", code], check=False).returncode == 0
    finally:
        server.kill()
        server.wait()


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_two_networks_get_distinct_subnets_and_are_reachable_from_here() -> None:
    require_netns()
    with NetnsNetwork(2) as one, NetnsNetwork(2) as two:
        subnets = {h.addr.rsplit(".", 1)[0] for h in one.hosts}, {h.addr.rsplit(".", 1)[0] for h in two.hosts}
        assert len(subnets[0]) == 1 and subnets[0] != subnets[1]
        for host in [*one.hosts, *two.hosts]:
            assert _reachable(host), host.addr
        a, b = one.hosts
        assert _reachable(b, client=a)
        names = [one.bridge, two.bridge]
    assert not any(n in _links() for n in names)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert a.name not in listed


def test_cluster_file_hosts_keep_their_names_and_addresses() -> None:
    require_netns()
    spec = load_cluster(CLUSTERS / "netns-cpu.yaml")
    with NetnsNetwork.for_spec(spec, bridge="kvctest-br") as net:
        assert {(h.name, h.addr) for h in net.hosts} == {(h.netns, h.address) for h in spec.hosts if h.netns}
        assert all(_reachable(h) for h in net.hosts)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert all(h.name in listed for h in net.hosts)
    assert "kvctest-br" not in _links()
