"""Fixtures for the fake vLLM's KV connectors: an in-process mock Mooncake master and its mooncake.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvtest.services.mooncake_master import MooncakeMaster


@pytest.fixture
def mock_master(tmp_path: Path) -> Iterator[MooncakeMaster]:
    master = MooncakeMaster("mock", log_dir=tmp_path, in_process=True)
    master.start()
    try:
        yield master
    finally:
        master.stop()


@pytest.fixture
def mooncake_json(mock_master: MooncakeMaster, tmp_path: Path) -> Path:
    path = tmp_path / "mooncake.json"
    cfg = {
        "local_hostname": "127.0.0.1",
        "metadata_server": "P2PHANDSHAKE",
        "master_server_address": mock_master.rpc_addr,
        "protocol": "tcp",
        "device_name": "",
        "global_segment_size": "16MB",
        "local_buffer_size": "8MB",
    }
    path.write_text(json.dumps(cfg))
    return path
