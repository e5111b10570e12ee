"""Property tests of the `user`-field parser: valid designations round-trip, anything else is None or 400."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvtest.proxy.designation import Designation, parse_designation
from kvtest.proxy.errors import ProxyError

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.lists(label, min_size=1, max_size=3).map(".".join),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
hostports = st.tuples(hosts, st.integers(1, 65535)).map(lambda hp: f"{hp[0]}:{hp[1]}")


@given(st.one_of(st.none(), hostports), st.one_of(st.none(), hostports), st.booleans())
def test_valid_designations_round_trip(prefill: str | None, decode: str | None, decode_first: bool) -> None:
    parts = [f"prefill={prefill}" if prefill else None, f"decode={decode}" if decode else None]
    if decode_first:
        parts.reverse()
    user = ";".join(p for p in parts if p)
    if not user:
        return
    assert parse_designation(user) == Designation(prefill, decode)


@given(st.text(max_size=60))
def test_any_string_is_none_a_designation_or_a_400(user: str) -> None:
    try:
        result = parse_designation(user)
    except ProxyError as exc:
        assert exc.status == 400
        return
    if result is not None:
        assert result.prefill or result.decode
