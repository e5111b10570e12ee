"""Hosts made of Linux network namespaces, for cross-machine tests on one machine.

    with NetnsNetwork(3) as net:                  # hosts h0..h2 at 198.18.X.1..3, X a free /24
        master_host, a, b = net.hosts
        a.run(["ping", "-c1", master_host.addr])
        MooncakeMaster("mock", host=master_host.addr, wrap=master_host.exec_prefix, probe=master_host.http_ok)

    with NetnsNetwork.for_spec(load_cluster("fixtures/clusters/netns-cpu.yaml")):
        cluster = start(spec, run_dir)            # hosts with `netns: NAME` and their `address`

Each host is a namespace with `lo` and an `eth0` (a veth) into one bridge, its address on a /24, and
a default route via the bridge's address (the subnet's .254).

Where the bridge lives, and why: in the ROOT namespace, with that .254 address. The test driver
(pytest, httpx, the metrics scraper, `kvtest cluster status`) runs in the root namespace and must
reach every host's services directly, as a driver on a separate machine would; a bridge in a
namespace of its own would cut the driver off and force every HTTP call through `ip netns exec`.
The price: root-namespace addresses are machine-wide, so two networks at once need different
subnets, and a subnet some other interface already has is refused at start (two interfaces on one
/24 would split its routes and lose packets without an error).

Addresses (RFC 2544 benchmarking space, never routed), split so that nothing collides:
  198.18.0.0/17    `NetnsNetwork(n)`: a free /24 picked at start (tests' throwaway networks)
  198.18.128.0/17  cluster files' namespace hosts (fixtures/clusters/netns-cpu.yaml: 198.18.128.0/24)
  198.19.0.0/16    Docker's: ci/install-docker.sh gives dockerd bip 198.19.0.1/24 and its address
                   pools there, so containers never land on a kvtest subnet (nor on 172.17/16)

Beside a Docker engine: dockerd sets the iptables FORWARD policy to DROP and loads br_netfilter, which
drops every packet between two namespace hosts on the bridge. The network therefore allows its own
bridge's traffic for as long as it exists (kvtest.bridge_firewall: rules added at start, removed at
stop, also when the start failed) and changes nothing else on the host.

Needs root and iproute2: tests call `require_netns()`, which skips with the reason, or fails where
KVTEST_REQUIRE names "netns".
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from kvtest.bridge_firewall import BridgeRules

if TYPE_CHECKING:
    from kvtest.cluster.schema import ClusterSpec

_counter = itertools.count()
POOL = ipaddress.IPv4Network("198.18.0.0/16")  # kvtest's own; Docker gets 198.19.0.0/16
AUTO_POOL = ipaddress.IPv4Network("198.18.0.0/17")  # NetnsNetwork(n); cluster files use the upper half


class NetnsError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


def netns_available() -> tuple[bool, str]:
    """(ok, reason): can this process create network namespaces?"""
    if shutil.which("ip") is None:
        return False, "iproute2 `ip` not installed"
    name = f"kvtprobe{os.getpid()}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return False, f"cannot create a network namespace: {res.stderr.strip() or 'permission denied'}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def require_netns() -> None:
    from kvtest.gating import skip_unless

    ok, reason = netns_available()
    skip_unless("netns", ok, reason)


def _subnets_in_use() -> dict[ipaddress.IPv4Network, str]:
    """Every IPv4 network some interface here has an address on -> that interface's name."""
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    used: dict[ipaddress.IPv4Network, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            used[iface.network] = parts[1]
    return used


def _overlapping(net: ipaddress.IPv4Network) -> str | None:
    """The interface that already has an address in `net`, if any."""
    return next((name for used, name in _subnets_in_use().items() if used.overlaps(net)), None)


def free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/17 that no interface here has an address in, starting at one that depends
    on `seed` (the pid), so concurrent xdist workers rarely even try the same one."""
    candidates = list(AUTO_POOL.subnets(new_prefix=24))
    used = _subnets_in_use()
    for k in range(len(candidates)):
        net = candidates[(seed + k) % len(candidates)]
        if not any(u.overlaps(net) for u in used):
            return net
    raise NetnsError(f"no free /24 left in {AUTO_POOL}")


class NetnsHost:
    def __init__(self, name: str, addr: str) -> None:
        self.name = name
        self.addr = addr

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix an argv with this to run it on this host."""
        return ["ip", "netns", "exec", self.name]

    def run(
        self, argv: Sequence[str], timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.exec_prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              check=check)  # fmt: skip

    def http_get(self, url: str, timeout: float = 5) -> tuple[int, str]:
        """GET from inside this host (what a client on that machine sees, its own routing included)."""
        res = self.run(["curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url], timeout=timeout + 5,
                       check=False)  # fmt: skip
        body, _, code = res.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def http_ok(self, url: str) -> bool:
        return self.http_get(url, timeout=1)[0] == 200


class NetnsNetwork:
    """Namespaces joined by one root-namespace bridge (see the module docstring for why there).

    NetnsNetwork(3): hosts kvt<tag>h0..h2 at .1..3 of a free /24. NetnsNetwork({ns: address}, bridge=...):
    exactly those namespaces and addresses (one /24), which is what a cluster file asks for."""

    def __init__(self, hosts: int | Mapping[str, str], *, bridge: str | None = None, prefix_len: int = 24):
        # interface names have 15 characters at most: kvt<pid%10000>x<n%100>v<i> fits
        tag = f"{os.getpid() % 10000}x{next(_counter) % 100}"
        veth = f"kvt{tag}v"
        self._auto = isinstance(hosts, int)
        if isinstance(hosts, int):
            if not 1 <= hosts <= 200:
                raise ValueError("1..200 hosts")
            hosts = {f"kvt{tag}h{i}": "" for i in range(hosts)}
        if not hosts:
            raise ValueError("a network needs at least one host")
        self.hosts = [NetnsHost(ns, addr) for ns, addr in hosts.items()]
        self.bridge = bridge or f"kvt{tag}br"
        self._veth = veth if bridge is None else f"{bridge[:9]}v"
        self.prefix_len = prefix_len
        self.firewall = BridgeRules(self.bridge)
        if self._auto:
            self._place(free_subnet(os.getpid() + 7919 * next(_counter)))

    def _place(self, net: ipaddress.IPv4Network) -> None:
        """Put the hosts at .1, .2, ... of `net` (networks made with a host count)."""
        for host, addr in zip(self.hosts, net.hosts(), strict=False):
            host.addr = str(addr)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self.hosts[0].addr}/{self.prefix_len}", strict=False)

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace, every host's default route."""
        return str(self.subnet.broadcast_address - 1)

    @classmethod
    def for_spec(cls, spec: ClusterSpec, bridge: str = "kvc-br0") -> NetnsNetwork:
        """The namespaces of a cluster file's hosts that name one (`netns:`), at their addresses."""
        hosts = {h.netns: h.address for h in spec.hosts if h.netns}
        if not hosts:
            raise ValueError(f"cluster {spec.name!r} has no host with netns")
        return cls(hosts, bridge=bridge)

    def start(self) -> NetnsNetwork:
        """Make the bridge, its firewall rules and the hosts; on any failure, undo all of it and re-raise."""
        self.stop()  # leftovers of a run that was killed (fixed names from a cluster file)
        try:
            self._make()
        except BaseException:
            self.stop()
            raise
        return self

    def _make(self) -> None:
        taken = _overlapping(self.subnet)
        if taken and self._auto:  # another network took it since __init__ picked it: pick again
            self._place(free_subnet(os.getpid() + 7919 * next(_counter)))
            taken = _overlapping(self.subnet)
        if taken:
            raise NetnsError(
                f"subnet {self.subnet} is already on interface {taken}: give this network's hosts "
                f"addresses of another /24 (kvtest's cluster files use 198.18.128.0/17, Docker 198.19.0.0/16)"
            )
        _ip("link", "add", self.bridge, "type", "bridge")
        # before any traffic: a host whose firewall drops forwarded packets (dockerd's FORWARD policy
        # DROP + br_netfilter) would otherwise drop host-to-host traffic on this bridge
        self.firewall.allow()
        _ip("addr", "add", f"{self.gateway}/{self.prefix_len}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, host in enumerate(self.hosts):
            _ip("netns", "add", host.name)
            outside = f"{self._veth}{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", host.name)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", host.name, "addr", "add", f"{host.addr}/{self.prefix_len}", "dev", "eth0")
            _ip("-n", host.name, "link", "set", "eth0", "up")
            _ip("-n", host.name, "link", "set", "lo", "up")
            _ip("-n", host.name, "route", "add", "default", "via", self.gateway)

    def stop(self) -> None:
        """Delete every namespace (each takes its veth with it), the bridge and its firewall rules;
        absent ones are fine. Processes started in a namespace must be stopped first."""
        for host in self.hosts:
            with contextlib.suppress(NetnsError):
                _ip("netns", "del", host.name, check=False)
        _ip("link", "del", self.bridge, check=False)
        self.firewall.revoke()

    def __enter__(self) -> NetnsNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
