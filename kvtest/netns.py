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
subnets. A cluster file gives its own; `NetnsNetwork(n)` takes a /24 of 198.18.0.0/15 that no
interface of this machine uses yet. Addresses stay inside 198.18.0.0/15 (RFC 2544 benchmarking
space, never routed).

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

if TYPE_CHECKING:
    from kvtest.cluster.schema import ClusterSpec

_counter = itertools.count()
POOL = ipaddress.IPv4Network("198.18.0.0/15")


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


def _subnets_in_use() -> set[ipaddress.IPv4Network]:
    out = _ip("-4", "-o", "addr", "show", check=False).stdout
    used: set[ipaddress.IPv4Network] = set()
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            used.add(ipaddress.IPv4Network(f"{iface.ip}/24", strict=False))
    return used


def free_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 with no address on any interface here, starting at one that depends on
    `seed` (the pid), so concurrent xdist workers rarely even try the same one."""
    candidates = list(POOL.subnets(new_prefix=24))
    used = _subnets_in_use()
    for k in range(len(candidates)):
        net = candidates[(seed + k) % len(candidates)]
        if net not in used:
            return net
    raise NetnsError("no free /24 left in 198.18.0.0/15")


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
        if isinstance(hosts, int):
            if not 1 <= hosts <= 200:
                raise ValueError("1..200 hosts")
            net = free_subnet(os.getpid() + 7919 * next(_counter))
            addrs = list(net.hosts())
            hosts = {f"kvt{tag}h{i}": str(addrs[i]) for i in range(hosts)}
        if not hosts:
            raise ValueError("a network needs at least one host")
        self.hosts = [NetnsHost(ns, addr) for ns, addr in hosts.items()]
        self.bridge = bridge or f"kvt{tag}br"
        self._veth = veth if bridge is None else f"{bridge[:9]}v"
        self.prefix_len = prefix_len
        first = ipaddress.ip_network(f"{self.hosts[0].addr}/{prefix_len}", strict=False)
        self.gateway = str(first.broadcast_address - 1)

    @classmethod
    def for_spec(cls, spec: ClusterSpec, bridge: str = "kvc-br0") -> NetnsNetwork:
        """The namespaces of a cluster file's hosts that name one (`netns:`), at their addresses."""
        hosts = {h.netns: h.address for h in spec.hosts if h.netns}
        if not hosts:
            raise ValueError(f"cluster {spec.name!r} has no host with netns")
        return cls(hosts, bridge=bridge)

    def start(self) -> NetnsNetwork:
        self.stop()  # leftovers of a run that was killed (fixed names from a cluster file)
        _ip("link", "add", self.bridge, "type", "bridge")
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
        return self

    def stop(self) -> None:
        """Delete every namespace (each takes its veth with it) and the bridge; absent ones are fine.
        Processes started in a namespace must be stopped first."""
        for host in self.hosts:
            with contextlib.suppress(NetnsError):
                _ip("netns", "del", host.name, check=False)
        _ip("link", "del", self.bridge, check=False)

    def __enter__(self) -> NetnsNetwork:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
