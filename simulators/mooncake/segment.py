"""A client's mounted segment: a byte array other clients read and write over TCP.

This stands in for the transfer engine: the master only hands out (segment, offset); the bytes move
directly between the writer's process and the segment owner's. Wire format (ours, not Mooncake's):
request  = op:u8 offset:u64 length:u64 [length bytes when op is WRITE]
reply    = code:i32 length:u64 [length bytes when op is READ]
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

_REQ = struct.Struct(">BQQ")
_REP = struct.Struct(">iQ")
OP_READ = 1
OP_WRITE = 2


def _recv_into(sock: socket.socket, view: memoryview) -> None:
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    _recv_into(sock, memoryview(buf))
    return buf


class SegmentServer:
    """Serves reads and writes into `self.buffer` on (host, port 0) from a thread per connection."""

    def __init__(self, host: str, size: int) -> None:
        self.buffer = bytearray(size)
        self.view = memoryview(self.buffer)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(128)
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, name=f"segment-{self.port}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                op, offset, length = _REQ.unpack(_recv_exact(conn, _REQ.size))
                if offset + length > len(self.buffer):
                    conn.sendall(_REP.pack(-10, 0))  # BUFFER_OVERFLOW
                    continue
                if op == OP_WRITE:
                    _recv_into(conn, self.view[offset : offset + length])
                    conn.sendall(_REP.pack(0, 0))
                elif op == OP_READ:
                    conn.sendall(_REP.pack(0, length))
                    conn.sendall(self.view[offset : offset + length])
                else:
                    conn.sendall(_REP.pack(-600, 0))
        except (ConnectionError, OSError, struct.error):
            pass
        finally:
            self._conns.discard(conn)
            conn.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class PeerConnection:
    """One connection to another client's segment; callers hold `lock` around a request."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lock = threading.Lock()

    def write(self, offset: int, data: memoryview) -> int:
        self.sock.sendall(_REQ.pack(OP_WRITE, offset, len(data)))
        self.sock.sendall(data)
        code, _ = _REP.unpack(_recv_exact(self.sock, _REP.size))
        return int(code)

    def read_into(self, offset: int, out: memoryview) -> int:
        self.sock.sendall(_REQ.pack(OP_READ, offset, len(out)))
        code, length = _REP.unpack(_recv_exact(self.sock, _REP.size))
        if code == 0:
            _recv_into(self.sock, out[:length])
        return int(code)

    def close(self) -> None:
        self.sock.close()
