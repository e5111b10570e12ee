"""The mock's wire protocol: a 4-byte big-endian length, then a msgpack array.

Master RPC: request `[method, args]`, reply `[code, result]`. Segment transfer (client to client):
request `[op, offset, length, data]`, reply `[code, data]`. One request in flight per connection, so
no request ids. The real store uses coro_rpc (master) and the transfer engine (data); this is neither.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import msgpack

_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 31


def pack(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return _LEN.pack(len(body)) + body


def unpack(body: bytes | bytearray | memoryview) -> Any:
    return msgpack.unpackb(body, raw=False, use_list=True)


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError("peer closed the connection")
        got += k
    return buf


def send_msg(sock: socket.socket, obj: Any) -> None:
    body = msgpack.packb(obj, use_bin_type=True)
    if len(body) < 65536:
        sock.sendall(_LEN.pack(len(body)) + body)
    else:  # avoid copying a large value once more just to prepend 4 bytes
        sock.sendall(_LEN.pack(len(body)))
        sock.sendall(body)


def recv_msg(sock: socket.socket) -> Any:
    (n,) = _LEN.unpack(_recv_exact(sock, 4))
    if n > MAX_FRAME:
        raise ConnectionError(f"frame of {n} bytes is too large")
    return unpack(_recv_exact(sock, n))


async def read_msg(reader: asyncio.StreamReader) -> Any:
    (n,) = _LEN.unpack(await reader.readexactly(4))
    if n > MAX_FRAME:
        raise ConnectionError(f"frame of {n} bytes is too large")
    return unpack(await reader.readexactly(n))


def connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock
