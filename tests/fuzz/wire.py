"""A raw HTTP/1.1 client for fuzzing: sends exactly the bytes a case asks for, the way it asks, and
gives up at a deadline (a server that has not answered by then is hung: a failure, never a retry).

Raw sockets rather than httpx because the interesting requests are the ones a well-behaved client
library will not send: a body shorter than its Content-Length, a body that trickles or stalls, a
write side closed mid-body, a method with a body it should not have.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    target: str  # path and query, already percent-encoded
    headers: tuple[tuple[str, str], ...]
    body: bytes
    # whole: all at once; trickle: in pieces with pauses; stall: part of the body, then wait for the
    # answer with the connection open; cut: part of the body, then close the write side
    delivery: str = "whole"
    split: int = 0  # stall/cut: how many body bytes are sent; trickle: number of pieces
    pause_s: float = 0.0  # trickle: pause between pieces

    @property
    def complete(self) -> bool:
        """Whether the server is sent the whole request (otherwise a closed connection is fair)."""
        return self.delivery in ("whole", "trickle")

    def head(self, host: str) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def describe(self) -> str:
        ctype = dict(self.headers).get("Content-Type")
        return (
            f"{self.method} {self.target} content-type={ctype!r} delivery={self.delivery} "
            f"body={self.body[:300]!r}{'...' if len(self.body) > 300 else ''}"
        )


@dataclass
class Outcome:
    """What came back: a status, or 'closed' (no answer, connection closed), or 'hang'."""

    kind: str  # "answer" | "closed" | "hang"
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return str(self.status) if self.kind == "answer" else self.kind


def _dechunk(data: bytes) -> bytes | None:
    """The body of a complete chunked message, or None while it is incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(data[pos:eol].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out) if data.find(b"\r\n", eol + 2) >= 0 else None
        start, end = eol + 2, eol + 2 + size
        if len(data) < end + 2:
            return None
        out += data[start:end]
        pos = end + 2


def _parse(raw: bytes, method: str, eof: bool) -> Outcome | None:
    """The response in `raw`, once it is complete (None: read on)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = raw[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    rest = raw[end + 4 :]
    if method == "HEAD" or status in (204, 304) or status < 200:
        return Outcome("answer", status, headers, b"")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest)
        return None if body is None else Outcome("answer", status, headers, body)
    if "content-length" in headers:
        n = int(headers["content-length"])
        return Outcome("answer", status, headers, rest[:n]) if len(rest) >= n else None
    return Outcome("answer", status, headers, rest) if eof else None


def send(host: str, port: int, req: FuzzRequest, deadline_s: float) -> Outcome:
    """Send `req` to host:port as it says; the answer, 'closed', or 'hang' after deadline_s."""
    start = time.monotonic()
    deadline = start + deadline_s

    def left() -> float:
        return max(deadline - time.monotonic(), 0.001)

    raw = b""
    try:
        with socket.create_connection((host, port), timeout=left()) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = req.head(f"{host}:{port}")
            try:
                if req.delivery == "trickle":
                    data = head + req.body
                    pieces = max(req.split, 2)
                    step = max(len(data) // pieces, 1)
                    for i in range(0, len(data), step):
                        s.sendall(data[i : i + step])
                        time.sleep(req.pause_s)
                elif req.delivery in ("stall", "cut"):
                    s.sendall(head + req.body[: req.split])
                    if req.delivery == "cut":
                        s.shutdown(socket.SHUT_WR)
                else:
                    s.sendall(head + req.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (and closed) before taking the whole body: read its answer
            while True:
                s.settimeout(left())
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                raw += chunk
                done = _parse(raw, req.method, eof=not chunk)
                if done is not None:
                    done.seconds = time.monotonic() - start
                    return done
                if not chunk:
                    return Outcome("closed", seconds=time.monotonic() - start)
                if time.monotonic() >= deadline:
                    raise TimeoutError
    except TimeoutError:
        return Outcome("hang", seconds=time.monotonic() - start, body=raw[:500])
