"""Hypothesis strategies for bad HTTP input: one `requests(routes)` strategy per surface.

A case starts from a route and a valid body for it, then breaks what a client can break: the JSON
(malformed, truncated, not an object, not UTF-8, empty), the fields (missing, extra, wrong types, huge
and negative numbers, NaN and Infinity, unicode with lone UTF-16 surrogates), the method, the path,
the query, the content type, and the delivery (trickled, stalled, cut mid-body).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from .wire import FuzzRequest


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body: dict[str, Any] | None = None  # a valid body (None: the route takes none)
    query: dict[str, str] | None = None  # a valid query


METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")

# strings that broke, or could break, a server writing them back: lone surrogates, NUL, BOM,
# bidi override, huge, look-alikes of other JSON types, path and format tricks
NASTY_STRINGS = (
    "",
    " ",
    "\ud800",
    "a\udfffb",
    "\udbff\udc00\ud800",
    "\x00",
    "\ufeff",
    "\u202e",
    "💥",
    "null",
    "true",
    "1e999",
    "NaN",
    "../../../etc/passwd",
    "/home/user/model",
    "%s%n%x",
    "{{ 7*7 }}",
    "<script>",
    "tiny",
    "a" * 5000,
    "\U0010ffff",
)
NASTY_NUMBERS = (
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**30),
    10**300,
    0.5,
    -0.0,
    1e308,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
)

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
strings = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=12),
    st.lists(st.one_of(surrogates, st.characters()), min_size=1, max_size=6).map("".join),
)
numbers = st.one_of(
    st.sampled_from(NASTY_NUMBERS),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(strings, inner, max_size=4),
    ),
    max_leaves=12,
)

# fields the surfaces read (so a mutation reaches deeper checks than "unknown field, ignored")
FIELDS = (
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "kv_transfer_params",
    "cache_salt",
    "prompt_logprobs",
    "return_token_ids",
    "add_special_tokens",
    "add_generation_prompt",
    "chat_template_kwargs",
    "tokens",
    "return_token_strs",
    "stop",
    "logprobs",
    "echo",
)
keys = st.one_of(st.sampled_from(FIELDS), strings)

CONTENT_TYPES = (
    "application/json",
    "application/json",
    "application/json",
    None,
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/vnd.api+json",
    "application/octet-stream",
    "",
    "application/json; charset=latin-1",
    "json",
)


@st.composite
def mutated_body(draw: st.DrawFn, template: dict[str, Any] | None) -> Any:
    """A JSON value near `template`: fields dropped, replaced, added, or not an object at all."""
    base = dict(template or {})
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(json_values)  # anything, usually not an object
    if choice == 1:
        return base  # the valid body (so valid paths get exercised between the broken ones)
    for key in draw(st.lists(st.sampled_from(sorted(base)), max_size=len(base), unique=True)) if base else []:
        if draw(st.booleans()):
            del base[key]
    own = st.sampled_from(sorted(template or {"model": 0}))
    for _ in range(draw(st.integers(0, 4))):
        # mostly the route's own fields, with the values most likely to be echoed back wrongly
        key = draw(own if draw(st.booleans()) else keys)
        base[key] = draw(st.sampled_from(NASTY_STRINGS) if draw(st.integers(0, 2)) == 0 else json_values)
    return base


@st.composite
def encoded(draw: st.DrawFn, value: Any) -> bytes:
    """The bytes of a JSON body: well-formed, or broken in one of the ways clients break it."""
    text = json.dumps(value)  # ASCII: a surrogate travels as the escape \ud800, as browsers send it
    how = draw(st.integers(0, 11))
    if how == 0 and text:
        return text.encode()[: draw(st.integers(0, len(text) - 1))]  # truncated JSON
    if how == 1:
        return draw(st.binary(max_size=64))  # not JSON
    if how == 2:
        # raw UTF-8 with surrogates passed through: not valid UTF-8 at all
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if how == 3:
        return b""
    if how == 4:
        return draw(st.sampled_from([b"{", b"}", b"[", b"{}", b"[]", b"null", b'"x"', b"1e999", b"NaN"]))
    if how == 5:
        return b'{"max_tokens": ' + b"9" * 5000 + b"}"  # past Python's int-string limit
    if how == 6:
        return text.encode("utf-16")  # valid JSON, another encoding
    return text.encode()


def _path(route_path: str) -> st.SearchStrategy[str]:
    junk = st.text(alphabet=string.printable + "é\u00ff💥", max_size=12).map(lambda t: quote(t, safe="/"))
    return st.one_of(
        st.just(route_path),
        st.sampled_from(
            [
                "/",
                "/v1",
                route_path + "/",
                route_path + "/x",
                "//" + route_path.lstrip("/"),
                route_path.upper(),
                "/%00",
                "/%ff%fe",
                "/v1/%2e%2e/health",
                "/nope",
            ]
        ),
        junk.map(lambda j: "/" + j),
    )


def _query(route: Route) -> st.SearchStrategy[str]:
    valid = "&".join(f"{k}={quote(v)}" for k, v in (route.query or {}).items())
    return st.one_of(
        st.just(valid),
        st.just(""),
        st.dictionaries(
            st.one_of(st.sampled_from(sorted(route.query or {"key": ""})), st.text(max_size=4)),
            strings,
            max_size=3,
        ).map(lambda q: "&".join(f"{quote(k)}={quote(v, errors='surrogatepass')}" for k, v in q.items())),
        st.sampled_from(["key=%ff", "key=%zz", "key", "=", "&&", "key=%ud800", "key=a&key=b"]),
    )


@st.composite
def request_for(draw: st.DrawFn, route: Route) -> FuzzRequest:
    method = route.method if draw(st.integers(0, 9)) else draw(st.sampled_from(METHODS))
    path = route.path if draw(st.integers(0, 9)) else draw(_path(route.path))
    query = draw(_query(route)) if route.query is not None or not draw(st.integers(0, 9)) else ""
    target = path + (f"?{query}" if query else "")
    headers: list[tuple[str, str]] = []
    body = b""
    if route.body is not None or not draw(st.integers(0, 9)):
        body = draw(encoded(draw(mutated_body(route.body))))
        ctype = draw(st.sampled_from(CONTENT_TYPES))
        if ctype is not None:
            headers.append(("Content-Type", ctype))
    delivery = draw(
        st.sampled_from(["whole"] * 90 + ["trickle"] * 5 + ["cut"] * 4 + ["stall"] * 1)
        if body
        else st.sampled_from(["whole"] * 95 + ["trickle"] * 5)
    )
    split = pause = 0
    if delivery in ("stall", "cut"):
        split = draw(st.integers(0, len(body) - 1))
    elif delivery == "trickle":
        split = draw(st.integers(2, 4))
        pause = draw(st.sampled_from([0.0, 0.001, 0.005]))
    return FuzzRequest(method, target, tuple(headers), body, delivery, split, pause)


def requests(routes: list[Route]) -> st.SearchStrategy[FuzzRequest]:
    return st.sampled_from(routes).flatmap(request_for)
