"""Errors the proxy answers with: an HTTP status and an OpenAI-style JSON body, never a 200 with nothing.

The body is `{"error": {"message", "type", "param", "code"}}` as the OpenAI API returns it; `code` is the
HTTP status so a client that only reads the body still knows what happened.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

# OpenAI's error "type" strings for the statuses the proxy produces itself.
_TYPES = {
    400: "invalid_request_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if status < 500 else "server_error"


def error_body(status: int, message: str, type_: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_ or error_type(status), "param": None, "code": status}}


class ProxyError(Exception):
    """A request that ends in an error status; `leg` says which side failed (None: the proxy itself)."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, leg: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or error_type(status)
        self.leg = leg

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.type)

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        # imported here: the cluster schema reads the flow registry, whose modules raise ProxyError,
        # and loading a cluster file should not load an HTTP server
        from aiohttp import web

        return web.Response(
            status=self.status,
            body=json.dumps(self.body()).encode(),
            content_type="application/json",
            headers=headers,
        )


def backend_message(raw: bytes) -> tuple[str, str | None]:
    """The message (and type) inside a backend's error body, whichever of vLLM's shapes it uses.

    vLLM answers `{"error": {"message", "type", ...}}` (newer) or `{"object": "error", "message", "type"}`
    (older, vllm/entrypoints/openai/protocol.py ErrorResponse); anything else is quoted, shortened.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        text = raw[:200].decode("utf-8", "replace").strip()
        return (text or "<empty body>"), None
    if isinstance(data, dict):
        inner = data.get("error")
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"]), _str_or_none(inner.get("type"))
        if isinstance(inner, str):
            return inner, None
        if "message" in data:
            return str(data["message"]), _str_or_none(data.get("type"))
        if "detail" in data:  # FastAPI's HTTPException shape
            return str(data["detail"]), None
    return json.dumps(data)[:200], None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def leg_http_error(leg: str, url: str, status: int, raw: bytes) -> ProxyError:
    """Map a backend's error status to the proxy's answer (issue 4's table).

    prefill 4xx -> that status; prefill 5xx -> 502. decode errors before the first byte -> their status.
    """
    message, type_ = backend_message(raw)
    text = f"{leg} node {url} answered {status}: {message}"
    if leg == "prefill" and status >= 500:
        return ProxyError(502, text, leg=leg)
    return ProxyError(status, text, type_=type_, leg=leg)
