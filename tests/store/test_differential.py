"""The same tests against the mock and the real master + client (parametrized by `impl`): identical
return codes and values. Expected values were read off the installed mooncake 0.3.13.post1."""

from __future__ import annotations

import ctypes
import threading
import time

import httpx

from .harness import BUF, EVENT_CAP_S, StoreCluster, metrics, wait_for

MB = 1 << 20
# Names the real master serves (master_metric_manager.cpp) and dashboards read; the mock serves them too.
REAL_METRIC_NAMES = [
    "master_key_count", "master_allocated_bytes", "master_total_capacity_bytes", "master_active_clients",
    "master_put_start_requests_total", "master_put_start_failures_total", "master_put_end_requests_total",
    "master_put_revoke_requests_total", "master_get_replica_list_requests_total",
    "master_exist_key_requests_total", "master_remove_requests_total", "master_remove_all_requests_total",
    "master_mount_segment_requests_total", "master_ping_requests_total", "master_attempted_evictions_total",
    "master_successful_evictions_total", "master_evicted_key_count", "master_put_start_alloc_failures_total",
]  # fmt: skip


def test_put_get_exist_remove(cluster: StoreCluster) -> None:
    m = cluster.master()
    a, b = cluster.client(m), cluster.client(m)
    assert a.put("k", b"hello") == 0
    assert b.get("k") == b"hello"  # bytes moved between two clients' segments
    assert b.is_exist("k") == 1
    assert a.get_size("k") == 5
    assert a.remove("k", True) == 0
    assert a.is_exist("k") == 0
    assert b.get("k") == b""


def test_put_of_existing_key_keeps_old_value_and_master_counts_rejection(cluster: StoreCluster) -> None:
    m = cluster.master()
    a, b = cluster.client(m), cluster.client(m)
    before = metrics(m)["master_put_start_failures_total"]
    assert a.put("dup", b"first") == 0
    assert b.put("dup", b"second") == 0  # the client reports success ...
    assert a.get("dup") == b"first"  # ... but the first put won (master_service.cpp PutStart)
    assert metrics(m)["master_put_start_failures_total"] == before + 1
    wait_for(
        lambda: "key=dup, info=object_already_exists" in m.log_text(), EVENT_CAP_S, "the rejection log line"
    )
    assert metrics(m)["master_key_count"] == 1


