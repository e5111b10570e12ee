"""Hosts as network namespaces on one machine: each host of a cluster file with `netns: NAME` gets
that namespace, a veth into a shared bridge and its `address` (/24), so traffic between "machines"
crosses real links and no service can reach another through 127.0.0.1.

    with NetnsTopology.for_spec(load_cluster("fixtures/clusters/netns-cpu.yaml")):
        with up(spec) as cluster: ...

The bridge gets the subnet's .254 so this (root) namespace reaches every host, as a test driver on
a separate machine would. Needs root and iproute2 (kvtest.cluster.requirements.netns_missing).
Addresses come from the cluster file, inside 198.18.0.0/15 (benchmark space, never routed).
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

from kvtest.cluster.schema import ClusterSpec


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


@dataclass
class NetnsTopology:
    hosts: dict[str, str]  # namespace -> address
    bridge: str = "kvc-br0"
    prefix_len: int = 24
    created: list[str] = field(default_factory=list)

    @classmethod
    def for_spec(cls, spec: ClusterSpec, bridge: str = "kvc-br0") -> NetnsTopology:
        hosts = {h.netns: h.address for h in spec.hosts if h.netns}
        if not hosts:
            raise ValueError(f"cluster {spec.name!r} has no host with netns")
        return cls(hosts, bridge)

    @property
    def gateway(self) -> str:
        first = next(iter(self.hosts.values()))
        net = ipaddress.ip_network(f"{first}/{self.prefix_len}", strict=False)
        return str(net.broadcast_address - 1)

    def create(self) -> NetnsTopology:
        self.destroy()  # leftovers of a run that was killed
        _ip("link", "add", self.bridge, "type", "bridge")
        self.created.append(f"link:{self.bridge}")
        _ip("addr", "add", f"{self.gateway}/{self.prefix_len}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (ns, address) in enumerate(self.hosts.items()):
            _ip("netns", "add", ns)
            self.created.append(f"netns:{ns}")
            outside = f"{self.bridge[:8]}-v{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{address}/{self.prefix_len}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "route", "add", "default", "via", self.gateway)
        return self

    def destroy(self) -> None:
        for ns in self.hosts:
            _ip("netns", "del", ns, check=False)  # takes its end of the veth with it
        _ip("link", "del", self.bridge, check=False)
        self.created.clear()

    def __enter__(self) -> NetnsTopology:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc: object) -> None:
        self.destroy()
