"""kvtest.netns, the one namespace helper (store tests' NetnsNetwork(n), cluster files' hosts with
`netns:`): the bridge is in the root namespace, so this process reaches every host directly, and two
networks alive at once get different subnets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kvtest.bridge_firewall import BridgeRules, iptables_usable, rules_for
from kvtest.cluster.schema import load_cluster
from kvtest.gating import skip_unless
from kvtest.netns import NetnsError, NetnsHost, NetnsNetwork, require_netns

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


def test_cluster_file_hosts_keep_their_names_and_addresses(tmp_path: Path) -> None:
    require_netns()
    # netns-cpu.yaml with this process's own namespace names and /24: its fixed ones are machine-wide,
    # and a test-real run or another checkout's suite on this machine may be using them right now
    tag = os.getpid() % 1000
    text = (CLUSTERS / "netns-cpu.yaml").read_text()
    text = text.replace("netns: kvc-", f"netns: kvc{tag}-").replace(
        "198.18.128.", f"198.18.{128 + tag % 127}."
    )
    (tmp_path / "netns-cpu.yaml").write_text(text)
    spec = load_cluster(tmp_path / "netns-cpu.yaml")
    bridge = f"kvc{tag}test"
    with NetnsNetwork.for_spec(spec, bridge=bridge) as net:
        assert {(h.name, h.addr) for h in net.hosts} == {(h.netns, h.address) for h in spec.hosts if h.netns}
        assert {h.name for h in net.hosts} == {f"kvc{tag}-a", f"kvc{tag}-b", f"kvc{tag}-c"}
        assert all(_reachable(h) for h in net.hosts)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert all(h.name in listed for h in net.hosts)
    assert bridge not in _links()


def _require_iptables() -> None:
    ok, reason = iptables_usable()
    skip_unless("netns", ok, reason)


def test_bridge_rules_are_idempotent_and_a_killed_runs_rules_are_swept() -> None:
    require_netns()
    _require_iptables()
    dead, alive = f"kvt{os.getpid() % 10000}dead", f"kvt{os.getpid() % 10000}live"
    for name in (dead, alive):
        subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        BridgeRules(dead).allow().allow()  # twice: still one rule per chain
        assert len(rules_for(dead)) == 3
        subprocess.run(["ip", "link", "del", dead], check=True)  # a run killed before its teardown
        BridgeRules(alive).allow()  # the next network start removes what is left of it
        assert rules_for(dead) == [] and len(rules_for(alive)) == 3
    finally:
        for name in (dead, alive):
            BridgeRules(name).revoke()
            subprocess.run(["ip", "link", "del", name], capture_output=True)
    assert rules_for(alive) == []


def test_a_failed_start_leaves_no_bridge_and_no_rules() -> None:
    require_netns()
    _require_iptables()
    bridge = f"kvt{os.getpid() % 10000}fail"
    net = NetnsNetwork({"kvt/not-a-name": "198.18.127.1"}, bridge=bridge)  # ip netns add refuses '/'
    with pytest.raises(NetnsError, match="netns add"):
        net.start()
    assert bridge not in _links() and rules_for(bridge) == []


def test_a_subnet_already_on_an_interface_is_refused() -> None:
    require_netns()
    dummy = f"kvt{os.getpid() % 10000}dum"
    subprocess.run(["ip", "link", "add", dummy, "type", "bridge"], check=True)  # any interface will do
    try:
        subprocess.run(["ip", "addr", "add", "198.18.126.9/24", "dev", dummy], check=True)
        with pytest.raises(NetnsError, match=f"198.18.126.0/24 is already on interface {dummy}"):
            NetnsNetwork({f"kvt{os.getpid() % 10000}sub": "198.18.126.1"}, bridge=f"{dummy}br").start()
        assert f"{dummy}br" not in _links()
    finally:
        subprocess.run(["ip", "link", "del", dummy], capture_output=True)
