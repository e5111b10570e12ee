"""The seed's node designation in the OpenAI `user` field: "prefill=host:port;decode=host:port".

Either half may be given; the strategy picks the other. The seed's dataset writes exactly this form
(the seed's test plan, "Test prefix caching": `"user": "prefill=10.0.13.1:8101;decode=10.0.14.1:8200"`).

A `user` string with no "=" that does not start with "prefill"/"decode" is an ordinary OpenAI end-user id
and is not a designation. Anything else must parse completely, or the request is refused with 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvtest.proxy.errors import ProxyError

_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class Designation:
    prefill: str | None = None  # "host:port", host lower-cased
    decode: str | None = None


def is_designation(user: str) -> bool:
    head = user.strip().lower()
    return "=" in user or head.startswith(("prefill", "decode"))


def parse_designation(user: object) -> Designation | None:
    """The designation in a request's `user` field, None when there is none; ProxyError(400) if malformed."""
    if user is None:
        return None
    if not isinstance(user, str):
        raise ProxyError(400, f"'user' must be a string, got {type(user).__name__}")
    if not is_designation(user):
        return None
    found: dict[str, str] = {}
    for part in user.split(";"):
        part = part.strip()
        if not part:
            raise _malformed(user, "empty part")
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise _malformed(user, f"{part!r} is not key=host:port")
        if key not in ("prefill", "decode"):
            raise _malformed(user, f"unknown key {key!r} (use prefill= and decode=)")
        if key in found:
            raise _malformed(user, f"{key} given twice")
        found[key] = parse_hostport(value.strip(), user)
    return Designation(found.get("prefill"), found.get("decode"))


def parse_hostport(value: str, user: str = "") -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise _malformed(user or value, f"{value!r} is not host:port")
    if not _HOST.match(host):
        raise _malformed(user or value, f"bad host {host!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise _malformed(user or value, f"port {port} out of range")
    return f"{host.lower()}:{number}"


def _malformed(user: str, why: str) -> ProxyError:
    return ProxyError(
        400,
        f"malformed designation in 'user' ({why}): expected 'prefill=host:port;decode=host:port', "
        f"either half optional; got {user[:120]!r}",
    )
