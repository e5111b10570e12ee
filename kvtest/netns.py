"""Hosts made of Linux network namespaces, for cross-machine tests on one machine.

    with NetnsNetwork(3) as net:                  # hosts h0..h2 at 198.18.0.1..3 on one bridge
        master_host, a, b = net.hosts
        a.run(["ping", "-c1", master_host.addr])
        MooncakeMaster("mock", host=master_host.addr, wrap=master_host.exec_prefix, probe=master_host.http_ok)

Each network is a "switch" namespace holding a bridge, and one namespace per host joined to it by a
veth pair, so nothing is added to the machine's own network. Addresses are in 198.18.0.0/15 (RFC 2544
benchmarking space); networks are isolated from each other, so they may reuse addresses.
Needs CAP_SYS_ADMIN (root): tests call `require_netns()`, which skips with the reason, or fails where
KVTEST_REQUIRE names "netns".
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Sequence

_counter = itertools.count()
SUBNET = "198.18.0"


class NetnsError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {res.stderr.strip()}")


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
        """GET from inside this host (the test process itself cannot reach namespace addresses)."""
        res = self.run(["curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url], timeout=timeout + 5,
                       check=False)  # fmt: skip
        body, _, code = res.stdout.rpartition("\n")
        return (int(code) if code.isdigit() else 0), body

    def http_ok(self, url: str) -> bool:
        return self.http_get(url, timeout=1)[0] == 200


class NetnsNetwork:
    def __init__(self, n_hosts: int) -> None:
        if not 1 <= n_hosts <= 200:
            raise ValueError("1..200 hosts")
        tag = f"{os.getpid() % 100000}x{next(_counter)}"
        self.switch = f"kvt{tag}sw"
        self.hosts = [NetnsHost(f"kvt{tag}h{i}", f"{SUBNET}.{i + 1}") for i in range(n_hosts)]
        self._made: list[str] = []

    def start(self) -> NetnsNetwork:
        sw = self.switch
        _ip("netns", "add", sw)
        self._made.append(sw)
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts):
            _ip("netns", "add", host.name)
            self._made.append(host.name)
            _ip("-n", host.name, "link", "set", "lo", "up")
            # veth: eth0 in the host, p<i> on the switch's bridge
            _ip(
                "link",
                "add",
                "eth0",
                "netns",
                host.name,
                "type",
                "veth",
                "peer",
                "name",
                f"p{i}",
                "netns",
                sw,
            )
            _ip("-n", host.name, "addr", "add", f"{host.addr}/24", "dev", "eth0")
            _ip("-n", host.name, "link", "set", "eth0", "up")
            _ip("-n", sw, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", sw, "link", "set", f"p{i}", "up")
        return self

    def stop(self) -> None:
        # deleting a namespace kills its veth ends; processes started in it must be stopped first
        for name in reversed(self._made):
            with contextlib.suppress(NetnsError):
                _ip("netns", "del", name)
        self._made.clear()

    def __enter__(self) -> NetnsNetwork:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
