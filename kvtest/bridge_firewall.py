"""Let kvtest's namespace bridge carry its own traffic on a host whose firewall drops forwarded packets.

    rules = BridgeRules("kvt12x0br").allow()   # three ACCEPT rules naming this bridge, nothing else
    ...
    rules.revoke()                              # gone again (also those of bridges that no longer exist)

Why it is needed: a Docker engine sets the iptables FORWARD policy to DROP and loads br_netfilter
(net.bridge.bridge-nf-call-iptables=1). From then on every frame one namespace host sends to another
across kvtest's root-namespace bridge is passed through iptables' FORWARD chain as if it were routed,
`-i BRIDGE -o BRIDGE`, and dropped by the policy: a store client in one namespace cannot reach the
master in another. The fix allows exactly that bridge: `FORWARD -i BR -o BR` (host to host) and
`INPUT -i BR` / `OUTPUT -o BR` (the test driver in the root namespace to and from the hosts, for hosts
whose INPUT policy is DROP too). Rules are inserted first in the built-in chains (Docker's own
chains only ever accept or drop traffic of Docker's bridges, so the order does not matter to Docker,
and a dockerd restart does not remove them); the FORWARD policy and every other rule stay as they
are. Every rule carries the comment `kvtest-netns`, so that the rules of a run that was killed
before its teardown are found and removed by the next run (`sweep_stale`) once their bridge is gone.

`iptables` is whichever backend the host's `iptables` command is (nf_tables or legacy), the same
command Docker uses. A host without it, or whose kernel has no filter table for it, filters no
bridge traffic with it either: then there is nothing to allow and `allow()` does nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

COMMENT = "kvtest-netns"
# the xtables lock is held briefly by dockerd and by concurrent tests; wait for it, up to a bound
# that only a wedged iptables reaches
LOCK_WAIT_S = "60"
CHAINS = ("FORWARD", "INPUT", "OUTPUT")


class FirewallError(RuntimeError):
    pass


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", LOCK_WAIT_S, *args], capture_output=True, text=True,
                          check=False)  # fmt: skip


def iptables_usable() -> tuple[bool, str]:
    """(ok, reason): can rules be listed and changed with `iptables` here?"""
    if shutil.which("iptables") is None:
        return False, "iptables is not installed"
    res = _iptables("-S", "FORWARD")
    if res.returncode != 0:
        return False, f"iptables cannot read the filter table: {res.stderr.strip()}"
    return True, ""


def forward_policy() -> str | None:
    """The FORWARD chain's policy (ACCEPT or DROP), None where iptables is unusable."""
    if not iptables_usable()[0]:
        return None
    for line in _iptables("-S", "FORWARD").stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def bridge_netfilter_on() -> bool:
    """True when bridged frames pass through iptables (br_netfilter loaded and switched on)."""
    path = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    return path.exists() and path.read_text().strip() == "1"


def _specs(bridge: str) -> list[tuple[str, list[str]]]:
    tail = ["-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"]
    return [
        ("FORWARD", ["-i", bridge, "-o", bridge, *tail]),
        ("INPUT", ["-i", bridge, *tail]),
        ("OUTPUT", ["-o", bridge, *tail]),
    ]


def rules_for(bridge: str) -> list[str]:
    """The kvtest rules naming `bridge` that are in place now, as `iptables -S` prints them."""
    found = []
    for chain in CHAINS:
        for line in _iptables("-S", chain).stdout.splitlines():
            words = shlex.split(line)
            if COMMENT in words and bridge in _bridges_named(words):
                found.append(line)
    return found


def _bridges_named(words: list[str]) -> set[str]:
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-i", "-o")}


def _delete_all(chain: str, spec: list[str]) -> None:
    # -D removes one copy per call; a rule added twice (two runs racing on one fixed bridge name)
    # needs as many calls. Bounded: a rule that keeps coming back is someone else's loop.
    for _ in range(16):
        if _iptables("-D", chain, *spec).returncode != 0:
            return


def sweep_stale() -> None:
    """Remove kvtest rules whose bridge no longer exists (left by a run killed before its teardown)."""
    for chain in CHAINS:
        for line in _iptables("-S", chain).stdout.splitlines():
            words = shlex.split(line)
            if words[:2] != ["-A", chain] or COMMENT not in words:
                continue
            if not all(Path("/sys/class/net", b).exists() for b in _bridges_named(words)):
                _delete_all(chain, words[2:])


class BridgeRules:
    """The ACCEPT rules for one bridge: allow() at network start, revoke() at teardown; both idempotent."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge

    def allow(self) -> BridgeRules:
        ok, _ = iptables_usable()
        if not ok:
            return self  # nothing filters bridge traffic through iptables here
        sweep_stale()
        for chain, spec in _specs(self.bridge):
            if _iptables("-C", chain, *spec).returncode == 0:
                continue
            res = _iptables("-I", chain, "1", *spec)
            if res.returncode != 0:
                self.revoke()
                raise FirewallError(
                    f"iptables -I {chain} {shlex.join(spec)}: {res.stderr.strip() or 'failed'}"
                )
        return self

    def revoke(self) -> None:
        if shutil.which("iptables") is None:
            return
        for chain, spec in _specs(self.bridge):
            _delete_all(chain, spec)
