import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvtest import ports
from kvtest.ports import _ephemeral_range, free_port, free_ports


def test_server_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    """Outgoing connections take their source ports from the ephemeral range; a server port chosen
    there can be taken between free_port() and the server's bind ("address already in use")."""
    low, _ = _ephemeral_range()
    ports = free_ports(100)
    assert len(set(ports)) == 100
    if low > 21000:
        assert all(p < low for p in ports)


def test_a_listening_port_is_never_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        real = ports._pick
        offered: list[int] = []

        class Chooser:
            """Offers the busy port twice, then chooses as free_port normally does: a scripted
            third port could itself be held by another xdist worker by then."""

            def choice(self, candidates: range) -> int:
                port = taken if len(offered) < 2 else real.choice(candidates)
                offered.append(port)
                return port

        monkeypatch.setattr(ports, "_pick", Chooser())
        port = free_port()
        assert offered[:2] == [taken, taken]
        assert port != taken


def _offer_first(monkeypatch: pytest.MonkeyPatch, first: int) -> list[int]:
    """Make free_port's random choice offer `first` once, then choose as it normally does."""
    real = ports._pick
    offered: list[int] = []

    class Chooser:
        def choice(self, candidates: range) -> int:
            port = first if not offered else real.choice(candidates)
            offered.append(port)
            return port

    monkeypatch.setattr(ports, "_pick", Chooser())
    return offered


def _unused_port() -> int:
    """A bindable port in free_port's range that this process never handed out."""
    while True:
        port = ports._pick.choice(ports._SERVER_PORTS)
        if port not in ports._handed_out and ports._bindable("127.0.0.1", port):
            return port


def test_a_port_another_live_process_leased_is_not_handed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another suite's process picked the port and has not bound it yet (a real vLLM loading its model):
    this process must not pick it too (seen: a test read the metrics of another suite's node there)."""
    monkeypatch.setattr(ports, "LEASE_DIR", tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        leased = _unused_port()
        (tmp_path / str(leased)).write_text(str(other.pid))
        offered = _offer_first(monkeypatch, leased)
        port = free_port()
        assert offered[0] == leased and port != leased
        assert (tmp_path / str(port)).read_text() == str(os.getpid())
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("stale", ["dead process", "older than LEASE_S"])
def test_an_outlived_lease_is_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stale: str) -> None:
    monkeypatch.setattr(ports, "LEASE_DIR", tmp_path)
    leased = _unused_port()
    lease = tmp_path / str(leased)
    if stale == "dead process":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        lease.write_text(str(gone.pid))
    else:
        lease.write_text(str(os.getppid()))  # alive, but its lease is old
        old = time.time() - ports.LEASE_S - 1
        os.utime(lease, (old, old))
    _offer_first(monkeypatch, leased)
    assert free_port() == leased
    assert lease.read_text() == str(os.getpid())
