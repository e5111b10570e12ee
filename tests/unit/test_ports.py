import socket

from kvtest.ports import _ephemeral_range, free_port, free_ports


def test_server_ports_are_distinct_and_outside_the_ephemeral_range() -> None:
    """Outgoing connections take their source ports from the ephemeral range; a server port chosen
    there can be taken between free_port() and the server's bind ("address already in use")."""
    low, _ = _ephemeral_range()
    ports = free_ports(100)
    assert len(set(ports)) == 100
    if low > 21000:
        assert all(p < low for p in ports)


def test_a_listening_port_is_never_handed_out() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        assert all(free_port() != taken for _ in range(200))
