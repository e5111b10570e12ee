"""Free TCP ports for services a test starts (never a fixed port: tests run under xdist)."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
import threading
import time
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


# Other processes pick from the same range: xdist workers, a second suite on the same machine (a
# developer's make test beside make test-real, two jobs on one self-hosted runner). A port is free when
# picked but its server may bind it a minute later (a real vLLM loads its model first); meanwhile
# another process could pick it too and, binding first, answer that server's readiness probe (seen:
# a KV pool test read another suite's fake node's metrics). So a pick is also leased across processes:
# a file per port under LEASE_DIR naming the picking pid; a live pid's lease younger than LEASE_S
# keeps the port from every other kvtest process. Leases are never removed, only outlived.
LEASE_DIR = Path(tempfile.gettempdir()) / "kvtest-port-leases"
LEASE_S = 900.0  # longer than any start a test waits for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease(port: int) -> bool:
    """Claim `port` for this process; False when another live process leased it within LEASE_S."""
    try:
        LEASE_DIR.mkdir(mode=0o777, exist_ok=True)
    except OSError:
        return True  # nowhere to keep leases: this process's own bookkeeping still holds
    path = LEASE_DIR / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(path.read_text() or "0")
                age = time.time() - path.stat().st_mtime
            except (OSError, ValueError):
                holder, age = 0, LEASE_S
            if holder != os.getpid() and age < LEASE_S and holder > 0 and _alive(holder):
                return False
            with contextlib.suppress(OSError):
                path.unlink()  # outlived (or this process's own): take it over
            continue
        except OSError:
            return True
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


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
    process (so two services of one test never get the same port before either has bound it) nor,
    within LEASE_S, by another live kvtest process."""
    if len(_SERVER_PORTS) >= 1000:
        for _ in range(200):
            port = _pick.choice(_SERVER_PORTS)
            with _lock:
                if port in _handed_out:
                    continue
            if _bindable(host, port) and _bindable("0.0.0.0", port) and _lease(port):
                with _lock:
                    _handed_out.add(port)
                return port
    for _ in range(64):  # no room below the ephemeral range: let the OS choose
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        with _lock:
            if port in _handed_out:
                continue
        if _lease(port):
            with _lock:
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
