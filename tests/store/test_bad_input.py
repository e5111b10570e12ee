"""Bad keys, bad values, a dead master, a wrong address: a clear return code (or the TypeError
pybind11 raises), never a hang or a crash. Same codes from the mock and the real client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kvtest.ports import free_port
from kvtest.store import store_class
from simulators.mooncake.client import RPC_TIMEOUT_S

from .harness import StoreCluster


def raises_type_error(fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except TypeError:
        return True
    except RuntimeError as e:  # from a client process: the exception text comes back
        return str(e).startswith("TypeError")
    return False


@pytest.mark.parametrize("key", ["k\x00z", "ключ/ü", "a" * 4096, "a" * (1 << 20), " ", "\n"])
def test_odd_keys_are_just_keys(cluster: StoreCluster, key: str) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert (a.put(key, b"v"), a.get(key), a.is_exist(key), a.get_size(key)) == (0, b"v", 1, 1)
    assert a.remove(key, True) == 0


def test_wrong_types_raise_type_error(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert raises_type_error(lambda: a.put(123, b"v"))
    assert raises_type_error(lambda: a.put("k", "a str is not a buffer"))
    assert raises_type_error(lambda: a.get(None))
    assert a.is_exist("k") == 0


def test_empty_and_oversize_values(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.put("e", b"") == -600
    assert a.put("big", b"x" * ((16 << 20) + 1)) == -600
    assert a.put_batch(["e1", "e2"], [b"ok", b""]) == -600
    assert a.batch_is_exist(["e1", "e2"]) == [0, 0]  # one bad value fails the whole batch


def test_setup_against_a_dead_master_fails_cleanly(impl: str) -> None:
    store = store_class(impl)()  # type: ignore[arg-type]
    t0 = time.monotonic()
    code = store.setup("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", f"127.0.0.1:{free_port()}")
    assert code == -1
    # real: ~4.4 s with MC_STORE_CLIENT_SETUP_RETRIES=1 and ~90 s with its default retries, which is what
    # this tells apart (a 15 s bound also caught a loaded machine's slowness); mock: at once
    assert time.monotonic() - t0 < 60
    assert store.put("k", b"v") == -600 and store.get("k") == b"" and store.health_check() == 1


@pytest.mark.parametrize("addr", ["no-such-host.invalid:50051", "127.0.0.1:notaport"])
def test_setup_with_a_wrong_address_mock(addr: str) -> None:
    """The real client answers -1 for these too, after ~4.4 s each (run by hand; too slow for CI)."""
    store = store_class("mock")()
    assert store.setup("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", addr) == -1
    assert store.put("k", b"v") == -600 and store.health_check() == 1


def test_every_call_answers_after_the_master_dies_mock(tmp_path: Any) -> None:
    """Real: put -> -900 at once (test_differential), the others -900/b""/2 after ~4 s each."""
    cluster = StoreCluster("mock", tmp_path)
    try:
        m = cluster.master()
        a = cluster.client(m)
        assert a.put("k", b"v") == 0
        m.kill()
        t0 = time.monotonic()
        assert a.put("k2", b"v") == -900
        assert a.get("k") == b""
        assert a.is_exist("k") == -900
        assert a.get_size("k") == -900
        assert a.remove("k") == -900
        assert a.remove_all() == -900
        assert a.batch_is_exist(["k"]) == [-900]
        assert a.get_batch(["k"]) == [b""]
        assert a.put_batch(["q"], [b"1"]) == -900
        assert a.health_check() == 2
        # not one of the ten calls waited for a reply from the dead master (each would wait RPC_TIMEOUT_S);
        # a 5 s bound was wall-clock speed, which a loaded machine does not have
        assert time.monotonic() - t0 < RPC_TIMEOUT_S
    finally:
        cluster.close()


def test_batches_share_the_local_buffer(cluster: StoreCluster) -> None:
    """Found comparing with the real client: a batch is staged in the local buffer all at once."""
    m = cluster.master()
    a = cluster.client(m)  # local buffer 16 MiB
    ten = 10 << 20
    assert a.put_batch(["x1", "x2"], [b"a" * ten, b"b" * ten]) == -600
    assert a.batch_is_exist(["x1", "x2"]) == [0, 0]
    assert a.put("y1", b"a" * ten) == 0 and a.put("y2", b"b" * ten) == 0
    assert [len(v) for v in a.get_batch(["y1", "y2"])] == [ten, 0]
    assert [len(v) for v in a.get_batch(["y1", "nope", "y1"])] == [ten, 0, 0]


def test_setup_with_an_unknown_protocol(cluster: StoreCluster) -> None:
    m = cluster.master()
    store = cluster.client(m, check=False, protocol="carrier-pigeon")
    assert cluster.setup_codes[-1] == -1
    assert store.put("k", b"v") == -600 and store.health_check() == 1
