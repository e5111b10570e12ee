"""kvtest.store: mooncake.json (MOONCAKE_CONFIG_PATH) -> a set-up client, for the fake vLLM's connector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvtest.ports import free_port
from kvtest.store import MooncakeConfig, StoreSetupError, open_store

from .harness import StoreCluster


def test_config_file_keys_and_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mooncake.json"
    path.write_text(json.dumps({
        "local_hostname": "127.0.0.1", "metadata_server": "P2PHANDSHAKE", "global_segment_size": "64MB",
        "local_buffer_size": 16777216, "protocol": "tcp", "device_name": "", "master_server_address": "h:1",
        "unknown_key": 1,
    }))  # fmt: skip
    monkeypatch.setenv("MOONCAKE_CONFIG_PATH", str(path))
    cfg = MooncakeConfig.from_file()
    assert cfg.global_segment_size == 64 << 20 and cfg.local_buffer_size == 16 << 20
    assert cfg.setup_args() == ("127.0.0.1", "P2PHANDSHAKE", 64 << 20, 16 << 20, "tcp", "", "h:1")


def test_open_store_mock_moves_bytes(tmp_path: Path) -> None:
    cluster = StoreCluster("mock", tmp_path)
    try:
        m = cluster.master()
        a = open_store("mock", master_server_address=m.rpc_addr)
        b = open_store(
            "mock", config=MooncakeConfig(master_server_address=m.rpc_addr), global_segment_size="32MB"
        )
        try:
            assert a.put("k", b"v" * 100) == 0 and b.get("k") == b"v" * 100
        finally:
            a.close()
            b.close()
    finally:
        cluster.close()


def test_open_store_raises_with_the_code() -> None:
    with pytest.raises(StoreSetupError) as e:
        open_store("mock", master_server_address=f"127.0.0.1:{free_port()}")
    assert e.value.code == -1


def test_setup_takes_a_dict_like_the_real_client(tmp_path: Path) -> None:
    from simulators.mooncake import MooncakeDistributedStore

    cluster = StoreCluster("mock", tmp_path)
    try:
        m = cluster.master()
        s = MooncakeDistributedStore()
        conf = {
            "local_hostname": "127.0.0.1",
            "metadata_server": "P2PHANDSHAKE",
            "master_server_addr": m.rpc_addr,
        }
        assert s.setup(conf) == 0
        assert s.put("d", b"1") == 0 and s.get("d") == b"1"
        assert s.close() == 0 and s.health_check() == 1
    finally:
        cluster.close()
