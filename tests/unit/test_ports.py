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
        later = free_port()  # a port free now; free_port may only return it after skipping `taken`
        picks = iter([taken, taken, later + 1 if later < 32767 else later - 1])

        class Chooser:
            def choice(self, _: object) -> int:
                return next(picks)

        monkeypatch.setattr(ports, "_pick", Chooser())
        port = free_port()
        assert port != taken
