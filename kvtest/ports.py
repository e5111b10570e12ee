"""Free TCP ports for services a test starts (never a fixed port: tests run under xdist)."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_lock = threading.Lock()
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# Ports for servers come from below the kernel's ephemeral range. A port the OS hands out for
# bind(("", 0)) is free only until the socket closes; until the server binds it, any outgoing
# connection (the suite makes thousands) may take it as its source port, and another xdist worker's
# bind(0) may get it too: a server then dies with "address already in use" (seen as a rare CI
# failure). Below the ephemeral range only other free_port() callers compete, picking at random.
_SERVER_PORTS = range(20000, min(_ephemeral_range()[0], 32768))
_pick = random.SystemRandom()  # not a test input: only which free port, so no seed


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, outside the ephemeral range, not handed out before by this
    process (so two services of one test never get the same port before either has bound it)."""
    if len(_SERVER_PORTS) >= 1000:
        for _ in range(200):
            port = _pick.choice(_SERVER_PORTS)
            with _lock:
                if port in _handed_out:
                    continue
            if _bindable(host, port) and _bindable("0.0.0.0", port):
                with _lock:
                    _handed_out.add(port)
                return port
    for _ in range(64):  # no room below the ephemeral range: let the OS choose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free port found on {host}")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    return [free_port(host) for _ in range(n)]


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
