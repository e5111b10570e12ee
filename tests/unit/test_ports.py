import socket

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