def test_upsert_replaces(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.put("u", b"one") == 0
    assert a.upsert("u", b"three") == 0
    assert a.get("u") == b"three"
    assert a.get_size("u") == 5


def test_remove_under_lease(cluster: StoreCluster) -> None:
    m = cluster.master(default_kv_lease_ttl=60000)
    a = cluster.client(m)
    assert a.put("l", b"x") == 0
    assert a.remove("l") == 0  # nobody read it: no lease
    assert a.put("l", b"x") == 0
    assert a.get("l") == b"x"  # a read grants default_kv_lease_ttl
    assert a.remove("l") == -706
    assert a.is_exist("l") == 1
    assert a.remove("l", True) == 0
    assert a.is_exist("l") == 0


def test_lease_expires(cluster: StoreCluster) -> None:
    m = cluster.master(default_kv_lease_ttl=300)
    a = cluster.client(m)
    assert a.put("l", b"x") == 0
    assert a.is_exist("l") == 1  # ExistKey grants a lease as well
    assert a.remove("l") == -706
    wait_for(lambda: a.remove("l") == 0, 0.3 + EVENT_CAP_S, "the lease (300 ms) to expire")


def test_missing_key(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.get("nope") == b""
    assert a.is_exist("nope") == 0
    assert a.get_size("nope") == -704
    assert a.remove("nope") == -704
    assert a.get_batch(["nope", "nope2"]) == [b"", b""]
    assert a.batch_is_exist(["nope"]) == [0]


def test_bad_input(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.put("empty", b"") == -600
    assert a.is_exist("empty") == 0
    assert a.put("", b"x") == -600
    assert a.is_exist("") == 0
    assert a.get("") == b""
    assert a.get_size("") == -704
    assert a.put_batch(["x", "y"], [b"1"]) != 0


def test_value_bigger_than_local_buffer(cluster: StoreCluster) -> None:
    m = cluster.master()
    small = cluster.client(m, buffer=BUF)
    big = cluster.client(m, buffer=4 * BUF)
    assert small.put("fits", b"a" * BUF) == 0  # exactly the buffer: fine
    assert small.put("too-big", b"a" * (BUF + 1)) == -600
    assert small.is_exist("too-big") == 0
    assert big.put("big", b"b" * (BUF + 1)) == 0
    assert big.get("big") == b"b" * (BUF + 1)
    assert small.get_size("big") == BUF + 1
    assert small.get("big") == b"" and small.get_batch(["big"]) == [b""]  # cannot stage it locally


def test_get_into_and_multi_buffers(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m, inproc=True)  # pointer APIs need the buffers in this process
    b = a  # one client: a real client's close() costs ~2 s of held GIL
    src = ctypes.create_string_buffer(b"abcdefgh", 8)
    dst = ctypes.create_string_buffer(64)
    assert a.register_buffer(ctypes.addressof(src), 8) == 0
    assert a.register_buffer(ctypes.addressof(dst), 64) == 0
    p, q = ctypes.addressof(src), ctypes.addressof(dst)
    assert a.put_from("pf", p, 3) == 0
    assert b.get("pf") == b"abc"
    assert b.get_into("pf", q, 64) == 3 and dst.raw[:3] == b"abc"
    assert b.get_into("pf", q, 2) == -600  # the caller's buffer is too small
    assert a.batch_put_from_multi_buffers(["m1", "m2"], [[p], [p, p + 4]], [[2], [1, 3]]) == [0, 0]
    assert b.get("m1") == b"ab" and b.get("m2") == b"aefg"
    got = b.batch_get_into_multi_buffers(
        ["m1", "m2", "nope"], [[q], [q + 10, q + 20], [q + 30]], [[2], [1, 3], [5]]
    )
    assert got == [2, 4, -704]
    # odd but real: slices longer than the object fail the transfer (transfer_task.cpp "all_slice_len")
    assert b.batch_get_into_multi_buffers(["m2"], [[q + 10, q + 20]], [[1, 8]]) == [-800]
    assert dst.raw[:2] == b"ab" and dst.raw[10:11] == b"a" and dst.raw[20:23] == b"efg"
    assert b.batch_get_into_multi_buffers(["m2"], [[q]], [[1]]) == [-600]
    assert a.batch_put_from_multi_buffers(["m1"], [[p + 4]], [[2]]) == [0]  # exists: kept
    assert b.get("m1") == b"ab"
    # what vLLM's MooncakeStoreConnector reads to locate a key
    descs = a.batch_get_replica_desc(["m2", "nope"])
    assert list(descs) == ["m2"] and len(descs["m2"]) == 1
    d = descs["m2"][0]
    assert d.is_memory_replica() and not d.is_disk_replica() and str(d.status) == "ReplicaStatus.COMPLETE"
    assert d.get_memory_descriptor().buffer_descriptor.size == 4
    assert a.get_replica_desc("nope") == []


def test_batches(cluster: StoreCluster) -> None:
    m = cluster.master()
    a, b = cluster.client(m), cluster.client(m)
    assert a.put_batch(["p1", "p2"], [b"a", b"b"]) == 0
    assert b.put_batch(["p1", "p3"], [b"z", b"c"]) == 0
    assert a.get_batch(["p1", "nope", "p3"]) == [b"a", b"", b"c"]
    assert a.batch_is_exist(["p1", "nope", "p2"]) == [1, 0, 1]
    mt = metrics(m)
    assert mt["master_batch_put_start_failed_items_total"] == 1
    assert mt["master_batch_put_start_partial_successes_total"] == 1


def test_remove_all_skips_leased(cluster: StoreCluster) -> None:
    m = cluster.master(default_kv_lease_ttl=60000)
    a = cluster.client(m)
    for i in range(5):
        assert a.put(f"r{i}", b"v") == 0
    assert a.get("r0") == b"v" and a.get("r1") == b"v"
    assert a.remove_all() == 3
    assert a.batch_is_exist([f"r{i}" for i in range(5)]) == [1, 1, 0, 0, 0]
    assert a.remove_all(True) == 2


def test_admin_endpoints(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.put("q", b"xyz") == 0
    h = httpx.get(m.url_for("health")).json()
    assert h["status"] == "ok" and h["role"] == "leader"
    r = httpx.get(m.url_for("query_key"), params={"key": "q"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["data"][0]["size_"] == 3
    r = httpx.get(m.url_for("query_key"), params={"key": "nope"})
    assert r.status_code == 404
    assert r.json() == {"success": False, "error_code": -704, "error_message": "OBJECT_NOT_FOUND"}
    assert httpx.get(m.url_for("get_all_keys")).text.split() == ["q"]
    assert len(httpx.get(m.url_for("get_all_segments")).text.split()) == 1
    mt = metrics(m)
    assert not [name for name in REAL_METRIC_NAMES if name not in mt]
    assert mt["master_key_count"] == 1 and mt["master_allocated_bytes"] == 3
    assert mt["master_active_clients"] == 1 and mt["master_total_capacity_bytes"] == 64 * MB


def test_full_segment_then_eviction_skips_leased(cluster: StoreCluster) -> None:
    # watermark 1.0: only a failed allocation triggers eviction (need_eviction_ in PutStart)
    m = cluster.master(default_kv_lease_ttl=60000, eviction_high_watermark_ratio=1.0)
    a = cluster.client(m, segment=32 * MB)
    value = b"e" * (4 * MB)
    assert [a.put(f"e{i}", value) for i in range(8)] == [0] * 8
    assert a.is_exist("e7") == 1  # leased now: eviction must skip it
    assert a.put("e8", value) == -200  # full: NO_AVAILABLE_HANDLE, and the master schedules an eviction
    assert metrics(m)["master_put_start_alloc_failures_total"] == 1
    # BatchEvict: ceil(8 objects * max(0.05, 1.0 - 1.0 + 0.05)) = 1 object whose lease has expired
    wait_for(lambda: metrics(m)["master_evicted_key_count"] == 1, EVENT_CAP_S, "1 evicted key")
    assert metrics(m)["master_key_count"] == 7
    assert a.is_exist("e7") == 1
    assert a.put("e8", value) == 0


def test_eviction_at_high_watermark(cluster: StoreCluster) -> None:
    m = cluster.master(eviction_high_watermark_ratio=0.5)
    a = cluster.client(m, segment=32 * MB)
    for i in range(5):
        assert a.put(f"w{i}", b"w" * (4 * MB)) == 0
    # 5 x 4 MiB in 32 MiB is 62.5% > 50%: evict ceil(5 * (0.625 - 0.5 + 0.05)) = 1 object, back to 50%
    wait_for(lambda: metrics(m)["master_evicted_key_count"] == 1, EVENT_CAP_S, "one eviction")
    mt = metrics(m)
    assert mt["master_key_count"] == 4 and mt["master_allocated_bytes"] == 16 * MB
    assert sum(a.batch_is_exist([f"w{i}" for i in range(5)])) == 4


def test_master_killed(cluster: StoreCluster) -> None:
    m = cluster.master()
    a = cluster.client(m)
    assert a.put("k", b"v") == 0
    m.kill()
    assert a.put("k2", b"v") == -900


def test_upsert_same_size_keeps_lease(cluster: StoreCluster) -> None:
    """Found by the op-by-op trace: an upsert of the same size rewrites in place and keeps the lease;
    another size makes a new object without one."""
    m = cluster.master(default_kv_lease_ttl=60000)
    a = cluster.client(m)
    for key, size in (("same", 10), ("other", 20)):
        assert a.put(key, b"x" * 10) == 0
        assert a.is_exist(key) == 1  # leased
        assert a.upsert(key, b"y" * size) == 0
        assert a.get(key) == b"y" * size
    assert a.remove("same") == -706
    a.put("fresh", b"z")
    assert a.remove_all() == 1  # "fresh": both upserted keys were just read by get() and are leased


def test_admin_edge_cases(cluster: StoreCluster) -> None:
    m = cluster.master()
    missing = {"success": False, "error_code": -704, "error_message": "OBJECT_NOT_FOUND"}
    for path in ("query_key", "query_key?key="):
        r = httpx.get(m.url_for(path))
        assert (r.status_code, r.json()) == (404, missing)
    assert httpx.get(m.url_for("get_all_keys")).text == ""
    assert httpx.get(m.url_for("get_all_segments")).text == ""
    r = httpx.post(m.url_for("health"))
    assert (r.status_code, r.text) == (404, "404 Not Found")


def test_paused_master_delays_but_does_not_fail(cluster: StoreCluster) -> None:
    m = cluster.master(process=True)  # a process, so SIGSTOP pauses it
    a = cluster.client(m)
    assert a.put("k", b"v") == 0
    m.pause()
    threading.Timer(1.5, m.resume).start()
    t0 = time.monotonic()
    assert a.put("k2", b"v") == 0
    assert time.monotonic() - t0 >= 1.0
    assert a.get("k2") == b"v"
