"""`designate`: the seed's node designation in the OpenAI `user` field, "prefill=host:port;decode=host:port"
(kvtest/proxy/designation.py). Skipped by default for other routers: none implements it."""

from __future__ import annotations

from kvtest.conformance.check import Context, check
from kvtest.conformance.groups.pd import pd_legs, post
from kvtest.conformance.wire import json_body, short

MALFORMED = [
    "prefill=127.0.0.1",  # no port
    "prefill=127.0.0.1:notaport",
    "prefill=127.0.0.1:70000",  # port out of range
    "prefill=:8100",  # no host
    "prefill=127.0.0.1:8100;;decode=127.0.0.1:8200",  # empty part
    "prefill=127.0.0.1:8100;prefill=127.0.0.1:8101",  # twice
    "prefil=127.0.0.1:8100",  # unknown key
    "prefill 127.0.0.1:8100",  # no '='
    "decode=bad host:8200",
    "prefill=127.0.0.1:8100;decode",
]


@check("designate", "a malformed designation (or a non-string user) is a 400 that says so")
async def malformed_designation_is_400(ctx: Context) -> str:
    for user in [*MALFORMED, 7]:
        r = await post(ctx, ctx.body(ctx.marker(), user=user))
        assert r.status_code == 400, f"user={user!r}: {short(r)}"
        if isinstance(user, str):
            assert "designation" in str(json_body(r)["error"]["message"]), f"user={user!r}: {short(r)}"
    return f"{len(MALFORMED) + 1} users refused"


@check("designate", "a designated node that is not configured is refused with 403 before any connection")
async def undesignated_node_is_403(ctx: Context) -> str:
    marker = ctx.marker()
    r = await post(ctx, ctx.body(marker, user="prefill=192.0.2.1:8100;decode=192.0.2.1:8200"))
    assert r.status_code == 403 and "192.0.2.1:8100" in r.text, short(r)
    assert not ctx.legs(marker), "a node saw the refused request"
    return "403"


@check("designate", "a designation naming the configured nodes sends the legs there; a plain user id passes")
async def designated_nodes_take_the_legs(ctx: Context) -> str:
    b = ctx.backends
    marker = ctx.marker()
    user = f"prefill=127.0.0.1:{b.prefill.port};decode=127.0.0.1:{b.decode.port}"
    r = await post(ctx, ctx.body(marker, user=user))
    assert r.status_code == 200, short(r)
    p, d = pd_legs(ctx, marker)
    assert len(p) == 1 and len(d) == 1, f"{len(p)} prefill leg(s), {len(d)} decode leg(s)"
    plain = await post(ctx, ctx.body(ctx.marker(), user="alice"))
    assert plain.status_code == 200, f"user='alice': {short(plain)}"
    return "designated legs landed; 'alice' is an end-user id"
