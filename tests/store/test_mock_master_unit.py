"""The mock master's pieces without a network: gflags parsing, the allocator, leases, eviction order and
client TTL on a fake clock, and a hypothesis state machine checking MasterService against a dict."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kvtest.ports import free_port
from kvtest.process import ManagedProcess, http_ok
from kvtest.service import READY_CAP_S
from simulators.mooncake.allocator import OffsetAllocator
from simulators.mooncake.errors import ErrorCode, MasterError
from simulators.mooncake.flags import MasterConfig, parse_flags
from simulators.mooncake.master import ClientInfo, MasterService

MB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def service(**cfg: object) -> tuple[MasterService, Clock]:
    clock = Clock()
    svc = MasterService(MasterConfig(**cfg), clock=clock)  # type: ignore[arg-type]
    svc.mount_segment("c1", "seg1", "seg1", 32 * MB)
    return svc, clock


def put(svc: MasterService, key: str, size: int, client: str = "c1") -> None:
    svc.put_start(client, key, size)
    svc.put_end(key)


# --- flags -----------------------------------------------------------------------------------------
def test_gflags_forms() -> None:
    cfg, unknown = parse_flags(
        ["--rpc_port=1", "--metrics_port", "2", "-client_ttl=3", "--enable_http_metadata_server",
         "--enable_ha=false", "--default_kv_lease_ttl=5s", "--eviction_ratio", "0.1", "--bogus", "x",
         "--nobogus2", "--http_metadata_server_port=8081"]
    )  # fmt: skip
    assert (cfg.rpc_port, cfg.metrics_port, cfg.client_ttl) == (1, 2, 3)
    assert cfg.enable_http_metadata_server is True and cfg.enable_ha is False
    assert cfg.default_kv_lease_ttl == 5000 and cfg.eviction_ratio == 0.1
    assert cfg.http_metadata_server_port == 8081
    assert unknown == ["--bogus", "x", "--nobogus2"]
    cfg, _ = parse_flags(["--enable_http_metadata_server", "--noenable_http_metadata_server"])
    assert cfg.enable_http_metadata_server is False


def test_config_path_json_and_command_line_wins(tmp_path: Path) -> None:
    conf = tmp_path / "master.json"
    conf.write_text('{"rpc_port": 7, "client_ttl": 4, "enable_http_metadata_server": true, "unknown": 1}')
    cfg, unknown = parse_flags([f"--config_path={conf}", "--client_ttl=9"])
    assert (cfg.rpc_port, cfg.client_ttl, cfg.enable_http_metadata_server, unknown) == (7, 9, True, [])


def test_bad_flag_value_exits() -> None:
    with pytest.raises(SystemExit):
        parse_flags(["--rpc_port=abc"])


def test_mock_master_process_takes_the_real_command_line(tmp_path: Path) -> None:
    rpc, metrics = free_port(), free_port()
    argv = [sys.executable, "-m", "simulators.mooncake", "--rpc_port", str(rpc), f"--metrics_port={metrics}",
            "--rpc_address=127.0.0.1", "--metrics_host", "127.0.0.1", "--enable_ha=false",
            "--future_flag=1"]  # fmt: skip
    with ManagedProcess("mock-master", argv, log_path=tmp_path / "m.log", cwd=Path(__file__).parents[2]) as p:
        p.wait_ready(lambda: http_ok(f"http://127.0.0.1:{metrics}/health"), timeout=READY_CAP_S)
        assert httpx.get(f"http://127.0.0.1:{metrics}/health").json()["status"] == "ok"
        assert "ignoring unknown flags: --future_flag=1" in (tmp_path / "m.log").read_text()


# --- allocator ---------------------------------------------------------------------------------------
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), max_size=200))
@settings(max_examples=50)
def test_allocator_never_overlaps_and_coalesces(ops: list[tuple[bool, int]]) -> None:
    a = OffsetAllocator(64 * 1024)
    live: dict[int, int] = {}
    for alloc, n in ops:
        if alloc or not live:
            off = a.allocate(n)
            if off is not None:
                assert all(off + n <= o or o + s <= off for o, s in live.items())
                live[off] = n
        else:
            off = sorted(live)[n % len(live)]
            a.free(off, live.pop(off))
        assert a.allocated == sum(live.values())
    for off, n in list(live.items()):
        a.free(off, n)
    assert a.largest_free() == 64 * 1024  # everything merged back into one range


# --- leases, eviction, TTL on a fake clock -------------------------------------------------------------
def test_lease_blocks_remove_until_it_expires() -> None:
    svc, clock = service(default_kv_lease_ttl=2000)
    put(svc, "k", 10)
    assert svc.exist_key("k") is True
    with pytest.raises(MasterError) as e:
        svc.remove("k")
    assert e.value.code == ErrorCode.OBJECT_HAS_LEASE
    clock.t += 2.001
    svc.remove("k")
    assert svc.exist_key("k") is False


def test_eviction_takes_oldest_leases_first_and_skips_leased() -> None:
    svc, clock = service(default_kv_lease_ttl=1000, eviction_high_watermark_ratio=1.0, eviction_ratio=0.25)
    for i in range(8):
        put(svc, f"k{i}", 4 * MB)
        svc.get_replica_list(f"k{i}")  # lease i ends at t + 1 + i ms
        clock.t += 0.001
    clock.t += 1.0  # every lease but ...
    svc.get_replica_list("k0")  # ... k0's has expired again: k0 is the only leased one
    with pytest.raises(MasterError) as e:
        svc.put_start("c1", "new", 4 * MB)
    assert e.value.code == ErrorCode.NO_AVAILABLE_HANDLE and svc.need_eviction
    assert svc.eviction_tick() == 2  # ceil(8 * 0.25)
    assert sorted(svc.objects) == ["k0", "k3", "k4", "k5", "k6", "k7"]  # k1, k2: the oldest unleased
    assert svc.counters["master_evicted_key_count"] == 2 and not svc.need_eviction


def test_silent_client_loses_segments_and_objects() -> None:
    clock = Clock()
    svc = MasterService(MasterConfig(client_ttl=10), clock=clock)
    svc.clients["c1"] = ClientInfo("c1", clock.t)  # a client without a segment
    svc.mount_segment("c2", "seg2", "seg2", 32 * MB)
    put(svc, "k", 10, client="c2")
    clock.t += 5
    svc.ping("c1")
    clock.t += 6  # c2 silent 11 s, c1 pinged 6 s ago
    assert svc.monitor_tick() == ["c2"]
    assert "k" not in svc.objects and "seg2" not in svc.segments
    assert svc.ping("c2") == "need_remount"


def test_unfinished_put_is_discarded_after_put_start_discard_timeout() -> None:
    svc, clock = service(put_start_discard_timeout_sec=30)
    svc.put_start("c1", "k", 10)  # the writer died before PutEnd
    with pytest.raises(MasterError):
        svc.put_start("c1", "k", 10)
    clock.t += 31
    svc.put_start("c1", "k", 10)
    svc.put_end("k")
    assert svc.objects["k"].complete


# --- model test ----------------------------------------------------------------------------------------
class MasterVsDict(RuleBasedStateMachine):
    """First put wins, remove needs no lease unless forced, sizes stay what the first put said."""

    def __init__(self) -> None:
        super().__init__()
        self.svc, self.clock = service(default_kv_lease_ttl=1000)
        self.model: dict[str, int] = {}
        self.leased: set[str] = set()

    @rule(key=st.sampled_from("abcd"), size=st.integers(1, 4096))
    def put(self, key: str, size: int) -> None:
        try:
            put(self.svc, key, size)
            assert key not in self.model
            self.model[key] = size
        except MasterError as e:
            assert e.code == ErrorCode.OBJECT_ALREADY_EXISTS and key in self.model

    @rule(key=st.sampled_from("abcd"))
    def get(self, key: str) -> None:
        try:
            assert self.svc.get_replica_list(key)[2] == self.model[key]
            self.leased.add(key)
        except MasterError as e:
            assert e.code == ErrorCode.OBJECT_NOT_FOUND and key not in self.model

    @rule(key=st.sampled_from("abcd"), force=st.booleans())
    def remove(self, key: str, force: bool) -> None:
        try:
            self.svc.remove(key, force)
            assert key in self.model and (force or key not in self.leased)
            del self.model[key]
            self.leased.discard(key)
        except MasterError as e:
            want = ErrorCode.OBJECT_NOT_FOUND if key not in self.model else ErrorCode.OBJECT_HAS_LEASE
            assert e.code == want

    @rule()
    def leases_expire(self) -> None:
        self.clock.t += 1.001
        self.leased.clear()

    @invariant()
    def agree(self) -> None:
        assert {k: o.size for k, o in self.svc.objects.items()} == self.model
        assert self.svc.allocated_bytes == sum(self.model.values())


TestMasterVsDict = MasterVsDict.TestCase
TestMasterVsDict.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
